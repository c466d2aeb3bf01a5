"""Held-out rows in the kernel: val_loss, its statistics and patience, against the
NumPy reference, bit for bit; runner.train(validation=) and runner.train_many."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import runner
from runner.kernel import codes
from runner.kernel.reference import train_reference
from runner.run.memory import train_tile
from runner.run.train import init_weights, run_batch

VARIANTS = [  # activation, output, update, bias, dtype, patience
    ("sigmoid", "linear", "sequential", False, "float64", 0),
    ("tanh", "sigmoid", "simultaneous", True, "float32", 7),
    ("relu", "linear", "sequential", True, "float64", 5),
    ("identity", "sigmoid", "sequential", False, "float64", 3),
]


def data(n, ni, no, nv, seed):
    rng = np.random.default_rng(seed)
    X, Y = rng.standard_normal((n, ni)), rng.standard_normal((n, no))
    return X, Y, rng.standard_normal((nv, ni)), rng.standard_normal((nv, no))


def check_against_reference(X, Y, Xv, Yv, hidden, alphas, epochs, variant, tile=None,
                            every=1):  # fmt: skip
    activation, output, update, bias, dtype, patience = variant
    R = len(alphas)
    Wh, Wz = init_weights(list(range(R)), X.shape[1], hidden, Y.shape[1], (-1.0, 1.0), bias)
    W0 = Wh.copy(), Wz.copy()
    res = run_batch(
        X, Y, Wh, Wz, alphas, epochs, output, update, every, None, None, dtype=dtype,
        activation=activation, bias=bias, validation=(Xv, Yv), patience=patience, tile=tile,
    )  # fmt: skip
    stops = []
    for r in range(R):
        ref = train_reference(
            X, Y, W0[0][:, :, r], W0[1][:, :, r], alphas[r], epochs, output, update,
            dtype=dtype, activation=activation, bias=bias, validation=(Xv, Yv),
            patience=patience,
        )  # fmt: skip
        n = len(ref.loss)
        recorded = [e for e in range(1, n + 1) if e == 1 or e % every == 0]
        rows = [e - 1 for e in recorded]
        slot = [e - 1 if every == 1 else e // every for e in recorded]
        assert res.istats[r, codes.EPOCHS_RUN] == n
        assert np.array_equal(res.loss[slot, r], ref.loss[rows], equal_nan=True)
        assert np.array_equal(res.val_loss[slot, r], ref.val_loss[rows], equal_nan=True)
        assert np.array_equal(res.Wh[:, :, r], ref.Wh, equal_nan=True)
        assert np.array_equal(res.Wz[:, :, r], ref.Wz, equal_nan=True)
        v = res.vstats[r]
        assert v[codes.FINAL_VAL_LOSS] == ref.val_loss[-1] or np.isnan(ref.val_loss[-1])
        finite = np.where(np.isnan(ref.val_loss), np.inf, ref.val_loss)
        best = int(np.argmin(finite)) + 1 if np.isfinite(finite.min()) else 0
        assert v[codes.MIN_VAL_EPOCH] == best
        if best:
            assert v[codes.MIN_VAL_LOSS] == ref.val_loss[best - 1]
        stopped = res.istats[r, codes.STATUS] == codes.STOPPED_EARLY
        assert stopped == (ref.stopped_epoch is not None)
        stops.append(stopped)
    return stops


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(map(str, v)))
def test_val_loss_statistics_and_patience_are_the_reference_bit_for_bit(variant):
    X, Y, Xv, Yv = data(12, 3, 1, 5, seed=1)
    stops = check_against_reference(X, Y, Xv, Yv, 5, np.geomspace(1e-3, 0.5, 6), 60, variant)
    if variant[-1] in (5, 7):  # these stop some runs early, and run others to the end
        assert any(stops) and not all(stops)


def test_held_out_rows_are_not_trained_on():
    """Huge held-out targets leave the training bit for bit unchanged; val_loss moves."""
    X, Y, Xv, Yv = data(10, 2, 1, 4, seed=3)
    kw = dict(alpha=[0.01, 0.1, 0.3], seeds=[1, 2, 3], hidden=3, epochs=40)
    plain = runner.train_many(X, Y, **kw)
    small = runner.train_many(X, Y, validation=(Xv, Yv), **kw)
    huge = runner.train_many(X, Y, validation=(Xv, Yv * 1e6), **kw)
    for res in (small, huge):
        assert np.array_equal(res.loss, plain.loss, equal_nan=True)
        assert np.array_equal(res.Wh, plain.Wh) and np.array_equal(res.Wz, plain.Wz)
    assert plain.val_loss is None
    ran = ~np.isnan(plain.loss)
    assert np.array_equal(np.isnan(huge.val_loss), ~ran)
    assert (huge.val_loss[ran] > 1e6 * small.val_loss[ran]).all()


def test_train_validation_and_train_many_are_train_run_by_run():
    X, Y, Xv, Yv = data(10, 2, 1, 4, seed=2)
    alphas, seeds = [0.01, 0.1, 0.3], [1, 2, 3]
    kw = dict(hidden=3, epochs=50, activation="tanh", validation=(Xv, Yv), patience=4)
    many = runner.train_many(X, Y, alpha=alphas, seeds=seeds, **kw)
    for r, (a, s) in enumerate(zip(alphas, seeds, strict=True)):
        one = runner.train(X, Y, alpha=a, seed=s, **kw)
        n = one.epochs_run
        assert np.array_equal(one.loss, many.loss[:n, r])
        assert np.array_equal(one.val_loss, many.val_loss[:n, r])
        assert np.array_equal(one.Wh, many.Wh[:, :, r]) and np.array_equal(one.Wz, many.Wz[:, :, r])
        stopped = many.istats[r, codes.STATUS] == codes.STOPPED_EARLY
        assert (one.stopped_epoch == n) if stopped else one.stopped_epoch is None
    assert many.istats[:, codes.STATUS].tolist().count(codes.STOPPED_EARLY) >= 1


def test_a_few_runs_use_a_narrow_tile():
    assert train_tile(10, 2, 3, 1, "float64", 50) == 4
    assert train_tile(10, 2, 3, 1, "float64", 50, runs=7) == 8
    assert train_tile(10, 2, 3, 1, "float64", 50, runs=1000) > 8


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        (dict(patience=3), "patience"),
        (dict(patience=-1), "patience"),
        (dict(validation=([[1.0, 2.0]], [[1.0], [2.0]])), "Y"),
        (dict(validation=([[1.0]], [[1.0]])), "validation"),
    ],
)
def test_bad_validation_arguments_name_their_key(kwargs, key):
    X, Y, _, _ = data(6, 2, 1, 0, seed=0)
    with pytest.raises(runner.RunnerError) as err:
        runner.train(X, Y, epochs=3, **kwargs)
    assert err.value.key == key


@pytest.mark.slow
@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 40), ni=st.integers(1, 5), no=st.integers(1, 3), nv=st.integers(1, 9),
    hidden=st.integers(1, 9), tile=st.sampled_from([4, 8, 16, 32, 64]),
    every=st.integers(1, 6), variant=st.sampled_from(VARIANTS), seed=st.integers(0, 99),
)  # fmt: skip
def test_random_shapes_tiles_and_every(n, ni, no, nv, hidden, tile, every, variant, seed):
    X, Y, Xv, Yv = data(n, ni, no, nv, seed)
    alphas = np.geomspace(1e-3, 0.3, 5)
    check_against_reference(X, Y, Xv, Yv, hidden, alphas, 30, variant, tile, every)


def _csv(path, X, Y, part):
    rows = zip(X.tolist(), Y.tolist(), part.tolist(), strict=True)
    lines = ["x1,x2,y,part"] + [f"{a!r},{b!r},{y!r},{p}" for (a, b), (y,), p in rows]
    path.write_text("\n".join(lines) + "\n")


def _sweep(tmp_path, name, csv, validation=True, patience=None):
    data = {"path": str(csv), "features": ["x1", "x2"], "targets": ["y"]}
    if validation:
        data["validation"] = {"column": "part", "value": 3}
    train = {"epochs": 40, "hidden": 3, "activation": "tanh", "init": [-1.0, 1.0]}
    if patience:
        train["patience"] = patience
    spec = {"name": name, "data": data, "train": train,
            "grid": {"alpha": [0.01, 0.1, 0.4], "seed": [0, 1]}}  # fmt: skip
    runner.sweep(spec, out=tmp_path, jobs=1, quiet=True)
    return runner.load(tmp_path / name)


def test_a_sweep_trains_on_the_training_rows_and_records_the_held_out_loss(tmp_path):
    rng = np.random.default_rng(5)
    X, Y = rng.uniform(0, 1, (14, 2)), rng.uniform(0, 1, (14, 1))
    part = np.arange(14) % 4  # rows 3, 7, 11 held out
    held = part == 3
    _csv(tmp_path / "d.csv", X, Y, part)
    _csv(tmp_path / "huge.csv", X, np.where(held[:, None], Y * 1e6, Y), part)
    _csv(tmp_path / "train.csv", X[~held], Y[~held], part[~held])
    a = _sweep(tmp_path, "a", tmp_path / "d.csv")
    b = _sweep(tmp_path, "b", tmp_path / "huge.csv")
    only = _sweep(tmp_path, "only", tmp_path / "train.csv", validation=False)
    la, lb, lo = (r.losses().sort_values(["run_id", "epoch"]) for r in (a, b, only))
    assert la["loss"].to_numpy().tobytes() == lo["loss"].to_numpy().tobytes()
    assert lb["loss"].to_numpy().tobytes() == lo["loss"].to_numpy().tobytes()
    assert "val_loss" not in lo and la["val_loss"].dtype == np.float32  # loss_dtype's
    assert (lb["val_loss"] != la["val_loss"]).all() and lb["val_loss"].min() > 1e10
    runs = a.runs.sort_values("run_id")
    for row in runs.itertuples():
        W0 = init_weights([row.seed], 2, 3, 1, (-1.0, 1.0))
        ref = train_reference(X[~held], Y[~held], W0[0][:, :, 0], W0[1][:, :, 0], row.alpha, 40,
                              activation="tanh", diverge_factor=1e6,
                              validation=(X[held], Y[held]))  # fmt: skip
        mine = la[la["run_id"] == row.run_id]
        assert np.array_equal(mine["val_loss"].to_numpy(), ref.val_loss.astype(np.float32))
        assert row.final_val_loss == ref.val_loss[-1]
        assert row.min_val_loss == ref.val_loss.min()
        assert row.min_val_loss_epoch == int(np.argmin(ref.val_loss)) + 1
    p = _sweep(tmp_path, "p", tmp_path / "d.csv", patience=3)
    pr = p.runs.sort_values("run_id")
    stopped = pr["stopped_early_epoch"].notna()
    assert stopped.any()
    assert (pr["stopped_early_epoch"][stopped] == pr["epochs_run"][stopped]).all()
    for row in pr[stopped].itertuples():  # the stored weights: its best held-out epoch's
        W0 = init_weights([row.seed], 2, 3, 1, (-1.0, 1.0))
        ref = train_reference(X[~held], Y[~held], W0[0][:, :, 0], W0[1][:, :, 0], row.alpha, 40,
                              activation="tanh", diverge_factor=1e6,
                              validation=(X[held], Y[held]), patience=3)  # fmt: skip
        Wh, Wz = p.weights(row.run_id)
        assert np.array_equal(Wh, ref.Wh) and np.array_equal(Wz, ref.Wz)


def test_held_out_code_compiles_only_into_the_variants_with_held_out_rows():
    """A variant without held-out rows swaps their pass, losses and patience for steps that
    compile to nothing (a cold compile of about half the time); one with them keeps all."""
    from runner.kernel import cpu, lanes

    plain, held = (cpu.kernel(False, True, False, "tanh", held_out=h) for h in (False, True))
    assert plain is not held and plain.py_func.__name__ != held.py_func.__name__
    names = ("_held_out", "_val_losses", "_out_of_patience")
    assert [plain.py_func.__globals__[k] for k in names] == list(cpu._NO_HELD_OUT)
    assert held.py_func.__globals__["_val_losses"] is lanes._val_losses
    assert held.py_func.__globals__["_out_of_patience"] is lanes._out_of_patience
    assert held.py_func.__globals__["_held_out"] not in cpu._NO_HELD_OUT
