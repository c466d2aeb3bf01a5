"""Exact modes at every size: shapes up to 1024 samples x 256 hidden units, every tile
width, each run of the kernel bit for bit the reference's. Shared by test_large_shapes
(this host's build) and test_cpus (the generic and haswell builds, in fresh
interpreters): ``run_property`` runs the hypothesis property, derandomized, so each
build checks the same examples."""

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from runner.kernel import codes, tiles
from runner.kernel import reference as ref
from runner.run.train import run_batch

# The two variants test_cpus builds for each target (each dtype): no extra compiles.
VARIANTS = (("linear", "sequential"), ("sigmoid", "simultaneous"))


def check(n, ni, nh, no, R, epochs, dtype, variant, tile, seed) -> None:
    """R runs of one shape through the kernel (tile ``tile``, None: the chosen one), each
    against ``reference.train_reference``: every loss, the statistics, final weights."""
    rng = np.random.default_rng(seed)
    X, Y = rng.normal(size=(n, ni)), rng.normal(size=(n, no))
    scale = 1 / np.sqrt([ni, nh])
    Wh = rng.normal(size=(ni, nh, R)) * scale[0]
    Wz = rng.normal(size=(nh, no, R)) * scale[1]
    alpha = 10 ** rng.uniform(-4, -1, R)
    output, update = variant
    out = run_batch(X, Y, Wh.copy(), Wz.copy(), alpha, epochs, output, update, dtype=dtype,
                    tile=tile, loss_dtype=np.float64)  # fmt: skip
    for r in range(R):
        want = ref.train_reference(X, Y, Wh[..., r], Wz[..., r], alpha[r], epochs, output,
                                   update, dtype=dtype)  # fmt: skip
        ran = int(out.istats[r, codes.EPOCHS_RUN])
        assert ran == len(want.loss), (r, ran, len(want.loss))
        assert out.loss[:ran, r].tobytes() == want.loss.tobytes(), r
        assert out.fstats[r, codes.FIRST_LOSS] == want.loss[0] or np.isnan(want.loss[0])
        if want.diverged_epoch is None:
            assert out.Wh[..., r].astype(want.Wh.dtype).tobytes() == want.Wh.tobytes(), r
            assert out.Wz[..., r].astype(want.Wz.dtype).tobytes() == want.Wz.tobytes(), r


SIZES = dict(
    n=st.one_of(st.integers(1, 16), st.integers(17, 1024)),
    ni=st.integers(1, 8),
    nh=st.one_of(st.integers(1, 8), st.integers(9, 256)),
    no=st.integers(1, 3),
    R=st.integers(1, 9),
    epochs=st.integers(1, 3),
    variant=st.sampled_from(VARIANTS),
    tile=st.sampled_from((None, *tiles.TILES)),
    seed=st.integers(0, 2**32 - 1),
)


def run_property(dtype: str, max_examples: int) -> None:
    """``check`` over shapes up to 1024 x 256 (the largest always among them)."""

    @settings(max_examples=max_examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(**SIZES)
    @example(n=1024, ni=8, nh=256, no=3, R=9, epochs=2, variant=VARIANTS[0], tile=None, seed=1)
    @example(n=1023, ni=3, nh=255, no=1, R=5, epochs=3, variant=VARIANTS[1], tile=4, seed=2)
    def prop(n, ni, nh, no, R, epochs, variant, tile, seed):
        check(n, ni, nh, no, R, epochs, dtype, variant, tile, seed)

    prop()
