"""Precision modes: float32 exact against the float32 reference, bit for bit."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numba import njit

import runner
from runner.errors import RunnerError
from runner.kernel import asm, exp, numba_ext, reference
from runner.kernel import cpu as kernels
from runner.plan.data import builtin
from runner.run.train import init_weights, run_batch

COMBOS = [(o, u) for o in ("linear", "sigmoid") for u in ("sequential", "simultaneous")]


def check_against_reference(X, Y, hidden, seeds, alphas, epochs, output, update, every=1,
                            init=(-1.0, 1.0), dtype="float64", tile=None):  # fmt: skip
    """run_batch of these runs equals train_reference run by run, every bit."""
    inputs, outputs = X.shape[1], Y.shape[1]
    Wh, Wz = init_weights(seeds, inputs, hidden, outputs, init)
    out = run_batch(X, Y, Wh, Wz, alphas, epochs, output, update, every=every, dtype=dtype,
                    tile=tile)  # fmt: skip
    for r in range(len(seeds)):
        wh0, wz0 = reference.init_weights(int(seeds[r]), inputs, hidden, outputs, init)
        ref = reference.train_reference(
            X, Y, wh0, wz0, alphas[r], epochs, output, update, dtype=dtype
        )
        n = int(out.istats[r, kernels.EPOCHS_RUN])
        assert n == len(ref.loss)
        rec = [e for e in range(1, n + 1) if e == 1 or e % every == 0]
        got = out.loss[[kernels.slot_of(e, every) for e in rec], r]
        np.testing.assert_array_equal(got, ref.loss[np.array(rec) - 1])
        if ref.diverged_epoch is None:
            np.testing.assert_array_equal(out.Wh[:, :, r], ref.Wh)
            np.testing.assert_array_equal(out.Wz[:, :, r], ref.Wz)
            assert out.fstats[r, kernels.MIN_LOSS] == ref.loss.min()
            assert out.istats[r, kernels.MIN_EPOCH] == int(np.argmin(ref.loss)) + 1


@pytest.mark.parametrize(("output", "update"), COMBOS)
@pytest.mark.parametrize("alpha", [0.01, 0.03, 0.1])
@pytest.mark.parametrize("epochs", [1500, pytest.param(10000, marks=pytest.mark.slow)])
def test_float32_seed_data_is_the_float32_reference(epochs, alpha, output, update):
    X, Y = builtin("seed")
    res = runner.train(X, Y, alpha=alpha, epochs=epochs, output=output, update=update,
                       dtype="float32")  # fmt: skip
    Wh, Wz = reference.init_weights(0, 2, 4, 1)
    ref = reference.train_reference(X, Y, Wh, Wz, alpha, epochs, output, update, dtype="float32")
    assert ref.Wh.dtype == np.float32
    np.testing.assert_array_equal(res.loss, ref.loss)
    np.testing.assert_array_equal(res.Wh, ref.Wh)
    np.testing.assert_array_equal(res.Wz, ref.Wz)
    assert res.diverged_epoch is None


def test_float32_is_single_precision_and_differs_from_float64():
    X, Y = builtin("seed")
    r32 = runner.train(X, Y, alpha=0.01, epochs=500, dtype="float32")
    r64 = runner.train(X, Y, alpha=0.01, epochs=500)
    assert r32.loss.dtype == np.float64  # widened, exactly
    np.testing.assert_array_equal(r32.loss.astype(np.float32), r32.loss)
    np.testing.assert_array_equal(r32.Wh.astype(np.float32), r32.Wh)
    assert not np.array_equal(r64.loss.astype(np.float32), r64.loss)
    assert np.count_nonzero(r32.loss != r64.loss) > 490
    assert np.max(np.abs(r32.loss - r64.loss) / r64.loss) < 1e-4  # but the same training


def test_float32_divergence_at_the_reference_epoch():
    X, Y = builtin("seed")
    # where float32 overflows (the rule of a million-fold first loss would stop it sooner)
    res = runner.train(X, Y, alpha=0.2, epochs=10000, dtype="float32", diverge_factor=math.inf)
    Wh, Wz = reference.init_weights(0, 2, 4, 1)
    ref = reference.train_reference(X, Y, Wh, Wz, 0.2, 10000, dtype="float32")
    assert ref.diverged_epoch is not None
    assert res.diverged_epoch == ref.diverged_epoch
    np.testing.assert_array_equal(res.loss[:-1], ref.loss[:-1])


@given(
    samples=st.integers(1, 16),
    inputs=st.integers(1, 5),
    hidden=st.integers(1, 32),
    outputs=st.integers(1, 3),
    runs=st.integers(1, 40),
    output=st.sampled_from(["linear", "sigmoid"]),
    update=st.sampled_from(["sequential", "simultaneous"]),
    data_seed=st.integers(0, 2**32 - 1),
    every=st.integers(1, 7),
)
def test_float32_random_shapes_and_mixed_alpha_batches(
    samples, inputs, hidden, outputs, runs, output, update, data_seed, every
):
    rng = np.random.default_rng(data_seed)
    X = rng.normal(size=(samples, inputs))
    Y = rng.normal(size=(samples, outputs))
    alphas = 10 ** rng.uniform(-3, 0, size=runs)
    seeds = rng.integers(0, 2**31, size=runs)
    check_against_reference(X, Y, hidden, seeds, alphas, 40, output, update, every,
                            dtype="float32")  # fmt: skip


def test_run_batch_float32_writes_widened_weights_back_and_keeps_loss_dtype():
    X, Y = builtin("seed")
    Wh, Wz = init_weights(range(5), 2, 3, 1)
    out = run_batch(X, Y, Wh, Wz, np.full(5, 0.05), 50, loss_dtype=np.float32, dtype="float32")
    assert out.Wh is Wh and Wh.dtype == np.float64
    np.testing.assert_array_equal(Wh.astype(np.float32), Wh)
    assert out.loss.dtype == np.float32 and out.fstats.dtype == np.float64
    np.testing.assert_array_equal(out.fstats[:, kernels.FINAL_LOSS].astype(np.float32),
                                  out.loss[-1])  # fmt: skip


@pytest.mark.parametrize(
    ("kw", "msg"),
    [({"dtype": "float16"}, "dtype"), ({"fastmath": "yes"}, "fastmath"), ({"tile": 48}, "tile"),
     ({"tile": 128}, "tile")],
)  # fmt: skip
def test_bad_mode_arguments_raise_value_error(kw, msg):
    X, Y = builtin("seed")
    Wh, Wz = init_weights([0], 2, 2, 1)
    with pytest.raises(ValueError, match=msg):
        run_batch(X, Y, Wh, Wz, np.ones(1), 2, **kw)
    if "tile" not in kw:
        with pytest.raises(ValueError, match=msg):
            runner.train(X, Y, epochs=2, **kw)


def ulps32(a, b):
    return np.abs(a.view(np.int32).astype(np.int64) - b.view(np.int32))


def test_float32_exp_within_one_ulp_of_the_correctly_rounded_exp():
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [rng.uniform(-104, 89, 1_000_000), rng.uniform(-1, 1, 300_000),
         rng.uniform(-0.35, 0.35, 300_000),
         [0.0, -0.0, 88.72, 88.7228, -87.3, -103.0, -103.97, 1e-30, -1e-30]]
    ).astype(np.float32)  # fmt: skip
    with np.errstate(all="ignore"):
        ours = reference.exp(x)
        exact = np.exp(x.astype(np.float64)).astype(np.float32)  # correctly rounded
        assert ours.dtype == np.float32
        assert ulps32(ours, exact).max() <= 1
        # NumPy's own float32 exp is itself up to 2 ulp from the rounded one here
        assert ulps32(ours, np.exp(x)).max() <= 3
        edge = reference.exp(np.array([np.nan, np.inf, -np.inf, 89.0, 100.0, -110.0], np.float32))
    assert np.isnan(edge[0]) and edge[1] == np.inf and edge[2] == 0.0
    assert edge[3] == np.inf and edge[4] == np.inf and edge[5] == 0.0


@njit
def _exp_and_sigmoids(x):
    e = np.empty_like(x)
    a = np.empty_like(x)
    b = np.empty_like(x)
    q = x.size // 4
    for i in range(x.size):
        e[i] = exp.fexp(x[i])
        b[i] = exp.sigmoid(x[i])
    for i in range(q):
        a[i], a[q + i], a[2 * q + i], a[3 * q + i] = exp.sigmoid4(
            x[i], x[q + i], x[2 * q + i], x[3 * q + i]
        )
    return e, a, b


def test_kernel_float32_exp_and_sigmoid_are_bitwise_the_reference():
    rng = np.random.default_rng(5)
    x = np.concatenate(
        [rng.uniform(-120, 100, 200_000), rng.uniform(-20, 20, 100_000),
         [0.0, -0.0, np.inf, -np.inf, 89.0, -89.0, 104.0, -104.0, 88.5, -88.5, 1e-30, -1e-30]]
    ).astype(np.float32)  # fmt: skip
    e, a, b = _exp_and_sigmoids(x)
    assert e.dtype == a.dtype == b.dtype == np.float32
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(e.view(np.int32), reference.exp(x).view(np.int32))
        ref = reference.sigmoid(x)
    assert ref.dtype == np.float32
    np.testing.assert_array_equal(b.view(np.int32), ref.view(np.int32))
    np.testing.assert_array_equal(a.view(np.int32), ref.view(np.int32))


@njit
def _scales(p, kf):
    a = np.empty_like(p)
    b = np.empty_like(p)
    for i in range(p.size):
        a[i] = exp.scale_bits(p[i], kf[i])
        b[i] = exp.scale_ldexp(p[i], kf[i])
    return a, b


def test_float32_ldexp_scaling_is_bitwise_the_two_product_scaling():
    """Normal, subnormal, zero and overflowing float32 results alike."""
    rng = np.random.default_rng(6)
    kf = np.floor(rng.uniform(-151, 130, 300_000)).astype(np.float32)
    p = rng.uniform(np.exp(-0.35), np.exp(0.35), kf.size).astype(np.float32)
    a, b = _scales(p, kf)
    assert a.dtype == np.float32
    np.testing.assert_array_equal(a.view(np.int32), b.view(np.int32))


# ----- fastmath -----
@pytest.mark.parametrize(("dtype", "tol"), [("float64", 1e-8), ("float32", 1e-4)])
@pytest.mark.parametrize(("output", "update"), COMBOS)
@pytest.mark.parametrize("alpha", [0.01, pytest.param(0.02, marks=pytest.mark.slow)])
def test_fastmath_stays_close_to_the_reference_on_stable_runs(alpha, output, update, dtype, tol):
    X, Y = builtin("seed")
    res = runner.train(X, Y, alpha=alpha, epochs=3000, output=output, update=update,
                       dtype=dtype, fastmath=True)  # fmt: skip
    Wh, Wz = reference.init_weights(0, 2, 4, 1)
    ref = reference.train_reference(X, Y, Wh, Wz, alpha, 3000, output, update, dtype=dtype)
    assert res.loss.shape == ref.loss.shape
    rel = np.abs(res.loss - ref.loss) / ref.loss
    assert rel.max() <= tol
    for got, want in ((res.Wh, ref.Wh), (res.Wz, ref.Wz)):
        assert np.max(np.abs(got - want) / np.abs(want)) <= 10 * tol
    assert not np.array_equal(res.loss, ref.loss)  # fastmath really is another kernel


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fastmath_is_statistically_the_exact_mode_on_chaotic_runs(dtype):
    """1,000 seeds at each alpha: the same share of diverged runs (within 2 points) and
    the same median final loss of the converging runs (within 10%)."""
    X, Y = builtin("seed")
    seeds = np.arange(1000)
    alphas = np.repeat([0.1, 0.15, 0.2], seeds.size)
    Wh0, Wz0 = init_weights(np.tile(seeds, 3), 2, 4, 1)
    outs = []
    for fastmath in (False, True):
        Wh, Wz = Wh0.copy(), Wz0.copy()
        outs.append(run_batch(X, Y, Wh, Wz, alphas, 3000, every=3000, dtype=dtype,
                              fastmath=fastmath))  # fmt: skip
    exact, fast = outs
    assert not np.array_equal(exact.fstats, fast.fstats)
    shares = []
    for a in (0.1, 0.15, 0.2):
        on = alphas == a
        div = [o.istats[on, kernels.STATUS] == kernels.DIVERGED for o in outs]
        assert abs(div[0].mean() - div[1].mean()) <= 0.02
        shares.append(div[0].mean())
        finals = [o.fstats[on][~d, kernels.FINAL_LOSS] for o, d in zip(outs, div, strict=True)]
        if min(len(f) for f in finals):
            m0, m1 = (np.median(f) for f in finals)
            assert abs(m1 - m0) <= 0.1 * m0
    assert max(shares) > 0.5  # divergence is found in fastmath too (no nnan/ninf)


@pytest.mark.slow  # assembly checks: make test-all
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_exact_kernels_have_no_fma_and_fastmath_kernels_do(dtype):
    exact = asm.vector_report(dtype)
    fast = asm.vector_report(dtype, fastmath=True)
    assert exact["packed"] > 0 and fast["packed"] > 0
    assert exact["zmm"] == 0 and fast["zmm"] == 0  # LLVM's 256 bits unless asked
    assert exact["fma"] == 0
    assert fast["fma"] > 0
    assert not exact["exp_call"] and not fast["exp_call"]


def test_vector_width_is_512_bits_only_when_asked_on_avx512(monkeypatch):
    """512-bit vectors where Numba compiles for AVX-512 and RUNNER_VECTOR_WIDTH=512 asks;
    else LLVM's choice (256 bits there). Each width is a kernel (a cache entry) of its own."""
    for avx512, told, width in [(True, None, 256), (True, "512", 512), (True, "256", 256),
                                (False, "512", 256)]:  # fmt: skip
        monkeypatch.setattr(numba_ext, "compiles_for_avx512", lambda v=avx512: v)
        if told is None:
            monkeypatch.delenv("RUNNER_VECTOR_WIDTH", raising=False)
        else:
            monkeypatch.setenv("RUNNER_VECTOR_WIDTH", told)
        assert numba_ext.vector_width() == width
        assert numba_ext.compiler_for(width) is (
            numba_ext.WideCompiler if width == 512 else numba_ext.NoAliasCompiler
        )
    for told in ["521", "wide", "0"]:  # a typo is refused, not taken for the default
        monkeypatch.setenv("RUNNER_VECTOR_WIDTH", told)
        said = f"RUNNER_VECTOR_WIDTH: must be 256 or 512, got '{told}'"
        with pytest.raises(RunnerError, match=said):
            numba_ext.vector_width()


