"""The notebook's front: ``runner.train`` (one run) and ``runner.train_many`` (a batch),
checked like a spec, over ``runner.run.train.run_batch``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runner.errors import RunnerError
from runner.kernel import cpu as kernels
from runner.plan import inits
from runner.plan import params as P
from runner.plan.data import check_data
from runner.run.train import BatchResult, check_params, init_weights, per_run, run_batch


@dataclass
class TrainResult:
    """One run's result. ``loss[i]`` is the loss of epoch ``i + 1``."""

    loss: np.ndarray
    Wh: np.ndarray
    Wz: np.ndarray
    diverged_epoch: int | None
    converged_epoch: int | None
    val_loss: np.ndarray | None = None  # on the held-out rows (``validation``), if any
    stopped_epoch: int | None = None  # out of ``patience``
    accuracy: np.ndarray | None = None  # each epoch's, with metrics=("accuracy",)
    val_accuracy: np.ndarray | None = None  # on the held-out rows (NaN without)

    @property
    def epochs_run(self) -> int:
        return len(self.loss)


def one_run_weights(init, seed: int, inputs: int, hidden: int, outputs: int, bias: bool
                    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """``runner.train``'s initial weights (one run): drawn from its seed, or an .npz file's
    (``{"path": ...}``), checked against the network's shape; RunnerError."""
    if P.init_kind(init) != "path":
        return init_weights([seed], inputs, hidden, outputs, init, bias)
    where = Path(init["path"])
    if not where.is_file():
        raise RunnerError(f"init file not found ({where})", key="init")
    try:
        Wh, Wz, _ = inits.read_weights(where)
        inits.check_shapes(init["path"], Wh, Wz, inputs, outputs, {hidden}, {bias})
    except RunnerError as exc:
        raise RunnerError(exc.reason, key="init") from None
    return Wh[:, :, None], Wz[:, :, None]


def check_held_out(validation, patience: object):
    """``validation`` as checked arrays (or None), and ``patience``; RunnerError."""
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
        raise RunnerError(f"must be an integer >= 1 (or 0: none), got {patience!r}",
                          key="patience")  # fmt: skip
    return None if validation is None else check_data(*validation, where="validation")


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
    init: Sequence[float] | dict = (0.0, 1.0),
    stop_below: float | None = None,
    diverge_above: float | None = None,
    diverge_factor: float = P.DIVERGE_FACTOR,
    dtype: str = "float64",
    fastmath: bool = False,
    activation: str = "sigmoid",
    bias: bool = False,
    scaling: str = "standard",
    step: str = "notebook",
    alpha_hidden: float | None = None,
    alpha_output: float | None = None,
    validation: tuple[object, object] | None = None,
    patience: int = 0,
    metrics: Sequence[str] = (),
) -> TrainResult:
    """Train one two-layer network on full-batch data (docs/numerics.md): ``activation``
    (sigmoid, tanh, relu, identity), ``bias``, ``scaling`` (standard, mean-field),
    ``step`` (notebook, gradient), each layer's learning rate (``alpha`` unless given).
    A run diverges (and stops) when its loss is not finite, above ``diverge_above``, or
    above ``diverge_factor`` times its first loss (``math.inf``: no such rule).
    ``init``: ``(lo, hi)`` uniform, ``{"normal": [mean, std]}``, or ``{"path": "w0.npz"}``
    (arrays Wh and Wz, the path from the current folder), as a spec's ``[train] init``.
    ``validation = (Xv, Yv)``: held-out rows, not trained on; ``val_loss`` is their loss,
    as ``loss``. ``patience``: stop when it has not improved for so many epochs, with the
    weights of its best epoch. ``metrics = ("accuracy",)`` (a sigmoid output): ``accuracy``.
    ``dtype`` ("float64" or "float32") and ``fastmath`` choose the precision mode
    (docs/precision.md); the loss is returned as float64 in every mode.

    >>> import runner
    >>> res = runner.train([[1, 1], [1, 2], [2, 1], [2, 2]], [[0], [1], [2], [3]], epochs=100)
    >>> res.loss.shape
    (100,)
    """
    Xa, Ya = check_data(X, Y)
    validation = check_held_out(validation, patience)
    p = check_params(
        alpha=alpha, hidden=hidden, seed=seed, epochs=epochs, output=output, update=update,
        init=init, stop_below=stop_below, diverge_above=diverge_above,
        diverge_factor=diverge_factor, dtype=dtype, fastmath=fastmath, activation=activation,
        bias=bias, scaling=scaling, step=step, alpha_hidden=alpha_hidden,
        alpha_output=alpha_output,
    )  # fmt: skip
    bias = p["bias"]
    alpha, hidden, seed, epochs = p["alpha"], p["hidden"], p["seed"], p["epochs"]
    init, stop_below, diverge_above = p["init"], p["stop_below"], p["diverge_above"]
    from runner.run.memory import train_tile  # the sweep's memory budget, before allocating

    ni, no = Xa.shape[1], Ya.shape[1]
    tile = train_tile(Xa.shape[0], ni + bias, hidden, no, p["dtype"], epochs)
    Wh, Wz = one_run_weights(init, seed, ni, hidden, no, bias)
    out = run_batch(
        Xa, Ya, Wh, Wz, np.array([alpha], dtype=np.float64), epochs, output, update, 1,
        stop_below, diverge_above, dtype=p["dtype"], fastmath=p["fastmath"], tile=tile,
        activation=activation, bias=bias, scaling=scaling, step=step,
        alpha_hidden=p["alpha_hidden"], alpha_output=p["alpha_output"],
        diverge_factor=p["diverge_factor"], validation=validation, patience=patience,
        metrics=metrics, numpy_first=True,
    )  # fmt: skip
    return one_result(out)


