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
from collections.abc import Iterator, Sequence

import numpy as np

from runner.errors import RunnerError
from runner.kernel.codes import FSTATS
from runner.run.train import BatchResult, check_family, check_mode, model_numbers, slots


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
        loss_dtype, dtype, fastmath, model: dict | None = None, tail: int = 20,
        diverge_factor: float = math.inf,
    ):  # fmt: skip
        from numba import cuda

        from runner.kernel.cuda import THREADS, Model, make_kernel

        check_mode(dtype, fastmath, None, output, update)
        m = {**FAMILY, **(model or {})}
        f = np.dtype(dtype)
        R = len(alpha)
        n, ni = X.shape
        bias = bool(m["bias"])
        nh, no = Wz.shape[0] - bias, Wz.shape[1]
        c_h, c_o, s_o, s_h = model_numbers(
            alpha,
            (n, ni, nh, no),
            m["activation"],
            m["scaling"],
            m["step"],
            m["alpha_hidden"],
            m["alpha_output"],
            dtype,
        )
        kernel = make_kernel(n, ni, nh, no, output == "sigmoid", update == "sequential", dtype,
                             bool(fastmath), Model(m["activation"], bias, c_h, c_o))  # fmt: skip
        self.Wh, self.Wz = Wh, Wz
        self.stream = s = cuda.stream()
        # weights rounded once to dtype (float32 mode), as the CPU kernel rounds them
        inputs = [np.ascontiguousarray(a, dtype=f) for a in (X, Y, Wh, Wz, s_o, s_h)]
        dX, dY, dWh, dWz, ds_o, ds_h = (cuda.to_device(a, stream=s) for a in inputs)
        # every element of the outputs is written by the kernel: no copies in
        dloss = cuda.device_array((slots(epochs, every), R), np.dtype(loss_dtype), stream=s)
        dist = cuda.device_array((R, 3), np.int64, stream=s)
        dfst = cuda.device_array((R, FSTATS), np.float64, stream=s)
        self.out = (dloss, dist, dfst, dWh, dWz)
        if R:
            with _quiet_simulator():
                kernel[-(-R // THREADS), THREADS, s](
                    dX, dY, dWh, dWz, ds_o, ds_h, int(epochs), int(every), int(tail),
                    -math.inf if stop_below is None else float(stop_below),
                    math.inf if diverge_above is None else float(diverge_above),
                    float(diverge_factor), dloss, dist, dfst,
                )  # fmt: skip

    def result(self) -> BatchResult:
        """Wait for the kernel and copy its outputs back; Wh, Wz are updated in place."""
        loss, istats, fstats, wh, wz = (d.copy_to_host(stream=self.stream) for d in self.out)
        self.stream.synchronize()
        self.out = ()  # device memory back to the pool
        self.Wh[...] = wh
        self.Wz[...] = wz
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


FAMILY = {
    "activation": "sigmoid",
    "bias": False,
    "scaling": "standard",
    "step": "notebook",
    "alpha_hidden": None,
    "alpha_output": None,
}  # the notebook's model


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
    tail: int = 20,
    diverge_factor: float = math.inf,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    patience: int = 0,
    metrics: Sequence[str] = (),
    numpy_first: bool = False,
) -> BatchResult:
    """``train.run_batch`` on the current CUDA device (Wh, Wz are updated in place).

    The same signature and checks as ``run_batch``. Exact modes give the CPU kernel's
    bytes; ``tile`` is a CPU notion: checked, then ignored (a block holds
    ``runner.kernel.cuda.THREADS`` runs). Every model of the family, as ``run_batch``;
    held-out rows (``validation``, ``patience``) and ``metrics`` not yet: a RunnerError.
    ``numpy_first`` is a CPU notion (runner.run.first), ignored.
    """
    if validation is not None or patience or len(metrics):
        key = "metrics" if len(metrics) else "validation"
        raise RunnerError(f"{key} is not yet computed on GPUs; use run_batch", key=key)
    check_mode(dtype, fastmath, tile, output, update)
    check_family(activation, bias, scaling, step)
    model = {"activation": activation, "bias": bias, "scaling": scaling, "step": step,
             "alpha_hidden": alpha_hidden, "alpha_output": alpha_output}  # fmt: skip
    return Launch(
        X, Y, Wh, Wz, alpha, epochs, output, update, every, stop_below, diverge_above,
        loss_dtype, dtype, fastmath, model, tail, diverge_factor,
    ).result()  # fmt: skip
