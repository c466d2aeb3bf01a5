"""[sample]: points in range, the same in any process, prefix-stable; bad input in one line."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from helpers import ROOT, env
from hypothesis import given
from hypothesis import strategies as st

from runner.cli import main
from runner.errors import RunnerError
from runner.plan.sample import build_sample
from runner.plan.spec import TRAIN_DEFAULTS, build_spec

SAMPLE = {
    "points": 300,
    "method": "sobol",
    "seed": 3,
    "alpha": {"loguniform": [1e-4, 1.0]},
    "hidden": {"choice": [2, 4, 8]},
    "init_hi": {"uniform": [0.5, 2.0]},
    "epochs": {"uniform": [10, 20]},
    "output": {"choice": ["linear", "sigmoid"]},
}


def points(sample: dict) -> dict[str, np.ndarray]:
    def fail(key, msg):
        raise RunnerError(msg, file="t", key=key)

    return build_sample(sample, dict(TRAIN_DEFAULTS), {}, fail)[1]


@pytest.mark.parametrize("method", ["sobol", "random"])
def test_values_in_their_ranges(method):
    p = points(SAMPLE | {"method": method})
    assert p["alpha"].dtype == np.float64 and ((p["alpha"] >= 1e-4) & (p["alpha"] <= 1.0)).all()
    assert p["alpha"].min() < 1e-3 and p["alpha"].max() > 0.1  # spread over the decades
    assert set(p["hidden"].tolist()) == {2, 4, 8} and p["hidden"].dtype == np.int32
    assert ((p["init_hi"] >= 0.5) & (p["init_hi"] <= 2.0)).all()
    assert set(p["epochs"].tolist()) == set(range(10, 21))  # integers, both ends included
    assert set(p["output"].tolist()) == {0, 1}  # category codes of linear, sigmoid
    assert len(p["alpha"]) == 300  # continuous keys: no two points alike


@pytest.mark.parametrize("method", ["sobol", "random"])
def test_prefix_stable_when_points_grow(method):
    small = points(SAMPLE | {"method": method, "points": 200})
    big = points(SAMPLE | {"method": method, "points": 400})
    for key, values in small.items():
        np.testing.assert_array_equal(big[key][:200], values)


def test_repeated_points_are_trained_once():
    p = points({"points": 50, "hidden": {"choice": [2, 4, 8]}})
    assert sorted(p["hidden"].tolist()) == [2, 4, 8]


def test_same_points_in_another_process_and_folder(tmp_path):
    spec = {"name": "s", "sample": SAMPLE}
    here = build_spec(spec, "s").sample["sha256"]
    code = (
        "import json, sys; from runner.plan.spec import build_spec; "
        "print(build_spec(json.loads(sys.argv[1]), 's').sample['sha256'])"
    )
    r = subprocess.run([sys.executable, "-c", code, json.dumps(spec)], cwd=tmp_path, env=env(),
                       capture_output=True, text=True, check=True)  # fmt: skip
    assert r.stdout.strip() == here
    assert (ROOT / "runner").is_dir()


def test_sample_crossed_with_grid_runs_and_columns(tmp_path):
    import runner

    raw = {
        "name": "crossed",
        "train": {"epochs": 30},
        "grid": {"seed": {"start": 0, "stop": 3}},
        "sample": {"points": 5, "alpha": {"loguniform": [0.01, 0.3]}, "hidden": {"choice": [2, 3]}},
    }
    report = runner.sweep(raw, out=tmp_path, progress=False)
    assert report.runs == 15
    res = runner.load(tmp_path / "crossed")
    assert res.axes == ["hidden", "alpha", "seed"]
    assert len(res.summary()) == 5 and (res.summary()["runs"] == 3).all()
    losses = res.losses()
    assert {"hidden", "alpha", "seed"} <= set(losses.columns)


BAD = [
    ({"alpha": {"uniform": [1.0, 0.5]}}, "sample.alpha: uniform needs lo < hi"),
    ({"alpha": {"loguniform": [0.0, 1.0]}}, "sample.alpha: must be a finite number > 0"),
    ({"init_lo": {"loguniform": [-1.0, 0.5]}}, "sample.init_lo: loguniform needs lo > 0"),
    ({"hidden": {"choice": []}}, "sample.hidden: choice needs a non-empty list"),
    ({"hidden": {"choice": [2, 2]}}, "sample.hidden: choice lists a value twice"),
    ({"alpha": {"normal": [0, 1]}}, "sample.alpha: must be one table"),
    ({"alhpa": {"uniform": [0.1, 0.2]}}, "sample.alhpa: unknown key 'alhpa'; did you mean"),
    ({"output": {"uniform": [0, 1]}}, "sample.output: uniform needs a numeric key"),
    ({"seed": {"uniform": [0.5, 3]}}, "sample.seed: must be an integer"),
    ({"init_hi": {"uniform": [0.5, 2.0]}, "init_lo": {"uniform": [0.0, 1.0]}}, "init_lo below"),
    ({}, "sample: names no key to sample"),
]


@pytest.mark.parametrize(("dists", "message"), BAD)
def test_bad_distributions_exit_2_with_one_line(tmp_path, capsys, dists, message):
    spec = tmp_path / "s.toml"
    spec.write_text('name = "x"\n[train]\nepochs = 5\n')
    text = 'name = "x"\n[train]\nepochs = 5\n[sample]\npoints = 10\n'
    for key, dist in dists.items():
        kind, args = next(iter(dist.items()))
        text += f"{key} = {{ {kind} = {json.dumps(args)} }}\n"
    spec.write_text(text)
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and str(spec) in err
    assert not (tmp_path / "out").exists()


def test_axis_both_in_grid_and_sample_is_refused(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text('name = "x"\n[grid]\nalpha = [0.1]\n[sample]\npoints = 4\n'
                    'alpha = { uniform = [0.1, 0.2] }\n')  # fmt: skip
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out")]) == 2
    assert "sample.alpha: is also a [grid] axis" in capsys.readouterr().err


scalars = st.one_of(
    st.integers(-3, 50),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=5),
    st.none(),
)
dists = st.one_of(
    st.fixed_dictionaries({"uniform": st.lists(scalars, max_size=3)}),
    st.fixed_dictionaries({"loguniform": st.lists(scalars, max_size=3)}),
    st.fixed_dictionaries({"choice": st.lists(scalars, max_size=4)}),
    st.dictionaries(st.text(max_size=6), scalars, max_size=2),
    scalars,
)
sample_keys = st.sampled_from(
    ["alpha", "hidden", "epochs", "seed", "init", "init_lo", "init_hi", "output", "stop_below",
     "dtype", "fastmath", "bogus"]
)  # fmt: skip


@given(
    table=st.dictionaries(sample_keys, dists, max_size=3),
    points=st.one_of(st.integers(-1, 40), scalars),
    method=st.sampled_from(["sobol", "random", "grid", 3]),
    seed=st.one_of(st.integers(-1, 2**64), scalars),
    grid=st.sampled_from([{}, {"alpha": [0.1]}, {"hidden": [2, 3]}]),
)
def test_fuzzed_samples_accept_or_raise_one_line(table, points, method, seed, grid):
    raw = {"name": "f", "train": {"epochs": 3}, "grid": grid,
           "sample": {"points": points, "method": method, "seed": seed, **table}}  # fmt: skip
    try:
        spec = build_spec(raw, "fuzz.toml")
    except RunnerError as exc:
        assert "\n" not in str(exc)
        assert str(exc).startswith("fuzz.toml: sample")
        return
    assert 1 <= spec.n_runs <= points * math.prod(len(v) for v in grid.values())
    assert spec.n_chunks >= 1
    sampled = {k for k in spec.sample if k not in ("points", "method", "seed", "sha256")}
    assert sampled and sampled == set(table)
