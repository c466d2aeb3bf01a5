"""Bad input: exit 2, one line naming the file and the key, no traceback, nothing written."""

import numpy as np
import pytest
from helpers import runner_cmd
from hypothesis import given
from hypothesis import strategies as st

from runner.cli import main
from runner.errors import RunnerError
from runner.plan.spec import build_spec, load_spec

GOOD = """name = "bad"
[data]
builtin = "seed"
[train]
epochs = 20
[grid]
alpha = [0.1]
"""

# (spec text, extra CLI args, text the one-line message must contain)
SPECS = [
    (
        'name = "x"\n[train]\nalpah = 0.1\n',
        [],
        "train.alpah: unknown key 'alpah'; did you mean 'alpha'",
    ),
    ('name = "x"\n[trian]\n', [], "trian: unknown key 'trian'; did you mean 'train'"),
    ('name = "x"\n[train]\nepochs = "ten"\n', [], "train.epochs: must be an integer"),
    ('name = "x"\n[train]\nepochs = 0\n', [], "train.epochs: must be >= 1"),
    ('name = "x"\n[train]\nepochs = 1.5\n', [], "train.epochs: must be an integer"),
    ('name = "x"\n[train]\nhidden = 0\n', [], "train.hidden: must be >= 1"),
    ('name = "x"\n[train]\nhidden = true\n', [], "train.hidden: must be an integer"),
    ('name = "x"\n[train]\nalpha = -0.1\n', [], "train.alpha: must be a finite number > 0"),
    ('name = "x"\n[train]\nalpha = nan\n', [], "train.alpha: must be a finite number > 0"),
    ('name = "x"\n[train]\nalpha = inf\n', [], "train.alpha: must be a finite number > 0"),
    ('name = "x"\n[train]\nseed = -3\n', [], "train.seed: must be >= 0"),
    ('name = "x"\n[train]\ninit = [1.0, 0.0]\n', [], "train.init: needs finite lo < hi"),
    ('name = "x"\n[train]\ninit = [0.0]\n', [], "train.init: must be a pair"),
    ('name = "x"\n[train]\noutput = "relu"\n', [], "train.output: must be one of"),
    ('name = "x"\n[train]\nupdate = "async"\n', [], "train.update: must be one of"),
    ('name = "x"\n[train]\nstop_below = -1\n', [], "train.stop_below: must be a finite number > 0"),
    ('name = "x"\n[train]\nactivation = "gelu"\n', [], "train.activation: must be one of"),
    ('name = "x"\n[train]\nalpha_hidden = -0.1\n', [], "train.alpha_hidden: must be a finite"),
    ('name = "x"\n[train]\nbias = 1\n', [], "train.bias: must be true or false"),
    ('name = "x"\n[grid]\nactivation = ["tanh", "elu"]\n', [], "grid.activation: must be one"),
    ('name = "x"\n[grid]\nalpha_output = [0.1, -1.0]\n', [], "grid.alpha_output: must be a"),
    (
        'name = "x"\n[sample]\npoints = 4\nalpha_hidden = {loguniform = [-1.0, 1.0]}\n',
        [],
        "sample.alpha_hidden: must be a finite number > 0",
    ),
    ('name = "x"\n[grid]\nalpha = []\n', [], "grid.alpha: is empty"),
    ('name = "x"\n[grid]\nhidden = [2, 0]\n', [], "grid.hidden: must be >= 1"),
    ('name = "x"\n[grid]\nhidden = [2, 2]\n', [], "grid.hidden: lists 2 twice"),
    ('name = "x"\n[grid]\nseed = {start = 5, stop = 5}\n', [], "grid.seed: is empty"),
    ('name = "x"\n[grid]\nseed = {start = 0, stpo = 5}\n', [], "grid.seed: unknown key 'stpo'"),
    ('name = "x"\n[grid]\nalpha = {start = 0.1, stop = 1.0}\n', [], "grid.alpha: a range"),
    ('name = "x"\n[grid]\nalpha = 0.1\n', [], "grid.alpha: must be a list"),
    ('name = "x"\n[grid]\nlr = [0.1]\n', [], "grid.lr: unknown key 'lr'"),
    ('name = "x"\n[record]\nevery = -1\n', [], "record.every: must be an integer >= 1"),
    ('name = "x"\n[record]\ntail = 0\n', [], "record.tail: must be an integer >= 1"),
    (
        'name = "x"\n[train]\ndiverge_factor = 0.5\n',
        [],
        "train.diverge_factor: must be a number >= 1",
    ),
    (
        'name = "x"\n[grid]\ndiverge_factor = [10, nan]\n',
        [],
        "grid.diverge_factor: must be a number",
    ),
    ('name = "x"\n[record]\nloss_dtype = "float16"\n', [], "record.loss_dtype"),
    ('name = "../evil"\n', [], "name: must match"),
    ('name = "a/b"\n', [], "name: must match"),
    ("[train]\nepochs = 5\n", [], "name: missing"),
    ('name = "x"\n[data]\nbuiltin = "mnist"\n', [], "data.builtin: unknown dataset 'mnist'"),
    ('name = "x"\n[data]\npath = "nowhere.csv"\n', [], "data.path: data file not found"),
    ('name = "x"\n[data]\nbuiltin = "seed"\npath = "a.csv"\n', [], "data: give one of"),
    (
        'name = "x"\n[data]\nrandom = {samples = 0, inputs = 2}\n',
        [],
        "data.random.samples: must be an integer >= 1, got 0",
    ),
    ('name = "x"\n[data]\nrandom = {inputs = 2}\n', [], "data.random.samples: is required"),
    (
        'name = "x"\n[data]\nrandom = {samples = 8, inputs = 2, seeds = 1}\n',
        [],
        "data.random.seeds: unknown key",
    ),
    ('name = "x"\n[data]\nrandom = 3\n', [], "data.random: must be a table"),
    (
        'name = "x"\n[data]\nbuiltin = "xor"\nrandom = {samples = 8, inputs = 2}\n',
        [],
        "data: give one of 'builtin', 'path' or 'random', not builtin and random",
    ),
    ('name = "x"\ntrain = 3\n', [], "train: must be a table"),
    ('name = "x"\n[train\n', [], "TOML syntax error"),
    ('name = "x"\n[train]\nepochs = 5\nepochs = 6\n', [], "TOML syntax error"),
    (GOOD, ["--set", "train.epochs=-1"], "train.epochs: must be >= 1"),
    (GOOD, ["--set", "grid.alpha=0.1,zero"], "grid.alpha: must be a finite number"),
    (GOOD, ["--set", "novalue"], "--set: --set expects KEY=VALUE"),
    (GOOD, ["--set", "train.epoch=5"], "train.epoch: unknown key 'epoch'; did you mean 'epochs'"),
    (GOOD, ["--jobs", "0"], "--jobs: must be an integer >= 1"),
    (GOOD, ["--jobs", "two"], "invalid int value"),
    (GOOD, ["--shard", "3/2"], "--shard: needs 0 <= I < N"),
    (GOOD, ["--shard", "x"], "--shard: expects I/N"),
    (GOOD, ["--backend", "mpi"], "invalid choice"),
    (GOOD, ["--set", "grid.seed={start=0,stop=2000000}"], "grid: the grid has 2,000,000 runs"),
]