@pytest.mark.slow  # assembly, compiled afresh: make test-all
def test_asked_for_512_bits_the_kernel_uses_zmm_registers(monkeypatch):
    if not numba_ext.compiles_for_avx512():
        pytest.skip("this CPU has no AVX-512: no 512-bit registers to ask for")
    monkeypatch.setenv("RUNNER_VECTOR_WIDTH", "512")
    wide = asm.vector_report("float64")
    assert wide["zmm"] > wide["ymm"] > 0 and wide["fma"] == 0


@pytest.mark.parametrize("cpu", ["znver3", "znver4", "haswell", "skylake-avx512", "generic"])
def test_fastmath_divides_on_zen_only(monkeypatch, cpu):
    """The division where AMD's Zen divider beats Newton's steps; Newton elsewhere."""
    monkeypatch.setattr(exp, "compile_target", lambda: f"{cpu}-0123abcd")
    assert exp.divides_fast() == cpu.startswith("znver")


NEWTON = """
import json, sys
import numpy as np
import runner
from runner.kernel import exp, reference
from runner.plan.data import builtin
X, Y = builtin("seed")
out = {"divides": exp.divides_fast()}
for dtype in ("float64", "float32"):
    res = runner.train(X, Y, alpha=0.01, epochs=3000, dtype=dtype, fastmath=True)
    Wh, Wz = reference.init_weights(0, 2, 4, 1)
    ref = reference.train_reference(X, Y, Wh, Wz, 0.01, 3000, dtype=dtype)
    out[dtype] = float(np.max(np.abs(res.loss - ref.loss) / ref.loss))
print(json.dumps(out))
"""


@pytest.mark.slow  # a fastmath build for another CPU: make test-all
def test_fastmath_by_newtons_reciprocal_stays_close_too(tmp_path):
    """Newton's reciprocal, as a haswell build has it (this host may divide): as close
    to the reference as the division, in both dtypes."""
    import json
    import platform
    import subprocess
    import sys

    from helpers import env

    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip(f"haswell is an x86 CPU; this is {platform.machine()}")
    extra = {"NUMBA_CACHE_DIR": str(tmp_path), "NUMBA_CPU_NAME": "haswell",
             "NUMBA_CPU_FEATURES": ""}  # fmt: skip
    r = subprocess.run([sys.executable, "-c", NEWTON], env=env(**extra), capture_output=True,
                       text=True, timeout=900)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["divides"] is False
    assert got["float64"] <= 1e-8 and got["float32"] <= 1e-4
