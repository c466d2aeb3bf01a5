"""runner's tanh (kernel.reference.tanh, for the model family): within 2 ulp of np.tanh over the
whole range in float64 and float32, odd, NaN kept, ±1 at the ends; the kernel's tanh
(kernel.exp.tanh) is the reference's bit for bit."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numba import njit

from runner.kernel import exp
from runner.kernel.reference import TANH_HALF, TANH_ONE, tanh

INTS = {np.float64: np.int64, np.float32: np.int32}


def ulps(a: np.ndarray, b: np.ndarray, dtype) -> np.ndarray:
    ia = a.astype(dtype).view(INTS[dtype]).astype(np.int64)
    ib = b.astype(dtype).view(INTS[dtype]).astype(np.int64)
    return np.abs(ia - ib)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_within_two_ulp_of_numpy_over_the_whole_range(dtype):
    rng = np.random.default_rng(7)
    tiny = 1e-300 if dtype is np.float64 else 1e-37
    x = np.concatenate([
        rng.uniform(-1, 1, 200_000), rng.uniform(-30, 30, 200_000),
        np.geomspace(tiny, 40, 100_000), np.linspace(TANH_HALF - 1e-3, TANH_HALF + 1e-3, 20_001),
    ]).astype(dtype)  # fmt: skip
    x = np.concatenate([x, -x])
    got = tanh(x)
    assert got.dtype == dtype
    assert ulps(got, np.tanh(x), dtype).max() <= 2


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_special_values(dtype):
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e3, -1e3], dtype=dtype)
    got = tanh(x)
    assert np.isnan(got[0])
    assert list(got[1:3]) == [1.0, -1.0] and list(got[5:]) == [1.0, -1.0]
    assert list(np.signbit(got[3:5])) == [False, True]


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_odd_and_bounded(v):
    x = np.array([v, -v])
    t = tanh(x)
    assert t[0] == -t[1] and -1.0 <= t[0] <= 1.0
    assert ulps(t, np.tanh(x), np.float64).max() <= 2


@njit
def _kernel_tanh(x):
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = exp.tanh(x[i])
    return out


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kernel_tanh_is_the_reference_bit_for_bit(dtype):
    """runner.kernel.exp.tanh: the same bits as reference.tanh, NaN, infinities, signed
    zeros, subnormals and both sides of each branch point included."""
    rng = np.random.default_rng(5)
    one = TANH_ONE[dtype is np.float32]
    tiny = np.finfo(dtype).smallest_subnormal
    x = np.concatenate([
        rng.uniform(-1, 1, 100_000), rng.uniform(-40, 40, 100_000),
        np.geomspace(tiny, 1e30 if dtype is np.float32 else 1e300, 20_000),
        np.linspace(TANH_HALF - 1e-6, TANH_HALF + 1e-6, 2_001),
        np.linspace(one - 1e-3, one + 1e-3, 2_001),
        [np.nan, np.inf, 0.0, tiny, TANH_HALF, one, np.finfo(dtype).max],
    ]).astype(dtype)  # fmt: skip
    with np.errstate(over="ignore"):  # the largest float's next is inf
        x = np.concatenate([x, -x, np.nextafter(x, np.inf), np.nextafter(x, -np.inf)])
    got = _kernel_tanh(x)
    assert got.dtype == dtype
    ints = INTS[dtype]
    np.testing.assert_array_equal(got.view(ints), tanh(x).view(ints))


def test_the_exact_tanh_stays_exact_after_a_fastmath_one_compiled_first():
    """The exact and fastmath kernels share exp.tanh: compiled first under fastmath's flags,
    a piece compiled once per float type would leave FMAs in the exact kernel's tanh."""
    import subprocess
    import sys

    from helpers import env

    code = (
        "import numpy as np\n"
        "from numba import njit\n"
        "from runner.kernel import exp, reference\n"
        "from runner.kernel.numba_ext import FASTMATH\n"
        "def loop(x):\n"
        "    out = np.empty_like(x)\n"
        "    for i in range(x.size):\n"
        "        out[i] = exp.tanh(x[i])\n"
        "    return out\n"
        "x = np.random.default_rng(1).uniform(-3, 3, 100_000)\n"
        "njit(fastmath=FASTMATH)(loop)(x)\n"
        "got = njit(loop)(x)\n"
        "assert np.array_equal(got.view(np.int64), reference.tanh(x).view(np.int64))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=env(), capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
