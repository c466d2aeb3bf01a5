"""runner.kernel.seeding: initial weights for many runs, bit for bit numpy's default_rng."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.kernel import seeding
from runner.run import train
from runner.run.train import init_weights


def numpy_weights(seeds, inputs, hidden, outputs, init):
    """The definition: default_rng(seed) per run, Wh then Wz, uniform on [lo, hi)."""
    Wh = np.empty((inputs, hidden, len(seeds)))
    Wz = np.empty((hidden, outputs, len(seeds)))
    for r, seed in enumerate(seeds):
        rng = np.random.default_rng(seed)
        Wh[:, :, r] = rng.uniform(*init, size=(inputs, hidden))
        Wz[:, :, r] = rng.uniform(*init, size=(hidden, outputs))
    return Wh, Wz


SEEDS = st.one_of(
    st.integers(0, 2**16),
    st.sampled_from([0, 2**32 - 1, 2**32, 2**63 - 1]),
    st.integers(0, 2**63 - 1),
)
RANGES = st.sampled_from([(0.0, 1.0), (-1.0, 1.0), (0.5, 2.0), (-1e-3, 3e-7)])


@given(
    seeds=st.lists(SEEDS, min_size=1, max_size=6),
    shape=st.tuples(st.integers(1, 4), st.integers(1, 9), st.integers(1, 3)),
    init=RANGES,
)
def test_same_weights_as_default_rng(seeds, shape, init):
    want = numpy_weights(seeds, *shape, init)
    got = seeding.init_weights(seeds, *shape, *init)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


@pytest.mark.parametrize("runs", [1, train.COMPILED_SEEDING, train.COMPILED_SEEDING + 1, 200])
def test_init_weights_is_default_rng_on_both_paths(runs):
    """train.init_weights seeds small batches in NumPy and larger ones compiled: the same
    bytes either way."""
    seeds = [int(s) for s in np.random.default_rng(runs).integers(0, 2**63 - 1, size=runs)]
    want = numpy_weights(seeds, 3, 5, 2, (-0.5, 1.5))
    got = init_weights(seeds, 3, 5, 2, (-0.5, 1.5))
    assert got[0].tobytes() == want[0].tobytes() and got[1].tobytes() == want[1].tobytes()


def test_per_run_ranges():
    seeds, lo, hi = [3, 4, 5], np.array([0.0, -1.0, 0.5]), np.array([1.0, 1.0, 2.0])
    Wh, Wz = seeding.init_weights(seeds, 2, 3, 1, lo, hi)
    for r in range(3):
        wh, wz = init_weights([seeds[r]], 2, 3, 1, (lo[r], hi[r]))
        np.testing.assert_array_equal(Wh[:, :, r], wh[:, :, 0])
        np.testing.assert_array_equal(Wz[:, :, r], wz[:, :, 0])


def test_negative_seed_is_refused():
    with pytest.raises(ValueError, match="seeds"):
        seeding.init_weights([-1], 2, 3, 1, 0.0, 1.0)
