"""``init``'s three forms (docs/numerics.md): ``[lo, hi]``, ``{normal = [mean, std]}`` and
``{path = "w0.npz"}``, from the draws to the sweep, its tables, resume and bad values."""

import hashlib
import json
import re
import textwrap

import numpy as np
import pytest

import runner
from runner.cli import main
from runner.errors import RunnerError
from runner.kernel import reference as ref
from runner.kernel import seeding
from runner.plan.spec import load_spec, spec_from_dict
from runner.results import store
from runner.results.report import report_html
from runner.run.train import COMPILED_SEEDING, init_weights, start_weights
from tests.helpers import assert_same_results

D, HID, OUT = 3, 5, 2
X, Y = runner.plan.data.builtin("seed")  # 2 inputs, 1 output


@pytest.mark.parametrize("runs", [3, COMPILED_SEEDING + 8])
@pytest.mark.parametrize("bias", [False, True])
def test_normal_init_is_numpys_draw_wh_then_wz(runs, bias):
    seeds = np.arange(runs) * 7 + 1
    Wh, Wz = init_weights(seeds, D, HID, OUT, {"normal": [0.25, 1.5]}, bias)
    assert Wh.shape == (D + bias, HID, runs) and Wz.shape == (HID + bias, OUT, runs)
    for r, seed in enumerate(seeds):
        rng = np.random.default_rng(seed)
        assert np.array_equal(Wh[:, :, r], rng.normal(0.25, 1.5, (D + bias, HID)))
        assert np.array_equal(Wz[:, :, r], rng.normal(0.25, 1.5, (HID + bias, OUT)))
        want = ref.init_normal(int(seed), D, HID, OUT, 0.25, 1.5, bias)
        assert np.array_equal(Wh[:, :, r], want[0]) and np.array_equal(Wz[:, :, r], want[1])


def test_many_runs_draw_from_compiled_states_as_numpy_would():
    """seeding.normal_weights: each run's PCG64 state from the compiled SeedSequence, then
    NumPy's normal; seeds of one to four 32-bit words, per-run mean and std."""
    seeds = np.array([0, 1, 2**32 - 1, 2**32, 2**40 + 5, 2**63 - 1, *range(40, 80)])
    mean, std = np.linspace(-1, 1, len(seeds)), np.geomspace(0.1, 10, len(seeds))
    Wh, Wz = seeding.normal_weights(seeds, D, HID, OUT, mean, std, True)
    for r, seed in enumerate(seeds):
        rng = np.random.default_rng(int(seed))
        assert np.array_equal(Wh[:, :, r], rng.normal(mean[r], std[r], (D + 1, HID)))
        assert np.array_equal(Wz[:, :, r], rng.normal(mean[r], std[r], (HID + 1, OUT)))
    nan = np.full(len(seeds), np.nan)
    cols = {"seed": seeds, "init_lo": nan, "init_hi": nan, "init_mean": mean, "init_std": std}
    got = start_weights(cols, D, HID, OUT, True)
    assert np.array_equal(got[0], Wh) and np.array_equal(got[1], Wz)


def test_a_chunk_draws_each_runs_own_numbers():
    """Runs of one chunk with other init_std values: each its own draw."""
    nan = np.full(4, np.nan)
    cols = {"seed": np.array([0, 1, 0, 1]), "init_lo": nan, "init_hi": nan,
            "init_mean": np.zeros(4), "init_std": np.array([0.5, 0.5, 2.0, 2.0])}  # fmt: skip
    Wh, Wz = start_weights(cols, D, HID, OUT, True)
    for r in range(4):
        want = ref.init_normal(int(cols["seed"][r]), D, HID, OUT, 0.0, cols["init_std"][r], True)
        assert np.array_equal(Wh[:, :, r], want[0]) and np.array_equal(Wz[:, :, r], want[1])


def test_train_takes_a_normal_init_and_a_file(tmp_path):
    got = runner.train(X, Y, epochs=25, hidden=6, seed=4, init={"normal": [0.0, 0.7]},
                       activation="tanh", bias=True)  # fmt: skip
    Wh, Wz = ref.init_normal(4, 2, 6, 1, 0.0, 0.7, True)
    want = ref.train_reference(X, Y, Wh, Wz, 0.1, 25, activation="tanh", bias=True,
                               diverge_factor=1e6)  # runner.train's default  # fmt: skip
    assert np.array_equal(got.loss, want.loss) and np.array_equal(got.Wh, want.Wh)
    path = tmp_path / "w0.npz"
    np.savez(path, Wh=Wh, Wz=Wz)
    from_file = runner.train(X, Y, epochs=25, hidden=6, seed=99, init={"path": str(path)},
                             activation="tanh", bias=True)  # fmt: skip
    assert np.array_equal(from_file.loss, want.loss)
    fit = r"init: .*w0.npz: Wh \(3, 6\) and Wz \(7, 1\) do not fit"
    with pytest.raises(RunnerError, match=fit):
        runner.train(X, Y, epochs=2, hidden=6, init={"path": str(path)})  # no bias: (2, 6), (6, 1)
    with pytest.raises(RunnerError, match="init: normal needs a finite mean and a finite std > 0"):
        runner.train(X, Y, epochs=2, init={"normal": [0.0, 0.0]})


