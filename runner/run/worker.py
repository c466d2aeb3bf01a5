"""One chunk of a sweep: its task, training it and writing its files. Runs in any worker.

Importing it loads no Numba: the kernels are imported by the calls that train."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from runner.kernel import codes
from runner.plan import folds as K
from runner.plan.chunks import Chunk, Plan
from runner.plan.spec import Spec
from runner.results import claims, store, tables
from runner.results.durable import describe_os_error

if TYPE_CHECKING:
    from runner.run.train import BatchResult


@dataclass
class ChunkTask:
    """Everything one chunk needs: small, picklable, independent of the rest of the sweep."""

    index: int
    out: str
    run_start: int
    run_stop: int
    columns: dict[str, np.ndarray]  # the plan's columns for these runs (params.COLUMNS)
    axis_names: list[str]  # parameters that vary in the sweep: columns of the losses table
    X: np.ndarray
    Y: np.ndarray
    every: int
    loss_dtype: str
    tile: int | None = None  # runs per kernel tile (the memory budget's); None: the kernel's
    model_params: tuple[str, ...] = ()  # the model family's columns in the tables (params.MODEL)
    tail: int | None = None  # epochs of the runs' tail_mean; None: no first_loss, tail_mean
    init_weights: tuple[np.ndarray, np.ndarray] | None = None  # init = {path = ...}: the file's
    weights: bool = False  # store each run's final weights ([record] weights = "final")
    holdout: np.ndarray | None = None  # rows of X, Y held out ([data] validation), or None
    patience: int = 0  # [train] patience (0: none)
    folds: np.ndarray | None = None  # [data] kfold: each row's fold (the chunk's held out)
    fold_scaling: list[dict] | None = None  # kfold and standardize: each fold's statistics
    metrics: tuple[str, ...] = ()  # [record] metrics


@dataclass
class ChunkDone:
    index: int
    runs: int
    diverged: int
    rows: int
    seconds: float


def tasks_for(spec: Spec, out: Path, chunks: list[int], plan: Plan | None = None
              ) -> Iterator[ChunkTask]:  # fmt: skip
    plan = plan or Plan([spec.layer])
    for c in chunks:
        chunk = plan.chunk(c)
        yield ChunkTask(
            c,
            str(out),
            chunk.run_start,
            chunk.run_stop,
            chunk.columns,
            spec.axis_names,
            spec.X,
            spec.Y,
            spec.every,
            spec.loss_dtype,
            model_params=tuple(spec.model_params),
            tail=spec.tail,
            init_weights=spec.init_weights,
            weights=spec.weights != "none",
            holdout=spec.holdout,
            patience=int(spec.train.get("patience", 0)),
            folds=spec.folds,
            fold_scaling=spec.data.get("scaling") if spec.folds is not None else None,
            metrics=spec.metrics,
        )


class ChunkFailed(RuntimeError):
    """A chunk could not be trained or written; names the chunk."""


def run_chunk(task: ChunkTask) -> ChunkDone:
    """Train one chunk in one kernel call and write its files. Top-level and picklable.

    While it runs, a claim file names the chunk and this process, so that a parent
    whose worker died can say which chunk was lost.
    """
    out = Path(task.out)
    claim = claims.claim(out, task.index)
    try:
        return _train_and_write(task)
    except OSError as exc:
        raise ChunkFailed(f"chunk {task.index}: {describe_os_error(exc)}") from None
    except MemoryError:
        from runner.run.memory import chunk_needs, out_of_memory

        raise ChunkFailed(out_of_memory([task.index], chunk_needs(task), "MemoryError")) from None
    except Exception as exc:
        raise ChunkFailed(f"chunk {task.index}: {type(exc).__name__}: {exc}") from exc
    finally:
        claims.release(claim)


def _train_and_write(task: ChunkTask) -> ChunkDone:
    from runner.run.train import run_batch, start_weights

    t0 = time.perf_counter()
    cols = task.columns
    kern = kernel_keys(task)
    Wh, Wz = start_weights(cols, task.X.shape[1], kern["hidden"], task.Y.shape[1], kern["bias"],
                           task.init_weights)  # fmt: skip
    X, Y, held = split_rows(*K.rows_of(task.X, task.Y, task.holdout, task.folds,
                                       task.fold_scaling, kern["fold"]))  # fmt: skip
    res = run_batch(
        X,
        Y,
        Wh,
        Wz,
        cols["alpha"].copy(),
        kern["epochs"],
        kern["output"],
        kern["update"],
        task.every,
        kern["stop_below"],
        kern["diverge_above"],
        np.dtype(task.loss_dtype).type,
        dtype=kern["dtype"],
        fastmath=kern["fastmath"],
        tile=task.tile,
        tail=task.tail or 1,
        diverge_factor=kern["diverge_factor"],
        validation=held,
        patience=task.patience,
        metrics=task.metrics,
        **model_keys(kern, cols),
    )
    return write_results(task, res, t0)


def split_rows(X: np.ndarray, Y: np.ndarray, holdout: np.ndarray | None):
    """(X, Y, held-out (Xv, Yv) or None): the training and held-out rows, each in file order."""
    if holdout is None:
        return X, Y, None
    keep = ~holdout
    return X[keep], Y[keep], (X[holdout], Y[holdout])


def model_keys(call: dict[str, Any], cols: dict[str, np.ndarray]) -> dict[str, Any]:
    """run_batch's model keywords for a chunk's runs: its per-call keys and columns."""
    model = {k: call[k] for k in ("activation", "bias", "scaling", "step")}
    return model | {k: rate_of(cols, k) for k in ("alpha_hidden", "alpha_output")}


def rate_of(cols: dict[str, np.ndarray], key: str) -> np.ndarray:
    """A layer's learning rate per run: alpha where the column is empty (NaN)."""
    return np.where(np.isnan(cols[key]), cols["alpha"], cols[key])


