"""Plain-Python front of the kernels: validation, seeded weights, results."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from runner.errors import RunnerError
from runner.kernel import cpu as kernels
from runner.kernel import family, numpy_batch, seeding, tiles
from runner.plan import params as P
from runner.plan.chunks import slots
from runner.run import first
from runner.run.units import compiling_line


@dataclass
class BatchResult:
    """A batch's per-run statistics and recorded losses (see kernels.train_batch)."""

    loss: np.ndarray  # (slots, R), recorded epochs only
    istats: np.ndarray  # (R, 3) epochs_run, min_epoch, status
    fstats: np.ndarray  # (R, 4) final_loss, min_loss, first_loss, tail_mean
    Wh: np.ndarray  # (inputs [+1], hidden, R)
    Wz: np.ndarray  # (hidden [+1], outputs, R)
    val_loss: np.ndarray | None = None  # (slots, R) on the held-out rows, if any
    vstats: np.ndarray | None = None  # (R, 3) final_val_loss, min_val_loss, min_val_epoch
    accuracy: np.ndarray | None = None  # (slots, R) float64, with metrics=("accuracy",)
    val_accuracy: np.ndarray | None = None  # (slots, R) on the held-out rows (NaN without)
    astats: np.ndarray | None = None  # (R, 2) final_accuracy, final_val_accuracy


# Batches of more runs than this seed compiled (runner.kernel.seeding, the same bytes as
# NumPy; a normal init's draws by NumPy from compiled states); fewer, in NumPy itself:
# cheaper than loading (or compiling) the seeding kernel.
COMPILED_SEEDING = 32