@pytest.mark.parametrize(("text", "args", "message"), SPECS)
def test_bad_spec_exits_2_with_one_line(tmp_path, capsys, text, args, message):
    spec = tmp_path / "bad.toml"
    spec.write_text(text)
    out = tmp_path / "out"
    code = main(["sweep", str(spec), "--out", str(out), "--quiet", *args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1, err
    assert message in err
    if "--" not in message and "invalid" not in message:
        assert str(spec) in err  # names the file
    assert not out.exists()


@pytest.mark.parametrize(
    ("content", "data", "message"),
    [
        ("", 'path = "d.csv"\nfeatures = ["a"]\ntargets = ["y"]', "file is empty"),
        ("a,y\n", 'path = "d.csv"\nfeatures = ["a"]\ntargets = ["y"]', "file has no rows"),
        ("a,y\n1,2\n", 'path = "d.csv"\nfeatures = ["b"]\ntargets = ["y"]', "no column 'b'"),
        (
            "a,y\n1,x\n",
            'path = "d.csv"\nfeatures = ["a"]\ntargets = ["y"]',
            "d.csv line 2, column 'y': 'x' is not a number;",
        ),
        (
            "a,y\n1,2\n,3\n",
            'path = "d.csv"\nfeatures = ["a"]\ntargets = ["y"]',
            "data.path: d.csv line 3, column 'a': empty cell; every feature and target cell "
            "must be a finite number",
        ),
        (
            "a,y\n1,2\n",
            'builtin = "seed"\nstandardize = "yes"',
            "data.standardize: must be true or false",
        ),
        ("a,y\n1,inf\n", 'path = "d.csv"\nfeatures = ["a"]\ntargets = ["y"]', "not a finite"),
        ("a,y\n1,2\n", 'path = "d.csv"\nfeatures = ["a"]', "data.targets"),
        ("a,y\n1,2\n", 'path = "d.csv"\nfeatures = "a"\ntargets = ["y"]', "data.features"),
    ],
)
def test_bad_data_file_in_spec(tmp_path, capsys, content, data, message):
    (tmp_path / "d.csv").write_text(content)
    spec = tmp_path / "s.toml"
    spec.write_text(f'name = "x"\n[data]\n{data}\n')
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert message in err
    assert str(spec) in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"X": np.ones((2, 2))}, "missing array 'Y'"),
        ({"Y": np.ones((2, 1))}, "missing array 'X'"),
        ({"X": np.ones((3, 2)), "Y": np.ones((2, 1))}, "X has 3 rows but Y has 2"),
        ({"X": np.array([[1.0, np.nan]]), "Y": np.ones((1, 1))}, "NaN"),
    ],
)
def test_bad_npz(tmp_path, capsys, arrays, message):
    np.savez(tmp_path / "d.npz", **arrays)
    spec = tmp_path / "s.toml"
    spec.write_text('name = "x"\n[data]\npath = "d.npz"\n')
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1


