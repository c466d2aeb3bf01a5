"""``--backend cuda``: batches of runs on CUDA devices (numba-cuda), one thread per run.

``run_batch_cuda`` is ``train.run_batch`` on a device; ``Launch`` is the same call in
two halves (queue, then collect) for the sweep (runner.run.cuda_sweep). ``device_count``
says how many devices there are, or raises RunnerError. numba-cuda is imported only
when a function here needs it; the kernel itself is runner.kernel.cuda.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator

import numpy as np

from runner.errors import RunnerError
from runner.run.train import BatchResult, check_mode, slots


def device_count() -> int:
    """Visible CUDA devices (1 in numba-cuda's simulator); RunnerError if there are none."""
    try:
        from numba import cuda
    except ImportError:
        raise RunnerError(
            "needs numba-cuda: pip install 'runner[cuda]'", key="--backend cuda"
        ) from None
    if _simulator():  # NUMBA_ENABLE_CUDASIM=1 when numba was imported
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
    from runner.kernel.numba_ext import cuda_simulator

    return cuda_simulator()


class Launch:
    """One batch on the current device: inputs copied and the kernel queued on ``stream``.

    Nothing waits until ``result()``, which copies the outputs back on the same stream
    (so a launch queued after this one on another stream keeps the device busy).
    """

    def __init__(
        self, X, Y, Wh, Wz, alpha, epochs, output, update, every, stop_below, diverge_above,
        loss_dtype, dtype, fastmath,
    ):  # fmt: skip
        from numba import cuda

        from runner.kernel.cuda import THREADS, make_kernel

        check_mode(dtype, fastmath, None, output, update)
        f = np.dtype(dtype)
        R = len(alpha)
        n, ni = X.shape
        nh, no = Wz.shape[0], Wz.shape[1]
        kernel = make_kernel(
            n, ni, nh, no, output == "sigmoid", update == "sequential", dtype, bool(fastmath)
        )
        self.Wh, self.Wz = Wh, Wz
        self.stream = s = cuda.stream()
        # weights rounded once to dtype (float32 mode), as the CPU kernel rounds them
        inputs = [np.ascontiguousarray(a, dtype=f) for a in (X, Y, Wh, Wz, alpha)]
        dX, dY, dWh, dWz, dalpha = (cuda.to_device(a, stream=s) for a in inputs)
        # every element of the outputs is written by the kernel: no copies in
        dloss = cuda.device_array((slots(epochs, every), R), np.dtype(loss_dtype), stream=s)
        dist = cuda.device_array((R, 3), np.int64, stream=s)
        dfst = cuda.device_array((R, 2), f, stream=s)
        self.out = (dloss, dist, dfst, dWh, dWz)
        if R:
            with _quiet_simulator():
                kernel[-(-R // THREADS), THREADS, s](
                    dX, dY, dWh, dWz, dalpha, dalpha, int(epochs), int(every),
                    -math.inf if stop_below is None else float(stop_below),
                    math.inf if diverge_above is None else float(diverge_above),
                    dloss, dist, dfst,
                )  # fmt: skip

    def result(self) -> BatchResult:
        """Wait for the kernel and copy its outputs back; Wh, Wz are updated in place."""
        loss, istats, fstats, wh, wz = (d.copy_to_host(stream=self.stream) for d in self.out)
        self.stream.synchronize()
        self.out = ()  # device memory back to the pool
        self.Wh[...] = wh
        self.Wz[...] = wz
        fstats = fstats.astype(np.float64)  # float32 values widen exactly
        return BatchResult(loss, istats, fstats, self.Wh, self.Wz)


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


DEFAULT_MODEL = {"activation": "sigmoid", "bias": False, "scaling": "standard", "step": "notebook"}


def check_default_model(alpha: object, **model: object) -> None:
    """RunnerError unless ``model`` (run_batch's model keywords) is the default model: the
    cuda kernel trains only that one (sigmoid, no bias, standard scaling, the notebook's
    step, one alpha)."""
    for key, value in model.items():
        if key in ("alpha_hidden", "alpha_output"):
            same = value is None or np.array_equal(
                np.broadcast_to(np.asarray(value, dtype=np.float64), np.shape(alpha)), alpha
            )
        elif key in DEFAULT_MODEL:
            same = value == DEFAULT_MODEL[key]
        else:
            raise TypeError(f"run_batch_cuda() got an unexpected keyword argument {key!r}")
        if not same:
            what = "per-layer learning rates" if key.startswith("alpha_") else f"{key} {value!r}"
            raise RunnerError(
                f"the cuda backend trains the default model only: {what} (use a CPU backend)",
                key="--backend cuda",
            )


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
    activation: str = "sigmoid",
    bias: bool = False,
    scaling: str = "standard",
    step: str = "notebook",
    alpha_hidden: float | np.ndarray | None = None,
    alpha_output: float | np.ndarray | None = None,
) -> BatchResult:
    """``train.run_batch`` on the current CUDA device (Wh, Wz are updated in place).

    The same signature and checks as ``run_batch``. Exact modes give the CPU kernel's
    bytes; ``tile`` is a CPU notion: checked, then ignored (a block holds
    ``runner.kernel.cuda.THREADS`` runs). The model family's keywords (``activation``,
    ``bias``, ...) are refused unless they name the default model.
    """
    check_mode(dtype, fastmath, tile, output, update)
    check_default_model(
        alpha, activation=activation, bias=bias, scaling=scaling, step=step,
        alpha_hidden=alpha_hidden, alpha_output=alpha_output,
    )  # fmt: skip
    return Launch(
        X, Y, Wh, Wz, alpha, epochs, output, update, every, stop_below, diverge_above,
        loss_dtype, dtype, fastmath,
    ).result()  # fmt: skip