def kernel_keys(task: ChunkTask) -> dict[str, Any]:
    """The chunk's kernel keys: one value each (a chunk is one kernel call)."""
    return Chunk(task.index, task.run_start, task.run_stop, task.columns).call()


def write_results(task: ChunkTask, res: BatchResult, t0: float) -> ChunkDone:
    """Write a trained chunk's files (runs last) and summarise it; t0: when it started."""
    cols = task.columns
    n = task.run_stop - task.run_start
    run_ids = np.arange(task.run_start, task.run_stop)
    all_cols = tables.param_columns(cols, task.model_params)
    axis_cols = {k: all_cols[k] for k in tables.axis_columns(task.axis_names) if k in all_cols}
    losses = tables.losses_table(run_ids, axis_cols, res.loss, res.istats, res.fstats, task.every,
                                 res.val_loss, res.vstats, tables.metric_curves(res))  # fmt: skip
    runs = tables.runs_table(run_ids, all_cols, res.istats, res.fstats, task.tail is not None,
                             res.vstats, res.astats, res.val_loss is not None)  # fmt: skip
    weights = tables.weights_table(run_ids, res.Wh, res.Wz) if task.weights else None
    store.write_chunk(Path(task.out), task.index, losses, runs, weights)
    diverged = int(np.count_nonzero(res.istats[:, codes.STATUS] == codes.DIVERGED))
    return ChunkDone(task.index, n, diverged, losses.num_rows, time.perf_counter() - t0)


def warm_up(
    loss_dtype: str, dtype: str = "float64", fastmath: bool = False,
    output: str = "linear", update: str = "sequential", activation: str = "sigmoid",
    held_out: bool = False,
) -> None:  # fmt: skip
    """Compile (or load from cache) one kernel variant in this process before dispatching
    (``held_out``: the variant with held-out rows)."""
    from runner.run.train import init_weights, run_batch

    X = np.zeros((1, 1))
    Wh, Wz = init_weights([0], 1, 1, 1)
    run_batch(
        X, X, Wh, Wz, np.ones(1), 1, output, update, loss_dtype=np.dtype(loss_dtype).type,
        dtype=dtype, fastmath=fastmath, activation=activation,
        validation=(X, X) if held_out else None,
    )  # fmt: skip
