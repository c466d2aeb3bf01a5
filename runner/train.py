"""Plain-Python front of the kernels: validation, seeded weights, results."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from runner import kernels
from runner import params as P
from runner.errors import RunnerError
from runner.plan import slots


@dataclass
class TrainResult:
    """One run's result. ``loss[i]`` is the loss of epoch ``i + 1``."""

    loss: np.ndarray
    Wh: np.ndarray
    Wz: np.ndarray
    diverged_epoch: int | None
    converged_epoch: int | None

    @property
    def epochs_run(self) -> int:
        return len(self.loss)


@dataclass
class BatchResult:
    """A batch's per-run statistics and recorded losses (see kernels.train_batch)."""

    loss: np.ndarray  # (slots, R), recorded epochs only
    istats: np.ndarray  # (R, 3) epochs_run, min_epoch, status
    fstats: np.ndarray  # (R, 2) final_loss, min_loss
    Wh: np.ndarray  # (inputs, hidden, R)
    Wz: np.ndarray  # (hidden, outputs, R)


def init_weights(
    seeds: Sequence[int],
    inputs: int,
    hidden: int,
    outputs: int,
    init: tuple[float, float] = (0.0, 1.0),
) -> tuple[np.ndarray, np.ndarray]:
    """Initial weights of a batch, runs last: ``Wh[i, h, r]``, ``Wz[h, o, r]``.

    Run r's weights come from ``numpy.random.default_rng(seeds[r])``: Wh first,
    then Wz, uniform on ``[lo, hi)``; the same seed gives the same weights anywhere.
    """
    lo, hi = init
    R = len(seeds)
    Wh = np.empty((inputs, hidden, R))
    Wz = np.empty((hidden, outputs, R))
    for r, seed in enumerate(seeds):
        rng = np.random.default_rng(int(seed))
        Wh[:, :, r] = rng.uniform(lo, hi, size=(inputs, hidden))
        Wz[:, :, r] = rng.uniform(lo, hi, size=(hidden, outputs))
    return Wh, Wz


def run_batch(
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
    """Train a batch of runs of one shape in one kernel call (Wh, Wz are updated in place)."""
    # TEMPORARY SEAM (branch plan): the precision modes come with the kernel branch,
    # which replaces this check with the real implementation of dtype and fastmath.
    if dtype != "float64" or fastmath:
        raise RunnerError(
            f"dtype={dtype!r}, fastmath={fastmath!r}: not available yet in this build",
            key="dtype" if dtype != "float64" else "fastmath",
        )
    R = len(alpha)
    loss = np.full((slots(epochs, every), R), np.nan, dtype=loss_dtype)
    istats = np.zeros((R, 3), dtype=np.int64)
    fstats = np.zeros((R, 2))
    kernels.train_batch(
        np.ascontiguousarray(X, dtype=np.float64),
        np.ascontiguousarray(Y, dtype=np.float64),
        Wh,
        Wz,
        np.ascontiguousarray(alpha, dtype=np.float64),
        int(epochs),
        output == "sigmoid",
        update == "sequential",
        int(every),
        -math.inf if stop_below is None else float(stop_below),
        math.inf if diverge_above is None else float(diverge_above),
        loss,
        istats,
        fstats,
    )
    return BatchResult(loss, istats, fstats, Wh, Wz)


def check_data(X: object, Y: object, where: str = "data") -> tuple[np.ndarray, np.ndarray]:
    """Return X, Y as 2-D finite float64 arrays with matching rows, or raise RunnerError."""
    arrays = []
    for name, value in (("X", X), ("Y", Y)):
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise RunnerError(f"{name} is not numeric", file=where, key=name) from None
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2:
            raise RunnerError(f"{name} must be 2-D, got {arr.ndim}-D", file=where, key=name)
        if arr.shape[0] == 0 or arr.shape[1] == 0:
            raise RunnerError(f"{name} is empty (shape {arr.shape})", file=where, key=name)
        if not np.all(np.isfinite(arr)):
            raise RunnerError(f"{name} holds NaN or infinite values", file=where, key=name)
        arrays.append(np.ascontiguousarray(arr))
    if arrays[0].shape[0] != arrays[1].shape[0]:
        raise RunnerError(
            f"X has {arrays[0].shape[0]} rows but Y has {arrays[1].shape[0]}", file=where, key="Y"
        )
    return arrays[0], arrays[1]


def check_params(**values: object) -> dict[str, object]:
    """Validate run parameters by the one rule each (runner.params); return them normalised.

    Raises RunnerError (a ValueError) naming the parameter, as a spec would.
    """
    return {name: P.check(name, v) for name, v in values.items()}


def train(
    X: object,
    Y: object,
    *,
    alpha: float = 0.1,
    hidden: int = 4,
    seed: int = 0,
    epochs: int = 10000,
    output: str = "linear",
    update: str = "sequential",
    init: Sequence[float] = (0.0, 1.0),
    stop_below: float | None = None,
    diverge_above: float | None = None,
    dtype: str = "float64",
    fastmath: bool = False,
) -> TrainResult:
    """Train one two-layer network on full-batch data (docs/numerics.md).

    >>> import runner
    >>> res = runner.train([[1, 1], [1, 2], [2, 1], [2, 2]], [[0], [1], [2], [3]], epochs=100)
    >>> res.loss.shape
    (100,)
    """
    Xa, Ya = check_data(X, Y)
    p = check_params(
        alpha=alpha,
        hidden=hidden,
        seed=seed,
        epochs=epochs,
        output=output,
        update=update,
        init=init,
        stop_below=stop_below,
        diverge_above=diverge_above,
        dtype=dtype,
        fastmath=fastmath,
    )
    alpha, hidden, seed, epochs = p["alpha"], p["hidden"], p["seed"], p["epochs"]
    init, stop_below, diverge_above = p["init"], p["stop_below"], p["diverge_above"]
    Wh, Wz = init_weights([seed], Xa.shape[1], hidden, Ya.shape[1], (init[0], init[1]))
    out = run_batch(
        Xa,
        Ya,
        Wh,
        Wz,
        np.array([alpha], dtype=np.float64),
        epochs,
        output,
        update,
        1,
        stop_below,
        diverge_above,
        dtype=p["dtype"],
        fastmath=p["fastmath"],
    )
    n = int(out.istats[0, kernels.EPOCHS_RUN])
    status = int(out.istats[0, kernels.STATUS])
    return TrainResult(
        loss=out.loss[:n, 0].copy(),
        Wh=out.Wh[:, :, 0].copy(),
        Wz=out.Wz[:, :, 0].copy(),
        diverged_epoch=n if status == kernels.DIVERGED else None,
        converged_epoch=n if status == kernels.CONVERGED else None,
    )
