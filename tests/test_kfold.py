"""k-fold cross-validation ([data] kfold): the fold of each row by the rule in
docs/data.md (computed here again), the axis ``fold`` in the run order, a k-fold sweep
equal fold by fold to single-split sweeps holding out the same rows, shards and growth,
and bad values exiting 2 with one line and nothing written."""

import itertools

import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers import assert_same_results, read_results
from hypothesis import given
from hypothesis import strategies as st

import runner
from runner.cli import main
from runner.plan.chunks import Plan
from runner.plan.data import random as random_data
from runner.plan.folds import fold_of_rows, rows_of
from runner.plan.spec import spec_from_dict
from runner.results import store


def expected_folds(n: int, k: int, seed: int) -> list[list[int]]:
    """Each fold's rows by the rule: row p[j] is in fold j mod k, p the permutation."""
    p = np.random.default_rng(seed).permutation(n)
    return [sorted(int(p[j]) for j in range(n) if j % k == f) for f in range(k)]


def random_spec(n: int, **data) -> dict:
    return {"name": "k", "data": {"random": {"samples": n, "inputs": 2}, **data}}


@pytest.mark.parametrize(("n", "k", "seed"), [(10, 2, 0), (11, 3, 7), (5, 5, 1), (101, 4, 123)])
def test_each_rows_fold_follows_the_rule(n, k, seed):
    spec = spec_from_dict(random_spec(n, kfold=k, split_seed=seed))
    assert spec.holdout is None and spec.folds.shape == (n,)
    assert [np.flatnonzero(spec.folds == f).tolist() for f in range(k)] == expected_folds(
        n, k, seed
    )
    assert spec.data["kfold"] == k and spec.data["split_seed"] == seed
    assert spec.data["folds"]["rows"] == n
    assert spec.grid["fold"] == list(range(k)) and "fold" in spec.axis_names


def test_split_seed_defaults_to_0():
    spec = spec_from_dict(random_spec(20, kfold=3))
    assert [np.flatnonzero(spec.folds == f).tolist() for f in range(3)] == expected_folds(20, 3, 0)
    assert spec.hash == spec_from_dict(random_spec(20, kfold=3, split_seed=0)).hash
    assert spec.hash != spec_from_dict(random_spec(20, kfold=3, split_seed=1)).hash


