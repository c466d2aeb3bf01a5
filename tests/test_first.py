"""The first result in seconds (runner.run.first): the NumPy batch trainer gives the
kernel's numbers bit for bit, for every shape (hypothesis) and every feature; a cold
``runner.train`` trains with it while one background process compiles the kernel into
Numba's cache, and the next process loads that kernel with the same numbers."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.kernel import cpu as kernels
from runner.run import first
from runner.run.train import run_batch

ROOT = Path(__file__).resolve().parents[1]
FIELDS = ("loss", "istats", "fstats", "Wh", "Wz", "val_loss", "vstats", "accuracy",
          "val_accuracy", "astats")  # fmt: skip
# Variants that other tests compile too (each is a kernel of its own).
VARIANTS = [
    dict(activation="sigmoid", output="linear", update="sequential", dtype="float64"),
    dict(activation="sigmoid", output="sigmoid", update="sequential", dtype="float64"),
    dict(activation="tanh", output="linear", update="simultaneous", dtype="float32"),
    dict(activation="relu", output="sigmoid", update="sequential", dtype="float64"),
    dict(activation="identity", output="linear", update="sequential", dtype="float32"),
]


def same(a, b) -> None:
    """Every result array equal in dtype, shape and bits (NaNs included)."""
    for name in FIELDS:
        x, y = getattr(a, name, None), getattr(b, name, None)
        assert (x is None) == (y is None), name
        if x is not None:
            assert x.dtype == y.dtype and x.shape == y.shape, name
            assert x.tobytes() == y.tobytes(), name


def both(rng, n, ni, nh, no, R, epochs, nv=0, **kw):
    """The same batch through the kernel and through NumPy (forced)."""
    X, Y = rng.normal(size=(n, ni)), rng.normal(size=(n, no))
    bias = kw.get("bias", False)
    Wh, Wz = rng.normal(size=(ni + bias, nh, R)), rng.normal(size=(nh + bias, no, R))
    alpha = 10 ** rng.uniform(-2.5, 0.5, R)
    if nv:
        kw["validation"] = (rng.normal(size=(nv, ni)), rng.normal(size=(nv, no)))
    kernel = run_batch(X, Y, Wh.copy(), Wz.copy(), alpha, epochs, **kw)
    forced = {**kw, "numpy_first": True}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(first, "compiled", lambda key: False)
        mp.setattr(first, "compile_later", lambda variant: None)
        mp.setattr(first, "NUMPY_SECONDS", np.inf)
        mp.setenv("RUNNER_NUMPY_FIRST", "1")
        numpy = run_batch(X, Y, Wh.copy(), Wz.copy(), alpha, epochs, **forced)
    same(kernel, numpy)
    return kernel


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    variant=st.sampled_from(VARIANTS),
    n=st.integers(1, 9), ni=st.integers(1, 4), nh=st.integers(1, 9), no=st.integers(1, 3),
    R=st.integers(1, 11), epochs=st.integers(1, 60), bias=st.booleans(),
    every=st.integers(0, 7), tail=st.integers(1, 30), seed=st.integers(0, 2**32 - 1),
    stop_below=st.sampled_from([None, 0.05, 0.5]), diverge=st.sampled_from([None, 1.0, 5.0]),
    diverge_factor=st.sampled_from([np.inf, 1.2]),
)  # fmt: skip
def test_numpy_batch_is_the_kernel_bit_for_bit(variant, n, ni, nh, no, R, epochs, bias, every,
                                               tail, seed, stop_below, diverge,
                                               diverge_factor):  # fmt: skip
    both(np.random.default_rng(seed), n, ni, nh, no, R, epochs, bias=bias, every=every,
         tail=tail, stop_below=stop_below, diverge_above=diverge, diverge_factor=diverge_factor,
         loss_dtype=np.float32 if seed % 2 else np.float64, **variant)  # fmt: skip


@pytest.mark.parametrize("patience", [0, 3])
@pytest.mark.parametrize("metrics", [(), ("accuracy",)])
def test_numpy_batch_held_out_patience_and_accuracy(patience, metrics):
    rng = np.random.default_rng(7)
    res = both(rng, 6, 2, 5, 2, 9, 80, nv=4, output="sigmoid", patience=patience,
               metrics=metrics, every=3)  # fmt: skip
    stopped = res.istats[:, kernels.STATUS] == kernels.STOPPED_EARLY
    assert stopped.any() == (patience > 0)  # the runs stop early exactly with patience


def test_numpy_first_only_where_it_pays():
    """Exact modes, a small problem, a kernel not compiled yet; else the kernel."""
    key = (False, True, False, "sigmoid", False)
    assert first.numpy_seconds(10000, 4, 2, 4, 1, 1) <= first.NUMPY_SECONDS  # the notebook's
    assert first.numpy_seconds(10000, 4, 2, 16, 1, 2000) > first.NUMPY_SECONDS  # make sweep's
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(first, "compiled", lambda key: False)
        mp.setenv("RUNNER_NUMPY_FIRST", "1")
        assert first.use_numpy(key, False, 10000, 4, (2, 4, 1, 1))
        assert not first.use_numpy(key, True, 10000, 4, (2, 4, 1, 1))  # fastmath
        assert not first.use_numpy(key, False, 10000, 4, (2, 16, 1, 2000))
        mp.setenv("RUNNER_NUMPY_FIRST", "0")
        assert not first.use_numpy(key, False, 10000, 4, (2, 4, 1, 1))
        mp.setattr(first, "compiled", lambda key: True)
        mp.setenv("RUNNER_NUMPY_FIRST", "1")
        assert not first.use_numpy(key, False, 10000, 4, (2, 4, 1, 1))


CHILD = """
import json, sys
import runner
from runner.kernel import cpu
from runner.run import first
r = runner.train([[1, 1], [1, 2], [2, 1], [2, 2]], [[0], [1], [2], [3]], alpha=0.1, hidden=4,
                 epochs=3000)
fn = cpu.kernel(False, True, False)
print(json.dumps({"loss": r.loss.tolist(), "Wh": r.Wh.ravel().tolist(),
                  "compiled_here": bool(fn.overloads), "started": len(first._started),
                  "stats": cpu.cache_stats()}))
"""


def child(cache: Path) -> dict:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "RUNNER_NUMPY_FIRST": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, check=True,
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_cold_train_uses_numpy_and_the_next_process_loads_the_kernel(tmp_path):
    """Empty cache: NumPy trains and one background process compiles; once it has, a new
    process loads the kernel from the cache (a hit, nothing compiled) with the same bits."""
    cache = tmp_path / "cache"
    cold = child(cache)
    assert not cold["compiled_here"] and cold["started"] == 1
    assert cold["stats"] == {"hits": 0, "misses": 0}
    deadline = time.monotonic() + 600
    fn = kernels.kernel(False, True, False)
    index = Path(fn._cache._cache_file._index_name)
    while not any(cache.rglob(index.name)):  # the background compile's index
        assert time.monotonic() < deadline, "the background compile wrote no cache entry"
        time.sleep(0.5)
    lock = next(cache.glob(f"{first_lock_prefix()}*.lock"), None)
    assert lock is not None  # it compiled under the shared compile lock
    time.sleep(1.0)  # the index is written after the data; let the writer close both
    warm = child(cache)
    assert warm["started"] == 0 and warm["stats"]["hits"] == 1 and warm["stats"]["misses"] == 0
    assert warm["loss"] == cold["loss"] and warm["Wh"] == cold["Wh"]


def first_lock_prefix() -> str:
    from runner.run.shared_cache import LOCK_PREFIX

    return LOCK_PREFIX
