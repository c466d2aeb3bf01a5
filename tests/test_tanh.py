"""runner's tanh (kernel.reference.tanh, for the model family): within 2 ulp of np.tanh over the
whole range in float64 and float32, odd, NaN kept, ±1 at the ends."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.kernel.reference import TANH_HALF, tanh

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