@given(n=st.integers(2, 500), k=st.integers(2, 20), seed=st.integers(0, 2**63 - 1))
def test_fold_of_rows_property(n, k, seed):
    k = min(k, n)
    folds = fold_of_rows(n, k, seed)
    assert [np.flatnonzero(folds == f).tolist() for f in range(k)] == expected_folds(n, k, seed)
    assert set(np.bincount(folds, minlength=k).tolist()) <= {n // k, -(-n // k)}


def test_fold_comes_just_before_init_and_one_fold_a_chunk():
    grid = {"hidden": [2, 3], "init": [[0.0, 1.0], [-1.0, 1.0]], "alpha": [0.1, 0.2]}
    raw = random_spec(9, kfold=3) | {"grid": grid, "sweep": {"chunk_runs": 3}}
    spec = spec_from_dict(raw)
    plan = Plan([spec.layer])
    got = []
    for c in range(plan.n_chunks):
        cols = plan.chunk(c).columns
        assert len(set(cols["fold"].tolist())) == 1  # a chunk is one kernel call, one fold
        got += zip(*(cols[k].tolist() for k in ("hidden", "fold", "init_lo", "alpha")),
                   strict=True)  # fmt: skip
    assert got == list(itertools.product([2, 3], [0, 1, 2], [0.0, -1.0], [0.1, 0.2]))


def test_a_spec_without_kfold_has_no_fold():
    spec = spec_from_dict(random_spec(9))
    assert spec.folds is None and "fold" not in spec.grid and "fold" not in spec.axis_names
    assert "fold" not in spec.resolved()["train"] and "fold" not in spec.model_params


def test_standardize_per_fold_keeps_raw_rows_and_sigmoid_targets():
    """Each fold's statistics by its training rows; X stays raw in the spec; a sigmoid
    output keeps the targets as they are."""
    spec = spec_from_dict(random_spec(12, kfold=3, standardize=True)
                          | {"train": {"output": "sigmoid"}})  # fmt: skip
    X, Y = random_data(12, 2, 1, 0)
    assert np.array_equal(spec.X, X) and np.array_equal(spec.Y, Y)
    assert len(spec.data["scaling"]) == 3
    for f, stats in enumerate(spec.data["scaling"]):
        t = spec.folds != f
        assert stats["x_mean"] == X[t].mean(0).tolist() and stats["x_scale"] == X[t].std(0).tolist()
        assert stats["y_mean"] is None and stats["y_scale"] is None
        Xf, Yf, held = rows_of(spec.X, spec.Y, None, spec.folds, spec.data["scaling"], f)
        assert np.array_equal(Xf, (X - X[t].mean(0)) / X[t].std(0)) and np.array_equal(Yf, Y)
        assert np.array_equal(held, ~t)


# ----- sweeps: fold by fold the single split's -----
def _csv(path, X, Y, part):
    rows = zip(X.tolist(), Y.tolist(), part.tolist(), strict=True)
    lines = ["x1,x2,y,part"] + [f"{a!r},{b!r},{y!r},{p}" for (a, b), (y,), p in rows]
    path.write_text("\n".join(lines) + "\n")


N, K, SEED = 13, 3, 5
TRAIN = {"epochs": 40, "hidden": 3, "activation": "tanh", "init": [-1.0, 1.0], "patience": 3}
GRID = {"alpha": [0.01, 0.1, 0.4], "seed": [0, 1]}


@pytest.fixture(scope="module")
def data_csv(tmp_path_factory):
    """A CSV whose ``part`` column holds each row's fold by the rule (not a feature)."""
    folder = tmp_path_factory.mktemp("kfold")
    rng = np.random.default_rng(3)
    X, Y = rng.uniform(0, 2, (N, 2)), rng.uniform(-1, 3, (N, 1))
    part = np.zeros(N, dtype=np.int64)
    for f, rows in enumerate(expected_folds(N, K, SEED)):
        part[rows] = f
    _csv(folder / "d.csv", X, Y, part)
    return folder / "d.csv"


def kfold_spec(csv, name="kf", **grid) -> dict:
    data = {"path": str(csv), "features": ["x1", "x2"], "targets": ["y"], "standardize": True,
            "kfold": K, "split_seed": SEED}  # fmt: skip
    return {"name": name, "data": data, "train": TRAIN, "grid": GRID | grid,
            "sweep": {"chunk_runs": 4}}  # fmt: skip


def test_a_kfold_sweep_is_the_single_split_sweeps_fold_by_fold(tmp_path, data_csv):
    runner.sweep(kfold_spec(data_csv), out=tmp_path, jobs=1, quiet=True)
    kf = runner.load(tmp_path / "kf")
    losses = kf.losses().sort_values(["run_id", "epoch"])
    rows = np.random.default_rng(9).uniform(-1, 3, (4, 2))
    for f in range(K):
        one = kfold_spec(data_csv, f"f{f}")
        one["data"] = {k: v for k, v in one["data"].items() if k not in ("kfold", "split_seed")}
        one["data"]["validation"] = {"column": "part", "value": f}
        runner.sweep(one, out=tmp_path, jobs=1, quiet=True)
        single = runner.load(tmp_path / f"f{f}")
        assert kf.spec["data"]["scaling"][f] == single.spec["data"]["scaling"]
        mine = kf.runs[kf.runs["fold"] == f].sort_values("run_id")
        theirs = single.runs.sort_values("run_id")
        assert len(mine) == len(theirs) == 6
        for col in ("alpha", "seed", "epochs_run", "final_loss", "min_loss", "final_val_loss",
                    "min_val_loss", "min_val_loss_epoch", "stopped_early_epoch"):  # fmt: skip
            assert mine[col].tolist() == theirs[col].tolist(), (f, col)
        a = losses[losses["run_id"].isin(mine["run_id"])]
        b = single.losses().sort_values(["run_id", "epoch"])
        assert (a["fold"] == f).all() and "fold" not in b
        for col in ("epoch", "loss", "val_loss"):
            assert a[col].to_numpy().tobytes() == b[col].to_numpy().tobytes(), (f, col)
        for r, s in zip(mine["run_id"], theirs["run_id"], strict=True):
            for w, v in zip(kf.weights(r), single.weights(s), strict=True):
                assert np.array_equal(w, v)
            assert np.array_equal(kf.predict(r, rows), single.predict(s, rows))  # its fold's
    assert kf.runs["stopped_early_epoch"].notna().any()  # patience under kfold
    assert "fold" in pq.read_schema(tmp_path / "kf" / store.RUNS / store.chunk_name(0)).names


def test_two_shards_and_a_shard_then_the_rest_equal_the_whole_sweep(tmp_path, data_csv):
    spec = kfold_spec(data_csv)
    runner.sweep(spec, out=tmp_path / "whole", jobs=1, quiet=True)
    for i in range(2):
        runner.sweep(spec, out=tmp_path / "shards", jobs=1, quiet=True, shard=(i, 2))
    runner.sweep(spec, out=tmp_path / "resumed", jobs=1, quiet=True, shard=(1, 2))
    report = runner.sweep(spec, out=tmp_path / "resumed", jobs=1, quiet=True)
    assert 0 < report.runs_trained < 18
    assert_same_results(tmp_path / "shards" / "kf", tmp_path / "whole" / "kf")
    assert_same_results(tmp_path / "resumed" / "kf", tmp_path / "whole" / "kf")


def test_some_folds_then_the_rest_by_growing(tmp_path, data_csv):
    runner.sweep(kfold_spec(data_csv, fold=[0, 2]), out=tmp_path, jobs=1, quiet=True)
    folder = tmp_path / "kf"
    assert sorted(runner.load(folder).runs["fold"].unique()) == [0, 2]
    before = {p: p.read_bytes() for p in folder.rglob("*.parquet")}
    report = runner.sweep(kfold_spec(data_csv), out=tmp_path, jobs=1, quiet=True)
    assert report.runs_trained == 6 and report.runs_before == 12
    assert all(p.read_bytes() == b for p, b in before.items())
    runner.sweep(kfold_spec(data_csv), out=tmp_path / "whole", jobs=1, quiet=True)
    gl, gr = read_results(folder)
    wl, wr = read_results(tmp_path / "whole" / "kf")
    for f in range(K):  # each fold's runs, in their order: the whole sweep's
        g = gl[gl["run_id"].isin(gr["run_id"][gr["fold"] == f])]
        w = wl[wl["run_id"].isin(wr["run_id"][wr["fold"] == f])]
        for col in ("loss", "val_loss"):
            assert g[col].to_numpy().tobytes() == w[col].to_numpy().tobytes(), (f, col)


def test_the_pilot_trains_on_each_folds_rows(monkeypatch, data_csv):
    """runner plan's pilot: each kernel call on its fold's training rows, standardised by
    its fold's statistics, with its held-out rows as the validation."""
    from runner.plan.cost import Measured
    from runner.run import calibrate, train

    spec = spec_from_dict(kfold_spec(data_csv))
    calls = []
    real = train.run_batch

    def spy(X, Y, *args, validation=None, **kw):
        calls.append((X, Y, validation))
        return real(X, Y, *args, validation=validation, **kw)

    monkeypatch.setattr(train, "run_batch", spy)
    calibrate._pilot(spec, Measured(0, 1e9, "test", kernel_flops_per_s=1e9), 4, 32)
    scaled = []  # each fold's X and Y, standardised by its training rows (by hand)
    for f in range(K):
        t = spec.folds != f
        scaled.append([(A - A[t].mean(0)) / A[t].std(0) for A in (spec.X, spec.Y)])
    got = []
    for X, Y, (Xv, Yv) in calls:
        f = next(f for f in range(K) if np.array_equal(Xv, scaled[f][0][spec.folds == f]))
        Xs, Ys = scaled[f]
        assert np.array_equal(X, Xs[spec.folds != f]) and np.array_equal(Y, Ys[spec.folds != f])
        assert np.array_equal(Yv, Ys[spec.folds == f])
        got.append(f)
    assert sorted(got) == list(range(K))


# ----- bad values -----
DATA = 'path = "d.csv"\nfeatures = ["a", "b"]\ntargets = ["y"]\n'
BAD = [
    ("kfold = 1", "", "data.kfold: must be an integer number of folds >= 2, got 1"),
    ("kfold = 0", "", "data.kfold: must be an integer number of folds >= 2, got 0"),
    ("kfold = -2", "", "data.kfold: must be an integer number of folds >= 2, got -2"),
    ("kfold = 2.0", "", "data.kfold: must be an integer number of folds >= 2, got 2.0"),
    ("kfold = true", "", "data.kfold: must be an integer number of folds >= 2, got True"),
    ('kfold = "3"', "", "data.kfold: must be an integer number of folds >= 2, got '3'"),
    ("kfold = 5", "", "data.kfold: 5 folds need at least 5 rows, the data has 4"),
    ("kfold = 2\nvalidation = 0.5", "", "data.kfold: give validation (one split) or kfold"),
    ("kfold = 2\nsplit_seed = -1", "", "data.split_seed: must be an integer >= 0"),
    ("kfold = 2", "[train]\nfold = 1", "train.fold: is the axis of [data] kfold"),
    ("", "[grid]\nfold = [0, 1]", "grid.fold: needs [data] kfold"),
    ("kfold = 3", "[grid]\nfold = [0, 3]", "grid.fold: lists fold 3; kfold = 3 has folds 0 to 2"),
    ("kfold = 3", "[grid]\nfold = [-1]", "grid.fold: must be >= 0, got -1"),
    ("kfold = 2", '[sample]\npoints = 2\nfold = {uniform = [0, 1]}',
     "sample.fold: is the axis of [data] kfold"),
]  # fmt: skip


@pytest.mark.parametrize(("data", "tables", "message"), BAD)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, data, tables, message):
    (tmp_path / "d.csv").write_text("a,b,y\n1,1,1\n2,1,2\n3,1,3\n4,2,5\n")
    spec = tmp_path / "s.toml"
    spec.write_text(f'name = "x"\n[data]\n{DATA}{data}\n{tables}\n')
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"{spec}: {message}" in err
    assert not out.exists()