def test_no_traceback_in_a_real_process(tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text('name = "x"\n[train]\nalpah = 1\n')
    r = runner_cmd("sweep", str(spec), "--out", str(tmp_path / "out"))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0
    assert not (tmp_path / "out").exists()


def test_toml_error_names_the_line(tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text('name = "x"\n\n[train]\nepochs = = 3\n')
    with pytest.raises(RunnerError, match="line 4"):
        load_spec(spec)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("RUNNER_TILE", "12", "RUNNER_TILE: must be one of (4, 8, 16, 32, 64), got '12'"),
    ("RUNNER_VECTOR_WIDTH", "521", "RUNNER_VECTOR_WIDTH: must be 256 or 512, got '521'"),
    ("RUNNER_VECTOR_WIDTH", "wide", "RUNNER_VECTOR_WIDTH: must be 256 or 512, got 'wide'"),
])  # fmt: skip
def test_bad_kernel_settings_in_the_environment_exit_2(tmp_path, capsys, monkeypatch, key,
                                                       value, message):  # fmt: skip
    monkeypatch.setenv(key, value)
    spec = tmp_path / "s.toml"
    spec.write_text(GOOD)
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err == f"runner: error: {message}\n"
    assert not out.exists()


def test_missing_spec_and_status_of_missing_folder(tmp_path, capsys):
    assert main(["sweep", str(tmp_path / "none.toml")]) == 2
    assert main(["status", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert "none.toml: spec file not found" in err
    assert "no such results folder" in err


def test_results_path_that_is_a_file(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text(GOOD)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "bad").write_text("not a folder")
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out")]) == 2
    assert "not a folder" in capsys.readouterr().err


# ----- fuzzing: the loader accepts a spec or raises RunnerError, nothing else -----
scalars = st.one_of(
    st.integers(-5, 10**7),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=8),
    st.none(),
)
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=4),
    st.dictionaries(st.text(max_size=6), scalars, max_size=3),
)
keys = st.sampled_from(
    [
        "epochs",
        "alpha",
        "hidden",
        "seed",
        "output",
        "update",
        "init",
        "stop_below",
        "diverge_above",
        "bogus",
    ]
)


@given(
    train=st.dictionaries(keys, values, max_size=4),
    grid=st.dictionaries(keys, values, max_size=3),
    record=st.dictionaries(st.sampled_from(["every", "loss_dtype", "x"]), values, max_size=2),
    name=st.one_of(st.text(max_size=10), st.just("ok"), st.integers()),
)
def test_fuzzed_specs_accept_or_raise_runner_error(train, grid, record, name):
    raw = {
        "name": name,
        "data": {"builtin": "seed"},
        "train": train,
        "grid": grid,
        "record": record,
    }
    try:
        spec = build_spec(raw, "fuzz.toml")
    except RunnerError as exc:
        assert "\n" not in str(exc)
        assert str(exc).startswith("fuzz.toml")
        return
    assert spec.n_runs >= 1
    assert spec.n_chunks >= 1


@given(override=st.text(max_size=30))
def test_fuzzed_overrides_accept_or_raise_runner_error(tmp_path_factory, override):
    folder = tmp_path_factory.mktemp("o")
    spec = folder / "s.toml"
    spec.write_text(GOOD)
    try:
        load_spec(spec, [override])
    except RunnerError as exc:
        assert "\n" not in str(exc)


@pytest.mark.parametrize("name", ["..", ".", "../x", "/abs", "a/../../b", "~root", ""])
def test_names_cannot_escape_the_results_root(name):
    raw = {"name": name, "data": {"builtin": "seed"}}
    with pytest.raises(RunnerError, match="name"):
        build_spec(raw, "s.toml")
