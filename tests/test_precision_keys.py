"""`dtype` and `fastmath` as spec keys, grid axes, per-kernel-call keys and columns.

The plumbing (spec -> plan -> driver -> run_batch keywords -> columns) is tested
with the float64 kernel standing in, and a grid over both keys trains each mode for real.
"""

import numpy as np
import pandas as pd
import pytest

import runner
from runner.errors import RunnerError
from runner.kernel import reference
from runner.plan.chunks import Plan
from runner.plan.spec import build_spec
from runner.run import train

GRID = {
    "name": "modes",
    "train": {"epochs": 60},
    "grid": {
        "dtype": ["float64", "float32"],
        "fastmath": [False, True],
        "alpha": [0.05, 0.2],
        "seed": {"start": 0, "stop": 3},
    },
    "sweep": {"chunk_runs": 4},
}


def test_keys_are_validated_and_per_call():
    spec = build_spec(GRID, "m.toml")
    assert spec.train["dtype"] == "float64" and spec.train["fastmath"] is False
    assert spec.axis_names == ["dtype", "fastmath", "alpha", "seed"]
    assert spec.resolved()["grid"]["dtype"] == ["float64", "float32"]
    plan = Plan([spec.layer])
    modes = set()
    for c in range(plan.n_chunks):
        call = plan.chunk(c).call()
        modes.add((call["dtype"], call["fastmath"]))
    assert modes == {("float64", False), ("float64", True), ("float32", False), ("float32", True)}
    with pytest.raises(RunnerError, match=r"grid\.dtype: must be one of 'float64', 'float32'"):
        build_spec({"name": "m", "grid": {"dtype": ["float16"]}}, "m.toml")
    with pytest.raises(RunnerError, match=r"train\.fastmath: must be true or false"):
        build_spec({"name": "m", "train": {"fastmath": "yes"}}, "m.toml")


def test_driver_passes_modes_and_writes_columns(tmp_path, monkeypatch):
    """Every chunk's (dtype, fastmath) reaches run_batch; runs and losses carry them."""
    seen = []
    real = train.run_batch

    def recording(*args, dtype="float64", fastmath=False, **kw):
        seen.append((dtype, fastmath, len(args[4])))
        return real(*args, **kw)  # the float64 kernel stands in for every mode here

    monkeypatch.setattr(train, "run_batch", recording)  # the worker imports it per call
    report = runner.sweep(GRID, out=tmp_path, jobs=1, progress=False)
    assert report.runs_trained == 24
    assert sorted({(d, f) for d, f, _ in seen}) == [
        ("float32", False), ("float32", True), ("float64", False), ("float64", True)
    ]  # fmt: skip
    assert sum(n for *_, n in seen if n > 1) == 24  # chunks of 3 runs; warm-ups train 1
    res = runner.load(tmp_path / "modes")
    runs = res.runs
    assert isinstance(runs["dtype"].dtype, pd.CategoricalDtype)
    assert runs["fastmath"].dtype == bool
    counts = runs.groupby(["dtype", "fastmath"], observed=True).size()
    assert (counts == 6).all() and len(counts) == 4
    losses = res.losses()
    assert {"dtype", "fastmath"} <= set(losses.columns)
    assert list(res.summary().columns[:3]) == ["dtype", "fastmath", "alpha"]


def test_modes_not_swept_are_run_columns_only(tmp_path):
    runner.sweep({"name": "plain", "train": {"epochs": 20}, "grid": {"alpha": [0.1, 0.2]}},
                 out=tmp_path, progress=False)  # fmt: skip
    res = runner.load(tmp_path / "plain")
    assert {"dtype", "fastmath"} <= set(res.runs.columns)
    assert not {"dtype", "fastmath"} & set(res.losses().columns)


def test_precision_grid_trains_each_mode(tmp_path):
    """After the kernel merge: exact float32 runs equal the float32 reference; float64
    runs equal a float64-only sweep; fastmath runs are finite where exact ones are."""
    runner.sweep(GRID, out=tmp_path / "all", jobs=2, progress=False)
    only64 = {**GRID, "grid": {k: v for k, v in GRID["grid"].items() if k not in ("dtype",
              "fastmath")}}  # fmt: skip
    runner.sweep(only64, out=tmp_path / "64", jobs=1, progress=False)
    res = runner.load(tmp_path / "all" / "modes")
    runs = res.runs
    exact64 = runs[(runs["dtype"] == "float64") & ~runs["fastmath"]]
    base = runner.load(tmp_path / "64" / "modes").runs
    cols = ["alpha", "seed", "epochs_run", "final_loss", "min_loss", "diverged"]
    got, want = exact64[cols].reset_index(drop=True), base[cols].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    X = np.array([[1, 1], [1, 2], [2, 1], [2, 2]], float)
    Y = np.array([[0], [1], [2], [3]], float)
    exact32 = runs[(runs["dtype"] == "float32") & ~runs["fastmath"]]
    for row in exact32.itertuples():
        Wh, Wz = reference.init_weights(row.seed, 2, 4, 1)
        ref = reference.train_reference(X, Y, Wh, Wz, row.alpha, 60, dtype="float32",
                                        diverge_factor=row.diverge_factor)  # fmt: skip
        assert row.final_loss == float(ref.loss[-1]) or not np.isfinite(ref.loss[-1])
