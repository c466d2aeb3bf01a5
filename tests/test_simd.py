"""The tile kernel vectorises, and its fast paths give the reference's bits."""

import platform
import re

import numpy as np
import pytest
from numba import njit

from runner.kernel import asm as kernel_asm
from runner.kernel import cpu as kernels
from runner.kernel import exp, reference
from runner.plan.data import builtin
from runner.run.train import init_weights, run_batch

pytestmark = pytest.mark.slow  # assembly checks: make test-all
X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
needs_x86 = pytest.mark.skipif(
    not X86,
    reason=f"the assembly checks read x86 AVX instructions; this is {platform.machine()} "
    "(the kernel still runs and the bit-for-bit tests still apply)",
)

_LABEL = re.compile(r"^\s*(\.?L\w+):")
_JUMP = re.compile(r"^\s*j\w+\s+(\.?L\w+)\s*$")
_ARITH = r"\bv(add|sub|mul|div|min|max|fn?m(add|sub)\d+|round|rndscale|scalef){}\b"
PACKED, SCALAR = re.compile(_ARITH.format("pd")), re.compile(_ARITH.format("sd"))
ROUND = re.compile(r"\bv(round|rndscale)[ps]d\b")  # rint in exp's range reduction


def innermost_loops(asm: str) -> list[list[str]]:
    """The bodies of loops (a label, up to a jump back to it) that hold no other loop."""
    lines = asm.splitlines()
    labels = {m.group(1): i for i, line in enumerate(lines) if (m := _LABEL.match(line))}
    loops = [
        (labels[m.group(1)], i)
        for i, line in enumerate(lines)
        if (m := _JUMP.match(line)) and labels.get(m.group(1), i) < i
    ]
    inner = [a for a in loops if not any(b != a and a[0] <= b[0] and b[1] <= a[1] for b in loops)]
    return [lines[a : b + 1] for a, b in inner]


def count(pattern: re.Pattern, body: list[str]) -> int:
    return sum(1 for line in body if pattern.search(line))


@needs_x86
def test_the_exp_loop_is_packed_arithmetic_and_calls_no_libm_exp():
    """The hot loop (the sigmoids: the loops holding exp's rounding) has a vectorised
    version, all packed arithmetic, doing at least the work of any scalar version (the
    fallback LLVM keeps for odd trip counts, never taken for whole tiles)."""
    asm = kernel_asm.tile_asm()
    hot = [(count(PACKED, b), count(SCALAR, b)) for b in innermost_loops(asm) if count(ROUND, b)]
    assert hot, "no loop computes exp"
    packed = [(p, s) for p, s in hot if p]
    assert packed, f"the exp loop did not vectorise: (packed, scalar) per loop {hot}"
    for p, s in packed:
        assert p >= 10 * s, f"scalar arithmetic inside the vector loop: {hot}"
    assert max(p for p, _ in packed) >= max((s for p, s in hot if not p), default=0), hot
    calls = re.findall(r"\bcall[lq]?\s+(\S+)", asm)
    assert not any("exp" in c for c in calls), calls


@njit
def _scales(p, kf):
    a = np.empty_like(p)
    b = np.empty_like(p)
    for i in range(p.size):
        a[i] = exp.scale_bits(p[i], kf[i])
        b[i] = exp.scale_ldexp(p[i], kf[i])
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
        a[i], a[q + i], a[2 * q + i], a[3 * q + i] = exp.sigmoid4(
            x[i], x[q + i], x[2 * q + i], x[3 * q + i]
        )
    for i in range(x.size):
        b[i] = exp.sigmoid(x[i])
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