# ----- in a sweep -----
NORMAL = {
    "name": "normal",
    "data": {"builtin": "seed"},
    "train": {"epochs": 30, "hidden": 4, "activation": "tanh", "bias": True,
              "init": {"normal": [0.1, 0.5]}},
    "grid": {"init_std": [0.5, 1.5], "alpha": [0.02, 0.1], "seed": {"start": 0, "stop": 3}},
    "sweep": {"chunk_runs": 4},
}  # fmt: skip


def sweep(spec, tmp_path, **kw):
    runner.sweep(spec, out=tmp_path, jobs=1, progress=False, quiet=True, **kw)
    return tmp_path / spec["name"] if isinstance(spec, dict) else None


def test_a_normal_sweep_is_train_and_the_reference_run_by_run(tmp_path):
    folder = sweep(NORMAL, tmp_path)
    res = runner.load(folder)
    runs, losses = res.runs, res.losses()
    assert {"init_mean", "init_std"} <= set(runs.columns) and "init_std" in losses.columns
    assert not {"init_lo", "init_hi"} & (set(runs.columns) | set(losses.columns))
    assert sorted(runs["init_std"].unique()) == [0.5, 1.5] and (runs["init_mean"] == 0.1).all()
    assert len(runs) == 12
    for run in runs.to_dict("records"):
        init = {"normal": [run["init_mean"], run["init_std"]]}
        got = runner.train(X, Y, alpha=run["alpha"], hidden=4, seed=run["seed"], epochs=30,
                           init=init, activation="tanh", bias=True)  # fmt: skip
        Wh, Wz = ref.init_normal(run["seed"], 2, 4, 1, 0.1, run["init_std"], True)
        want = ref.train_reference(X, Y, Wh, Wz, run["alpha"], 30, activation="tanh", bias=True)
        assert np.array_equal(got.loss, want.loss)
        mine = losses[losses["run_id"] == run["run_id"]].sort_values("epoch")["loss"]
        assert np.array_equal(mine.to_numpy(), want.loss.astype(np.float32)), run
        assert run["final_loss"] == want.loss[-1]
    meta = json.loads((folder / store.META).read_text())
    assert meta["spec"]["train"]["init"] == {"normal": [0.1, 0.5]}
    # read back by the grid's columns of init: summaries, a map, the report
    assert list(res.summary().columns[:3]) == ["init_mean", "init_std", "alpha"]
    assert res.map("alpha", "init_std").array.shape == (2, 2)
    assert 'id="fig-map"' in report_html(res)


def test_a_resumed_normal_sweep_equals_one_shot(tmp_path):
    whole = sweep(NORMAL, tmp_path / "a")
    part = sweep(NORMAL, tmp_path / "b")
    for sub in (store.RUNS, "losses"):  # chunks 1 and 2 lost: not done
        for c in (1, 2):
            (part / sub / store.chunk_name(c)).unlink()
    report = runner.sweep(NORMAL, out=tmp_path / "b", jobs=1, progress=False, quiet=True)
    assert report.runs_trained == 8 and report.runs_before == 4
    assert_same_results(part, whole)


def test_a_sampled_normal_init_and_a_grown_grid(tmp_path):
    sampled = {**NORMAL, "name": "sampled", "grid": {"seed": [0, 1]},
               "sample": {"points": 3, "method": "random", "init_std": {"uniform": [0.2, 2.0]},
                          "init_mean": {"uniform": [-0.5, 0.5]}}}  # fmt: skip
    runs = runner.load(sweep(sampled, tmp_path)).runs
    assert runs["init_std"].nunique() == 3 and runs["init_mean"].nunique() == 3
    for run in runs.to_dict("records"):
        init = {"normal": [run["init_mean"], run["init_std"]]}
        got = runner.train(X, Y, hidden=4, seed=run["seed"], epochs=30, activation="tanh",
                           bias=True, init=init)  # fmt: skip
        assert got.loss[-1] == run["final_loss"]
    small = {**NORMAL, "name": "grown", "grid": {**NORMAL["grid"], "init_std": [0.5]}}
    sweep(small, tmp_path / "g")
    report = runner.sweep(NORMAL | {"name": "grown"}, out=tmp_path / "g", jobs=1,
                          progress=False, quiet=True)  # fmt: skip
    assert report.runs_trained == 6 and report.runs_before == 6
    order = ["init_std", "alpha", "seed"]
    grown = runner.load(tmp_path / "g" / "grown").runs.sort_values(order)
    once = runner.load(sweep(NORMAL, tmp_path / "o")).runs.sort_values(order)
    assert grown["final_loss"].tolist() == once["final_loss"].tolist()


