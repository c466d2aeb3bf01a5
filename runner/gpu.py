"""``--backend cuda``: batches of runs on CUDA devices (numba-cuda), one thread per run.

``run_batch_cuda`` is ``train.run_batch`` on a device. ``device_count`` says how
many devices there are (or raises RunnerError). ``dispatch`` is the sweep backend
(runner.gpu_sweep). numba-cuda is imported only when a function here needs it.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Iterator

import numpy as np

from runner.errors import RunnerError
from runner.train import BatchResult, slots

DTYPES = ("float64", "float32")


def device_count() -> int:
    """Visible CUDA devices (1 in numba-cuda's simulator); RunnerError if there are none."""
    try:
        from numba import cuda
    except ImportError:
        raise RunnerError(
            "needs numba-cuda: pip install 'runner[cuda]'", key="--backend cuda"
        ) from None
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1" or _simulator():
        return 1
    try:
        if cuda.is_available():
            return len(cuda.gpus)
    except Exception as exc:  # a broken driver or toolkit: say what it said
        reason = " ".join(str(exc).split())[:200]
        raise RunnerError(f"no usable CUDA device ({reason})", key="--backend cuda") from None
    raise RunnerError(
        "no CUDA device found (no driver, or CUDA_VISIBLE_DEVICES hides them all)",
        key="--backend cuda",
    )


def _simulator() -> bool:
    from numba.core import config

    return bool(config.ENABLE_CUDASIM)


def _check_mode(dtype: str, fastmath: bool) -> None:
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if not isinstance(fastmath, bool | np.bool_):
        raise ValueError(f"fastmath must be true or false, got {fastmath!r}")


class Launch:
    """One batch on one device: inputs copied, kernel queued, outputs on their way back.

    Everything is queued on ``stream``; ``result()`` waits for it and returns the
    BatchResult (host arrays). Nothing blocks before ``result()``.
    """

    def __init__(
        self, X, Y, Wh, Wz, alpha, epochs, output, update, every, stop_below, diverge_above,
        loss_dtype, dtype, fastmath, stream=None,
    ):  # fmt: skip
        from numba import cuda

        from runner.gpu_kernel import THREADS, make_kernel

        _check_mode(dtype, fastmath)
        f = np.dtype(dtype)
        X = np.ascontiguousarray(X, dtype=f)
        Y = np.ascontiguousarray(Y, dtype=f)
        R = len(alpha)
        n, ni = X.shape
        nh, no = Wz.shape[0], Wz.shape[1]
        kernel = make_kernel(
            n, ni, nh, no, output == "sigmoid", update == "sequential", dtype, bool(fastmath)
        )
        self.Wh_out, self.Wz_out = Wh, Wz
        self.stream = stream if stream is not None else cuda.stream()
        s = self.stream
        loss_dtype = np.dtype(loss_dtype)
        self.loss = _host((slots(epochs, every), R), loss_dtype)
        self.loss.fill(np.nan)
        self.istats = _host((R, 3), np.int64)
        self.fstats = _host((R, 2), f)
        self.wh = _host(Wh.shape, f)
        self.wz = _host(Wz.shape, f)
        self.wh[...] = Wh  # rounded once to dtype (float32 mode), as the CPU does
        self.wz[...] = Wz
        self.d = [
            cuda.to_device(a, stream=s)
            for a in (
                X, Y, self.wh, self.wz, np.ascontiguousarray(alpha, dtype=f), self.loss,
                self.istats, self.fstats,
            )
        ]  # fmt: skip
        dX, dY, dWh, dWz, dalpha, dloss, dist, dfst = self.d
        if R:
            with _quiet_simulator():
                kernel[-(-R // THREADS), THREADS, s](
                    dX, dY, dWh, dWz, dalpha, int(epochs), int(every),
                    -math.inf if stop_below is None else float(stop_below),
                    math.inf if diverge_above is None else float(diverge_above),
                    dloss, dist, dfst,
                )  # fmt: skip
        for d, h in ((dloss, self.loss), (dist, self.istats), (dfst, self.fstats)):
            d.copy_to_host(h, stream=s)
        dWh.copy_to_host(self.wh, stream=s)
        dWz.copy_to_host(self.wz, stream=s)

    def result(self) -> BatchResult:
        self.stream.synchronize()
        self.d = []  # device memory back to the pool
        self.Wh_out[...] = self.wh
        self.Wz_out[...] = self.wz
        fstats = self.fstats.astype(np.float64)  # float32 values widen exactly
        return BatchResult(self.loss, self.istats, fstats, self.Wh_out, self.Wz_out)


@contextlib.contextmanager
def _quiet_simulator() -> Iterator[None]:
    """The simulator runs the kernel in Python threads on NumPy scalars, which warn on
    overflow where a device is silent (the warnings filter is process-wide)."""
    if not _simulator():
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _host(shape, dtype) -> np.ndarray:
    """Page-locked host memory (copies overlap with kernels); plain memory in the simulator."""
    from numba import cuda

    if _simulator():
        return np.empty(shape, dtype)
    return cuda.pinned_array(shape, dtype)


def run_batch_cuda(
    X: np.ndarray,
    Y: np.ndarray,
    Wh: np.ndarray,
    Wz: np.ndarray,
    alpha: np.ndarray,
    epochs: int,
    output: str = "linear",
    update: str = "sequential",
    every: int = 1,
    stop_below: float | None = None,
    diverge_above: float | None = None,
    loss_dtype: type = np.float64,
    *,
    dtype: str = "float64",
    fastmath: bool = False,
    tile: int | None = None,
) -> BatchResult:
    """``train.run_batch`` on the current CUDA device (Wh, Wz are updated in place).

    Exact modes give the CPU kernel's bytes; ``tile`` is a CPU notion and is ignored
    (a block holds ``gpu_kernel.THREADS`` runs).
    """
    del tile
    return Launch(
        X, Y, Wh, Wz, alpha, epochs, output, update, every, stop_below, diverge_above,
        loss_dtype, dtype, fastmath,
    ).result()  # fmt: skip