def one_result(out: BatchResult) -> TrainResult:
    """The TrainResult of a batch of one run."""
    n = int(out.istats[0, kernels.EPOCHS_RUN])
    status = int(out.istats[0, kernels.STATUS])

    def curve(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a[:n, 0].copy()

    return TrainResult(
        loss=curve(out.loss),
        Wh=out.Wh[:, :, 0].copy(),
        Wz=out.Wz[:, :, 0].copy(),
        diverged_epoch=n if status == kernels.DIVERGED else None,
        converged_epoch=n if status == kernels.CONVERGED else None,
        val_loss=curve(out.val_loss),
        stopped_epoch=n if status == kernels.STOPPED_EARLY else None,
        accuracy=curve(out.accuracy),
        val_accuracy=curve(out.val_accuracy),
    )


def _each(value: object, R: int, key: str) -> list | None:
    """A scalar or one value per run, each checked as ``runner.train`` checks it: R values
    (None stays None)."""
    if value is None:
        return None
    if isinstance(value, np.ndarray) and value.ndim > 1:
        raise RunnerError(f"needs a scalar or {R} values, got shape {value.shape}", key=key)
    many = isinstance(value, Sequence | np.ndarray) and not isinstance(value, str)
    return [check_params(**{key: v})[key] for v in (list(value) if many else [value] * R)]


def train_many(
    X: object,
    Y: object,
    *,
    alpha: float | Sequence[float] = 0.1,
    seeds: int | Sequence[int] = 0,
    hidden: int = 4,
    epochs: int = 10000,
    every: int = 1,
    output: str = "linear",
    update: str = "sequential",
    init: Sequence[float] | dict = (0.0, 1.0),
    stop_below: float | None = None,
    diverge_above: float | None = None,
    diverge_factor: float = P.DIVERGE_FACTOR,
    dtype: str = "float64",
    fastmath: bool = False,
    activation: str = "sigmoid",
    bias: bool = False,
    scaling: str = "standard",
    step: str = "notebook",
    alpha_hidden: float | Sequence[float] | None = None,
    alpha_output: float | Sequence[float] | None = None,
    validation: tuple[object, object] | None = None,
    patience: int = 0,
    tail: int = 20,
    metrics: Sequence[str] = (),
) -> BatchResult:
    """Train R runs of one shape in one kernel call: ``runner.train``'s options, with
    ``alpha``, ``seeds``, ``alpha_hidden`` and ``alpha_output`` a scalar or one per run
    (R is the longest). Returns a ``BatchResult``: ``loss[slot, r]`` of each recorded
    epoch (1 and every ``every``-th; NaN after a run stopped), ``istats[r]`` (epochs_run,
    min_epoch, status), ``fstats[r]`` (final_loss, min_loss, first_loss, tail_mean),
    the final weights ``Wh[:, :, r]``, ``Wz[:, :, r]``, and with ``validation``
    ``val_loss`` and ``vstats`` (runner.kernel.codes names the columns). Run r is the run
    ``runner.train`` trains with its alpha and seed, bit for bit.
    """
    Xa, Ya = check_data(X, Y)
    validation = check_held_out(validation, patience)
    lengths = {len(v) for v in (alpha, seeds, alpha_hidden, alpha_output)
               if isinstance(v, Sequence | np.ndarray)}  # fmt: skip
    if len(lengths) > 1:
        raise RunnerError(f"per-run values of different lengths {sorted(lengths)}", key="alpha")
    R = lengths.pop() if lengths else 1
    seed_list = _each(seeds, R, "seed")
    alpha, alpha_hidden, alpha_output = (
        _each(v, R, k) for v, k in ((alpha, "alpha"), (alpha_hidden, "alpha_hidden"),
                                    (alpha_output, "alpha_output"))
    )  # fmt: skip
    p = check_params(
        hidden=hidden, epochs=epochs, output=output, update=update, init=init,
        stop_below=stop_below, diverge_above=diverge_above, diverge_factor=diverge_factor,
        dtype=dtype, fastmath=fastmath, activation=activation, bias=bias, scaling=scaling,
        step=step,
    )  # fmt: skip
    if isinstance(every, bool) or not isinstance(every, int) or every < 0:
        raise RunnerError(f"must be an integer >= 0, got {every!r}", key="every")
    from runner.run.memory import train_tile

    ni, no, nh = Xa.shape[1], Ya.shape[1], p["hidden"]
    tile = train_tile(Xa.shape[0], ni + p["bias"], nh, no, p["dtype"], p["epochs"], R)
    if P.init_kind(p["init"]) == "path":
        Wh, Wz = one_run_weights(p["init"], 0, ni, nh, no, p["bias"])
        Wh, Wz = np.repeat(Wh, R, axis=2), np.repeat(Wz, R, axis=2)
    else:
        Wh, Wz = init_weights(seed_list, ni, nh, no, p["init"], p["bias"])
    a = per_run(alpha, R, "alpha")
    return run_batch(
        Xa, Ya, Wh, Wz, np.array(a, dtype=np.float64), p["epochs"], output, update, every,
        p["stop_below"], p["diverge_above"], dtype=p["dtype"], fastmath=p["fastmath"],
        tile=tile, activation=activation, bias=p["bias"], scaling=scaling, step=step,
        alpha_hidden=alpha_hidden, alpha_output=alpha_output, tail=tail,
        diverge_factor=p["diverge_factor"], validation=validation, patience=patience,
        metrics=metrics, numpy_first=True,
    )  # fmt: skip
