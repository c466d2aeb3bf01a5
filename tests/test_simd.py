"""The tile kernel vectorises, and its fast paths give the reference's bits."""

import numpy as np
import pytest
from numba import njit

from runner import kernels, reference
from runner.data import builtin
from runner.train import init_weights, run_batch


def test_hot_loops_use_packed_vector_arithmetic_and_no_libm_exp():
    rep = kernels.vector_report()
    assert rep["packed"] > 0, rep
    assert rep["zmm"] + rep["ymm"] == rep["packed"]
    assert rep["round"] > 0, rep  # math.floor became vrndscalepd / vroundpd
    assert not rep["exp_call"], rep["calls"]


@njit
def _scales(p, kf):
    a = np.empty_like(p)
    b = np.empty_like(p)
    for i in range(p.size):
        a[i] = kernels._scale_bits(p[i], kf[i])
        b[i] = kernels._scale_ldexp(p[i], kf[i])
    return a, b


def test_ldexp_scaling_is_bitwise_the_two_product_scaling():
    """Over the whole exponent range: normal, subnormal, zero and overflowing results."""
    rng = np.random.default_rng(3)
    kf = np.floor(rng.uniform(-1076, 1025, 300_000))
    p = rng.uniform(np.exp(-0.35), np.exp(0.35), kf.size)
    p[:4], kf[:4] = np.nan, 0.0  # a NaN input keeps kf = 0 (see _exp_reduce)
    a, b = _scales(p, kf)
    np.testing.assert_array_equal(a.view(np.int64), b.view(np.int64))


@pytest.mark.parametrize("output", ["linear", "sigmoid"])
@pytest.mark.parametrize("update", ["sequential", "simultaneous"])
def test_partial_tiles_and_runs_stopping_mid_tile_match_the_reference(output, update):
    """Two tiles (the second short), runs diverging or converging at different epochs."""
    X, Y = builtin("seed")
    R = kernels.TILE + 7
    alphas = np.geomspace(0.005, 0.6, R)
    seeds = np.arange(R) % 5
    Wh, Wz = init_weights(seeds, 2, 3, 1)
    out = run_batch(X, Y, Wh, Wz, alphas, 400, output, update, stop_below=0.9, diverge_above=50.0)
    status = set()
    for r in range(R):
        wh0, wz0 = reference.init_weights(int(seeds[r]), 2, 3, 1)
        ref = reference.train_reference(
            X, Y, wh0, wz0, alphas[r], 400, output, update, stop_below=0.9, diverge_above=50.0
        )
        n = int(out.istats[r, kernels.EPOCHS_RUN])
        assert n == len(ref.loss)
        np.testing.assert_array_equal(out.loss[:n, r], ref.loss)
        assert np.all(np.isnan(out.loss[n:, r]))
        np.testing.assert_array_equal(out.Wh[:, :, r], ref.Wh)
        np.testing.assert_array_equal(out.Wz[:, :, r], ref.Wz)
        status.add(int(out.istats[r, kernels.STATUS]))
    if output == "linear":  # lanes of one tile stop at different epochs
        assert kernels.CONVERGED in status
        assert len(status) >= 2


@njit
def _sigmoids(x):
    a = np.empty_like(x)
    b = np.empty_like(x)
    q = x.size // 4
    for i in range(q):
        a[i], a[q + i], a[2 * q + i], a[3 * q + i] = kernels._sigmoid4(
            x[i], x[q + i], x[2 * q + i], x[3 * q + i]
        )
    for i in range(x.size):
        b[i] = kernels.sigmoid(x[i])
    return a, b


def test_kernel_sigmoid_is_bitwise_the_reference_sigmoid():
    """_sigmoid4 computes exp(-x) without negations; same bits as 1 / (1 + exp(-x))."""
    rng = np.random.default_rng(4)
    x = np.concatenate(
        [
            rng.uniform(-800, 800, 100_000),
            rng.uniform(-40, 40, 100_000),
            rng.uniform(-1, 1, 100_000),
            [0.0, -0.0, np.nan, np.inf, -np.inf, 710.0, -710.0, 746.0, -746.0, 1e-300],
            [-1e-300, 745.5, -745.5, 709.9, -709.9, 708.5, -708.5, 0.5, 1e300, -1e300],
        ]
    )
    x = x[: x.size // 4 * 4]
    a, b = _sigmoids(x)
    with np.errstate(all="ignore"):
        ref = reference.sigmoid(x)
    nan = np.isnan(ref)
    for got in (a, b):  # every bit, but a NaN's sign and payload
        np.testing.assert_array_equal(np.isnan(got), nan)
        np.testing.assert_array_equal(got[~nan].view(np.int64), ref[~nan].view(np.int64))