def write(folder, text):
    path = folder / "spec.toml"
    path.write_text(textwrap.dedent(text))
    return path


PATH_SPEC = """
name = "fromfile"
[data]
builtin = "seed"
[train]
epochs = 20
hidden = {hidden}
bias = true
init = {{path = "w0.npz"}}
[grid]
alpha = [0.05, 0.3]
seed = [0, 1]
{extra}
"""


def test_a_file_init_starts_every_run_from_its_weights(tmp_path, monkeypatch):
    Wh, Wz = ref.init_normal(11, 2, 3, 1, 0.0, 1.0, True)
    np.savez(tmp_path / "w0.npz", Wh=Wh, Wz=Wz)
    spec = write(tmp_path, PATH_SPEC.format(hidden=3, extra=""))
    monkeypatch.chdir(tmp_path.parent)  # the path is the spec's folder's, not the current one
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    folder = tmp_path / "out" / "fromfile"
    res = runner.load(folder)
    assert not {"init_lo", "init_hi", "init_mean", "init_std"} & set(res.runs.columns)
    losses = res.losses()
    for run in res.runs.to_dict("records"):
        want = ref.train_reference(X, Y, Wh, Wz, run["alpha"], 20, bias=True,
                                   diverge_factor=run["diverge_factor"])  # fmt: skip
        mine = losses[losses["run_id"] == run["run_id"]].sort_values("epoch")["loss"]
        assert np.array_equal(mine.to_numpy(), want.loss.astype(np.float32)), run
    digest = hashlib.sha256((tmp_path / "w0.npz").read_bytes()).hexdigest()
    meta = json.loads((folder / store.META).read_text())
    assert meta["spec"]["train"]["init"] == {"path": "w0.npz", "sha256": digest}
    # another file under the same name is another sweep: refused, nothing changed
    np.savez(tmp_path / "w0.npz", Wh=Wh + 1, Wz=Wz)
    with pytest.raises(RunnerError, match="holds a different sweep"):
        runner.sweep(spec, out=tmp_path / "out", jobs=1, progress=False, quiet=True)


@pytest.mark.parametrize(
    ("hidden", "extra", "message"),
    [
        (4, "", r"train\.init: w0\.npz: Wh \(3, 3\) and Wz \(4, 1\) do not fit 2 inputs, "
                r"hidden 4, 1 outputs, bias: they need Wh \(3, 4\) and Wz \(5, 1\)$"),
        (3, "hidden = [3, 5]", r"train\.init: w0\.npz: .* do not fit 2 inputs, hidden 5, 1 "
                               r"outputs, bias \(the sweep has several\)"),
    ],
)  # fmt: skip
def test_a_file_of_the_wrong_shape_exits_2_and_writes_nothing(tmp_path, capsys, hidden, extra,
                                                               message):  # fmt: skip
    Wh, Wz = ref.init_normal(0, 2, 3, 1, 0.0, 1.0, True)
    np.savez(tmp_path / "w0.npz", Wh=Wh, Wz=Wz)
    spec = write(tmp_path, PATH_SPEC.format(hidden=hidden, extra=extra))
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"runner: error: {spec}: train.init: "), err
    assert re.search(message, err), err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("train", "grid", "message"),
    [
        ({}, {"init": [{"normal": [0.0, 1.0]}]}, r"grid.init: an init .* in \[train\]"),
        ({}, {"init": [[0.0, 1.0], {"path": "w0.npz"}]}, "grid.init: an init table"),
        ({"init": {"normal": [0.0, 1.0]}}, {"init": [[0.0, 1.0]]},
         r"grid.init: lists \[lo, hi\] pairs, but train.init is {normal = \[mean, std\]}"),
        ({}, {"init_std": [1.0]}, "grid.init_std: varies a normal init, but train.init is "
                                  r"\[lo, hi\]; give train.init = {normal = \[mean, std\]}"),
        ({"init": {"normal": [0.0, 1.0]}}, {"init_lo": [0.0]}, "grid.init_lo: varies a uniform"),
        ({"init": {"normal": [0.0, 1.0]}}, {"init_std": [0.0]},
         "grid.init_std: must be a finite number > 0"),
        ({}, {"init_lo": [0.5, 2.0]}, "grid.init_lo: needs init_lo < init_hi at every point"),
        ({"init": {"normal": [0.0, -1.0]}}, {}, "train.init: normal needs a finite mean and a "
                                                "finite std > 0"),
        ({"init": {"normal": [0.0, 1.0], "path": "w0.npz"}}, {}, "train.init: must be"),
        ({"init": {"path": "missing.npz"}}, {}, "train.init: init file not found"),
    ],
)  # fmt: skip
def test_bad_init_values_are_one_line_errors(train, grid, message):
    spec = {"name": "bad", "data": {"builtin": "seed"}, "train": {"epochs": 2, **train},
            "grid": grid}  # fmt: skip
    with pytest.raises(RunnerError, match=message) as err:
        spec_from_dict(spec)
    assert "\n" not in str(err.value)