def init_weights(
    seeds: Sequence[int],
    inputs: int,
    hidden: int,
    outputs: int,
    init: Sequence[float] | dict = (0.0, 1.0),
    bias: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Initial weights of a batch, runs last: ``Wh[i, h, r]``, ``Wz[h, o, r]``.

    Run r's weights come from ``numpy.random.default_rng(seeds[r])``: Wh first,
    then Wz, uniform on ``[lo, hi)`` for ``init = [lo, hi]``, or
    ``rng.normal(mean, std, shape)`` for ``init = {"normal": [mean, std]}``; the same
    seed gives the same weights anywhere. A bias adds a last row to each, drawn with
    the rest: Wh (inputs + 1, hidden), then Wz (hidden + 1, outputs).
    """
    normal = isinstance(init, dict)
    a, b = init["normal"] if normal else init
    R = len(seeds)
    if R > COMPILED_SEEDING:
        fill = seeding.normal_weights if normal else seeding.init_weights
        return fill(seeds, inputs, hidden, outputs, a, b, bias)
    Wh = np.empty((inputs + bias, hidden, R))
    Wz = np.empty((hidden + bias, outputs, R))
    for r, seed in enumerate(seeds):
        rng = np.random.default_rng(int(seed))
        draw = rng.normal if normal else rng.uniform
        Wh[:, :, r] = draw(a, b, size=(inputs + bias, hidden))
        Wz[:, :, r] = draw(a, b, size=(hidden + bias, outputs))
    return Wh, Wz


def start_weights(
    cols: dict[str, np.ndarray],
    inputs: int,
    hidden: int,
    outputs: int,
    bias: bool = False,
    weights: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Initial weights of a chunk's runs (plan columns): each from its seed and its init
    numbers (``init_weights``), or, where a run has none (``init = {path = ...}``), a copy
    of ``weights``, the file's."""
    seeds = cols["seed"]
    R = len(seeds)
    if R and np.isnan(cols["init_lo"][0]) and np.isnan(cols["init_mean"][0]):
        if weights is None:
            raise RunnerError("the runs start from a file's weights, but none were given",
                              key="init")  # fmt: skip
        Wh, Wz = weights
        return (np.repeat(Wh[:, :, None], R, axis=2), np.repeat(Wz[:, :, None], R, axis=2))
    normal = R and not np.isnan(cols["init_mean"][0])
    a, b = (cols["init_mean"], cols["init_std"]) if normal else (cols["init_lo"], cols["init_hi"])
    form = (lambda x, y: {"normal": [x, y]}) if normal else (lambda x, y: (x, y))
    if not R or ((a == a[0]).all() and (b == b[0]).all()):
        first = form(float(a[0]), float(b[0])) if R else (0.0, 1.0)
        return init_weights(seeds, inputs, hidden, outputs, first, bias)
    if normal and R > COMPILED_SEEDING:
        return seeding.normal_weights(seeds, inputs, hidden, outputs, a, b, bias)
    Wh = np.empty((inputs + bias, hidden, R))
    Wz = np.empty((hidden + bias, outputs, R))
    for r in range(R):
        wh, wz = init_weights([seeds[r]], inputs, hidden, outputs, form(float(a[r]), float(b[r])),
                              bias)  # fmt: skip
        Wh[:, :, r], Wz[:, :, r] = wh[:, :, 0], wz[:, :, 0]
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
    """Train a batch of runs of one shape in one kernel call (Wh, Wz are updated in place).

    ``dtype``: the training precision; for "float32", X, Y, the weights and alpha are
    rounded to float32 once here, and the final weights written back widened (exactly).
    ``fastmath``: FMA, reassociation, a cheaper exp and reciprocal (docs/precision.md).
    ``tile``: runs per kernel tile, a power of two from 4 to 64 (None: runner.kernel.tiles
    chooses). Losses: computed in ``dtype``, stored as ``loss_dtype``; fstats: float64.

    The model (docs/numerics.md): ``activation`` of the hidden units, ``bias`` (Wh and
    Wz then have a last row: (inputs + 1, hidden, R), (hidden + 1, outputs, R)),
    ``scaling``, ``step``, and each layer's learning rate, a scalar or one per run
    (None: ``alpha``). ``every = 0`` records no losses; ``tail``: the epochs of fstats'
    tail mean (runner.kernel.codes). A run diverges when its loss is not finite, above
    ``diverge_above``, or above ``diverge_factor`` times its first loss.

    ``validation = (Xv, Yv)``, ``patience``: held-out rows and early stopping, as
    ``runner.train`` has them (``val_loss``, ``vstats``); ``metrics = ("accuracy",)``, with
    a sigmoid output: accuracy, val_accuracy and astats. ``numpy_first``: NumPy while the
    kernel compiles, where that pays (runner.run.first).
    """
    check_mode(dtype, fastmath, tile, output, update)
    check_family(activation, bias, scaling, step)
    f = np.dtype(dtype)
    n, ni = np.shape(X)
    nh, no, R = Wz.shape[0] - bias, Wz.shape[1], len(alpha)
    if Wh.shape != (ni + bias, nh, R) or Wz.shape != (nh + bias, no, R):
        raise RunnerError(f"weights of shapes {Wh.shape}, {Wz.shape} do not fit {ni} inputs, "
                          f"{no} outputs, {R} runs, bias={bias}", key="weights")  # fmt: skip
    T = tiles.choose_tile(n, ni + bias, nh, no, dtype) if tile is None else int(tile)
    loss = np.full((slots(epochs, every), R), np.nan, dtype=loss_dtype)
    istats, fstats = np.zeros((R, 3), dtype=np.int64), np.zeros((R, kernels.FSTATS))
    wh = Wh if Wh.dtype == f else np.ascontiguousarray(Wh, dtype=f)
    wz = Wz if Wz.dtype == f else np.ascontiguousarray(Wz, dtype=f)
    Xb = np.hstack([X, np.ones((n, 1))]) if bias else X
    c_h, c_o, s_o, s_h = model_numbers(alpha, (n, ni, nh, no), activation, scaling, step,
                                       alpha_hidden, alpha_output, dtype)  # fmt: skip
    hits, held_out = metric_arrays(metrics, output, loss.shape), held_out_arrays(
        validation, ni, no, bias, f, loss.shape, loss_dtype, patience)  # fmt: skip
    args = (np.ascontiguousarray(Xb, dtype=f), np.ascontiguousarray(Y, dtype=f), wh, wz, s_o,
            s_h, c_h, c_o, int(epochs), output == "sigmoid", update == "sequential", int(every),
            -math.inf if stop_below is None else float(stop_below),
            math.inf if diverge_above is None else float(diverge_above), loss, istats,
            fstats)  # fmt: skip
    rest = (activation, int(tail), float(diverge_factor), held_out, int(patience), hits)
    if not (numpy_first and _numpy_first(args, rest, bool(fastmath), bool(bias), (nh, R))):
        w = kernels.scratch(n, ni + bias, nh, no, T, f, bool(fastmath), bool(bias), patience > 0)
        kernels.train_batch(*args, w, *rest)
    if wh is not Wh:
        Wh[...], Wz[...] = wh, wz
    return with_extras(BatchResult(loss, istats, fstats, Wh, Wz), held_out, hits)


def _numpy_first(args: tuple, rest: tuple, fastmath: bool, bias: bool, shape: tuple) -> bool:
    """Train in NumPy if ``runner.run.first`` says so (then compile the variant in the
    background); whether it did. ``args``, ``rest``: ``train_batch``'s; ``shape``:
    (hidden, runs)."""
    X, Y, epochs, sigmoid_out, sequential, loss = (args[i] for i in (0, 1, 8, 9, 10, 14))
    activation, held_out, hits = rest[0], rest[3], rest[5]
    key = (sigmoid_out, sequential, fastmath, activation, held_out is not None)
    rows = len(X) + (0 if held_out is None else len(held_out[0]))
    if not first.use_numpy(key, fastmath, epochs, rows, (X.shape[1], shape[0], Y.shape[1],
                                                           shape[1])):  # fmt: skip
        return False
    variant = dict(dtype=X.dtype.name, loss_dtype=loss.dtype.name,
                   output="sigmoid" if sigmoid_out else "linear",
                   update="sequential" if sequential else "simultaneous", activation=activation,
                   bias=bias, held_out=held_out is not None, metrics=hits is not None)  # fmt: skip
    numpy_batch.train_batch(*args, *rest)
    first.compile_later(variant)
    return True


def with_extras(res: BatchResult, held_out: tuple | None, hits: tuple | None) -> BatchResult:
    """``res`` with the held-out losses and the metrics of a kernel call, where it had them."""
    if held_out:
        res.val_loss, res.vstats = held_out[2:]
    if hits:
        res.accuracy, val_acc, res.astats = hits
        res.val_accuracy = val_acc if held_out else None
    return res


def metric_arrays(metrics: Sequence[str], output: str, slots_shape) -> tuple | None:
    """``kernels.train_batch``'s ``metrics`` arrays for ``run_batch``'s, or None."""
    if metrics is None or not len(metrics):
        return None
    if list(metrics) != ["accuracy"]:
        raise RunnerError(f"the one metric is 'accuracy', got {list(metrics)!r}", key="metrics")
    if output != "sigmoid":
        raise RunnerError("accuracy needs a sigmoid output (outputs above 1/2 are 1)",
                          key="metrics")  # fmt: skip
    R = slots_shape[1]
    nan = np.full(slots_shape, np.nan)
    return nan, nan.copy(), np.full((R, kernels.ASTATS), np.nan)


def held_out_arrays(validation, ni: int, no: int, bias: bool, f: np.dtype, slots_shape,
                    loss_dtype, patience: int = 0) -> tuple | None:  # fmt: skip
    """``kernels.train_batch``'s ``held_out`` for ``run_batch``'s ``validation``, or None."""
    if validation is None:
        if patience:
            raise RunnerError("needs held-out rows (validation)", key="patience")
        return None
    Xv, Yv = (np.asarray(a, dtype=np.float64) for a in validation)
    if Xv.ndim != 2 or Yv.ndim != 2 or Xv.shape[1] != ni or Yv.shape[1] != no:
        raise RunnerError(f"held-out rows of shapes {Xv.shape}, {Yv.shape} do not fit "
                          f"{ni} inputs and {no} outputs", key="validation")  # fmt: skip
    if len(Xv) != len(Yv) or len(Xv) == 0:
        raise RunnerError(f"needs one or more rows, as many in X as in Y, got {len(Xv)} and "
                          f"{len(Yv)}", key="validation")  # fmt: skip
    Xvb = np.hstack([Xv, np.ones((len(Xv), 1))]) if bias else Xv
    val = np.full(slots_shape, np.nan, dtype=loss_dtype)
    vstats = np.full((slots_shape[1], kernels.VSTATS), np.nan)
    return (np.ascontiguousarray(Xvb, dtype=f), np.ascontiguousarray(Yv, dtype=f), val, vstats)


def model_numbers(alpha, shape: tuple[int, int, int, int], activation: str, scaling: str,
                  step: str, alpha_hidden, alpha_output, dtype: str):  # fmt: skip
    """(c_h, c_o, s_o, s_h) of a kernel call (runner.kernel.family): the scalings and each
    layer's folded rate per run; shape is (samples, inputs, hidden, outputs), bias aside."""
    n, ni, nh, no = shape
    R = len(alpha)
    c_h, c_o = family.scales(scaling, activation, ni, nh)
    s_o, s_h = family.fold(
        per_run(alpha if alpha_output is None else alpha_output, R, "alpha_output"),
        per_run(alpha if alpha_hidden is None else alpha_hidden, R, "alpha_hidden"),
        family.step_factor(step, n, no), c_h, c_o, dtype,
    )  # fmt: skip
    return c_h, c_o, s_o, s_h


def per_run(value: object, R: int, key: str) -> np.ndarray:
    """A learning rate, scalar or one per run, as R float64 values."""
    a = np.asarray(value, dtype=np.float64)
    if a.ndim > 1 or (a.ndim == 1 and len(a) != R):
        raise RunnerError(f"needs a scalar or {R} values, got shape {a.shape}", key=key)
    return np.broadcast_to(a, (R,))


# Seconds a cold compile of one variant takes on the development machine (2 cores).
COMPILE_SECONDS = 20


def compile_note(
    dtype: str, fastmath: bool, output: str = "linear", update: str = "sequential",
    activation: str = "sigmoid", held_out: bool = False,
) -> str | None:  # fmt: skip
    """The line to show before a variant compiles; None when Numba's cache has it."""
    if kernels.is_cached(output == "sigmoid", update == "sequential", bool(fastmath), activation,
                         held_out):  # fmt: skip
        return None
    return compiling_line(dtype, bool(fastmath), COMPILE_SECONDS)


def check_mode(
    dtype: object,
    fastmath: object,
    tile: object = None,
    output: object = "linear",
    update: object = "sequential",
) -> None:
    """The checks ``run_batch`` and ``run_batch_cuda`` share: each value by its
    parameter's rule (runner.plan.params), a tile from ``tiles.TILES``; RunnerError."""
    for name, value in (("dtype", dtype), ("fastmath", fastmath), ("output", output),
                        ("update", update)):  # fmt: skip
        P.check(name, value)
    if tile is not None and tile not in tiles.TILES:
        raise RunnerError(f"must be one of {tiles.TILES}, got {tile!r}", key="tile")


def check_family(activation: object, bias: object, scaling: object, step: object) -> None:
    """The model family's per-call choices, by their parameters' rules; RunnerError."""
    for name, value in (("activation", activation), ("bias", bias), ("scaling", scaling),
                        ("step", step)):  # fmt: skip
        P.check(name, value)


def check_params(**values: object) -> dict[str, object]:
    """Validate run parameters by the one rule each (runner.plan.params); return them normalised.

    Raises RunnerError (a ValueError) naming the parameter, as a spec would.
    """
    return {name: P.check(name, v) for name, v in values.items()}
