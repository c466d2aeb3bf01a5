"""[record] metrics = ["accuracy"]: the share of outputs above 1/2 exactly where the
targets are 1, on the training and the held-out rows, against the NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import runner_cmd

import runner
from runner.kernel import codes
from runner.kernel.reference import train_reference
from runner.run.train import init_weights, run_batch


def classes(n, ni, no, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, ni))
    return X, (X[:, :no] + 0.5 * rng.standard_normal((n, no)) > 0).astype(float)


@pytest.mark.parametrize(
    ("activation", "dtype", "held_out"),
    [("tanh", "float32", True), ("sigmoid", "float64", False), ("relu", "float64", True)],
)
def test_accuracy_is_the_reference_bit_for_bit(activation, dtype, held_out):
    X, Y = classes(12, 3, 2, seed=1)
    Xv, Yv = classes(5, 3, 2, seed=2)
    alphas = np.geomspace(1e-3, 3.0, 6)
    Wh, Wz = init_weights(range(6), 3, 5, 2, (-1.0, 1.0))
    W0 = Wh.copy(), Wz.copy()
    v = (Xv, Yv) if held_out else None
    res = run_batch(X, Y, Wh, Wz, alphas, 60, "sigmoid", dtype=dtype, activation=activation,
                    validation=v, metrics=("accuracy",))  # fmt: skip
    seen = set()
    for r in range(6):
        ref = train_reference(X, Y, W0[0][:, :, r], W0[1][:, :, r], alphas[r], 60, "sigmoid",
                              dtype=dtype, activation=activation, validation=v,
                              accuracy=True)  # fmt: skip
        n = len(ref.loss)
        assert np.array_equal(res.accuracy[:n, r], ref.accuracy)
        assert res.astats[r, codes.FINAL_ACCURACY] == ref.accuracy[-1]
        if held_out:
            assert np.array_equal(res.val_accuracy[:n, r], ref.val_accuracy)
            assert res.astats[r, codes.FINAL_VAL_ACCURACY] == ref.val_accuracy[-1]
        else:
            assert res.val_accuracy is None and np.isnan(res.astats[r, 1])
        seen.update(ref.accuracy.tolist())
    assert len(seen) > 3  # the accuracies move


def test_runner_train_returns_accuracy():
    X, Y = classes(10, 2, 1, seed=3)
    res = runner.train(X, Y, epochs=30, output="sigmoid", alpha=0.5, metrics=["accuracy"])
    Wh, Wz = init_weights([0], 2, 4, 1)
    ref = train_reference(X, Y, Wh[:, :, 0], Wz[:, :, 0], 0.5, 30, "sigmoid", diverge_factor=1e6,
                          accuracy=True)  # fmt: skip
    assert np.array_equal(res.accuracy, ref.accuracy) and res.val_accuracy is None


def test_a_sweep_keeps_accuracy_in_losses_and_runs(tmp_path):
    X, Y = classes(16, 2, 1, seed=4)
    part = np.arange(16) % 4
    rows = zip(X.tolist(), Y.tolist(), part.tolist(), strict=True)
    lines = ["x1,x2,y,part"] + [f"{a!r},{b!r},{int(y)},{p}" for (a, b), (y,), p in rows]
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    spec = {
        "name": "acc",
        "data": {"path": str(tmp_path / "d.csv"), "features": ["x1", "x2"], "targets": ["y"],
                 "validation": {"column": "part", "value": 0}},
        "train": {"epochs": 25, "hidden": 3, "output": "sigmoid"},
        "grid": {"alpha": [0.1, 1.0, 5.0]},
        "record": {"metrics": ["accuracy"], "every": 4},
    }  # fmt: skip
    runner.sweep(spec, out=tmp_path, jobs=1, quiet=True)
    res = runner.load(tmp_path / "acc")
    losses = res.losses()
    held = part == 0
    for row in res.runs.itertuples():
        Wh, Wz = init_weights([row.seed], 2, 3, 1)
        ref = train_reference(X[~held], Y[~held], Wh[:, :, 0], Wz[:, :, 0], row.alpha, 25,
                              "sigmoid", diverge_factor=1e6, validation=(X[held], Y[held]),
                              accuracy=True)  # fmt: skip
        mine = losses[losses["run_id"] == row.run_id]
        at = mine["epoch"].to_numpy() - 1
        assert np.array_equal(mine["accuracy"].to_numpy(), ref.accuracy[at].astype(np.float32))
        assert np.array_equal(mine["val_accuracy"].to_numpy(),
                              ref.val_accuracy[at].astype(np.float32))  # fmt: skip
        assert row.final_accuracy == ref.accuracy[-1]
        assert row.final_val_accuracy == ref.val_accuracy[-1]


BAD = {
    "linear": ('output = "linear"', "accuracy needs a sigmoid output"),
    "targets": ('output = "sigmoid"', "accuracy needs targets of 0 and 1 only, got 2"),
}


@pytest.mark.parametrize(("case", "metrics"), [("linear", '["accuracy"]'),
                                               ("targets", '["accuracy"]'),
                                               ("unknown", '["f1"]')])  # fmt: skip
def test_bad_metrics_exit_2_with_one_line(tmp_path, case, metrics):
    train, _ = BAD.get(case, ('output = "sigmoid"', ""))
    data = 'builtin = "seed"' if case == "targets" else 'builtin = "xor"'
    path = tmp_path / "s.toml"
    path.write_text(f'name = "m"\n[data]\n{data}\n[train]\nepochs = 3\n{train}\n'
                    f"[record]\nmetrics = {metrics}\n")  # fmt: skip
    proc = runner_cmd("sweep", str(path), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "record.metrics" in lines[0] and str(path.name) in lines[0]
    if case in BAD:
        assert BAD[case][1] in lines[0]
    assert not (tmp_path / "out").exists()