def test_an_init_table_in_grid_or_sample_exits_2(tmp_path, capsys):
    for n, text in enumerate((
        "[grid]\ninit = [{normal = [0.0, 1.0]}]\n",
        '[sample]\npoints = 2\ninit = {choice = [[0.0, 1.0], {path = "w0.npz"}]}\n',
        "[sample]\npoints = 2\ninit_mean = {uniform = [0.0, 1.0]}\n",
    )):  # fmt: skip
        spec = write(tmp_path, f'name = "t{n}"\n[train]\nepochs = 2\n{text}')
        assert main(["sweep", str(spec), "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"{spec}: " in err, err
        assert not (tmp_path / "out").exists()


def test_the_default_init_keeps_its_form_and_hash():
    plain = {"name": "p", "data": {"builtin": "seed"}, "train": {"epochs": 3}}
    a = spec_from_dict(plain)
    b = spec_from_dict({**plain, "train": {"epochs": 3, "init": [0.0, 1.0]}})
    assert a.hash == b.hash and a.resolved()["train"]["init"] == [0.0, 1.0]
    assert a.init_weights is None


def test_a_spec_file_finds_its_init_file_beside_it(tmp_path):
    Wh, Wz = ref.init_normal(0, 2, 3, 1, 0.0, 1.0, True)
    (tmp_path / "sub").mkdir()
    np.savez(tmp_path / "sub" / "w0.npz", Wh=Wh, Wz=Wz)
    spec = load_spec(write(tmp_path / "sub", PATH_SPEC.format(hidden=3, extra="")))
    assert np.array_equal(spec.init_weights[0], Wh) and np.array_equal(spec.init_weights[1], Wz)


SIM_SPEC = """
name = "{name}"
[data]
builtin = "seed"
[train]
epochs = 12
hidden = 3
bias = true
activation = "tanh"
init = {init}
[grid]
alpha = [0.05, 0.3]
seed = [0, 1, 2]
{extra}
[sweep]
chunk_runs = 4
"""


@pytest.mark.parametrize(
    ("name", "init", "extra"),
    [("normal", "{normal = [0.0, 0.5]}", "init_std = [0.5, 2.0]"),
     ("file", '{path = "w0.npz"}', "")],
)  # fmt: skip
def test_the_cuda_backend_starts_from_the_same_weights(tmp_path, name, init, extra):
    """--backend cuda (numba-cuda's simulator): a normal init and a file's give the CPU's
    bytes (runner.run.cuda_sweep draws them as the CPU worker does)."""
    import os
    import subprocess

    from tests.helpers import ROOT, sweep_cmd

    Wh, Wz = ref.init_normal(3, 2, 3, 1, 0.0, 1.0, True)
    np.savez(tmp_path / "w0.npz", Wh=Wh, Wz=Wz)
    spec = write(tmp_path, SIM_SPEC.format(name=name, init=init, extra=extra))
    runner.sweep(spec, out=tmp_path / "cpu", jobs=1, progress=False, quiet=True)
    sim = dict(os.environ, PYTHONPATH=str(ROOT), NUMBA_ENABLE_CUDASIM="1")
    r = subprocess.run(sweep_cmd(spec, tmp_path / "gpu", "--backend", "cuda"),
                       capture_output=True, text=True, env=sim, timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert_same_results(tmp_path / "gpu" / name, tmp_path / "cpu" / name)
