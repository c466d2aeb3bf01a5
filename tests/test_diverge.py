"""diverge_factor: a run diverged once its loss passes that factor times its first loss
(1e6 in a new spec; inf, only a non-finite loss, in sweeps begun before the rule)."""

import json
import math

import numpy as np
import pytest
from helpers import write_spec

import runner
from runner.kernel import codes, reference
from runner.run.train import init_weights, run_batch

ALPHAS = np.array([0.01, 0.5, 3.0, 40.0, 0.1, 1.2, 2.0, 5.0])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("factor", [math.inf, 1.0, 3.0, 1e6])
def test_the_kernel_stops_where_the_reference_does(dtype, factor):
    rng = np.random.default_rng(1)
    X, Y = rng.uniform(0, 1, (7, 3)), rng.uniform(0, 1, (7, 2))
    Wh, Wz = init_weights(range(len(ALPHAS)), 3, 4, 2)
    W0 = Wh.copy(), Wz.copy()
    out = run_batch(X, Y, Wh, Wz, ALPHAS, 200, dtype=dtype, diverge_factor=factor)
    stops = set()
    for r, alpha in enumerate(ALPHAS):
        ref = reference.train_reference(X, Y, W0[0][:, :, r], W0[1][:, :, r], alpha, 200,
                                        dtype=dtype, diverge_factor=factor)  # fmt: skip
        n = int(out.istats[r, codes.EPOCHS_RUN])
        assert n == len(ref.loss)
        np.testing.assert_array_equal(out.loss[:n, r], ref.loss)
        diverged = out.istats[r, codes.STATUS] == codes.DIVERGED
        assert diverged == (ref.diverged_epoch is not None)
        if diverged and factor != math.inf and np.isfinite(ref.loss[-1]):
            assert ref.loss[-1] > factor * ref.loss[0] >= ref.loss[:-1].max()
        stops.add(n)
    assert len(stops) >= 2 and 200 in stops  # some ran all, some stopped


def test_runner_train_stops_past_a_million_times_the_first_loss():
    X, Y = [[1, 1], [1, 2], [2, 1], [2, 2]], [[0], [1], [2], [3]]
    free = runner.train(X, Y, alpha=0.3, hidden=8, epochs=400, diverge_factor=math.inf)
    past = np.flatnonzero(free.loss > 1e6 * free.loss[0])
    assert len(past) and free.diverged_epoch is not None and free.diverged_epoch > past[0] + 1
    res = runner.train(X, Y, alpha=0.3, hidden=8, epochs=400)  # the default: 1e6
    assert res.diverged_epoch == past[0] + 1
    np.testing.assert_array_equal(res.loss, free.loss[: past[0] + 1])


SPEC = """\
name = "d"
[data]
builtin = "seed"
[train]
epochs = 300
hidden = 8
{train}
[grid]
alpha = [0.01, 0.3]
seed = [0, 1, 2]
"""


def test_a_new_sweep_records_the_rule_and_counts_such_runs_diverged(tmp_path):
    spec = write_spec(tmp_path, SPEC.format(train=""))
    runner.sweep(spec, out=tmp_path / "out", jobs=1, quiet=True, progress=False)
    folder = tmp_path / "out" / "d"
    meta = json.loads((folder / "sweep.json").read_text())
    assert meta["spec"]["train"]["diverge_factor"] == 1e6
    runs = runner.load(folder).runs
    assert (runs["diverge_factor"] == 1e6).all()
    big = runs[runs["alpha"] == 0.3]
    assert big["diverged"].all() and np.isfinite(big["final_loss"]).all()
    assert (big["final_loss"] > 1e6 * big["first_loss"]).all()
    assert not runs.loc[runs["alpha"] == 0.01, "diverged"].any()
    assert runner.load(folder).summary()["diverged_share"].max() == 1.0


def test_diverge_factor_inf_keeps_the_old_rule_and_columns(tmp_path):
    spec = write_spec(tmp_path, SPEC.format(train="diverge_factor = inf"))
    runner.sweep(spec, out=tmp_path / "out", jobs=1, quiet=True, progress=False)
    folder = tmp_path / "out" / "d"
    assert "diverge_factor" not in json.loads((folder / "sweep.json").read_text())["spec"]["train"]
    runs = runner.load(folder).runs
    assert "diverge_factor" not in runs
    big = runs[runs["alpha"] == 0.3]
    assert (big["epochs_run"] > 2).all() and not np.isfinite(big["final_loss"]).all()
