"""Arrow tables of a trained chunk: its ``losses``, ``runs`` and ``weights`` tables, built
from the kernel's output and the plan's columns without importing pandas
(docs/results.md)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from runner.kernel import codes as kernels
from runner.plan import params


def axis_columns(axes: list[str]) -> list[str]:
    """Table columns of parameters (grid axes): ``init`` is ``init_lo`` and ``init_hi``."""
    return params.columns_of(axes)


def param_columns(
    columns: dict[str, np.ndarray], model: tuple[str, ...] | list[str] = ()
) -> dict[str, pa.Array]:
    """Arrow columns of the plan's columns (params.COLUMNS), typed by the parameter table;
    of those held only where named (params.OPTIONAL) only those in ``model``; of ``init``,
    its form's numbers (none for a file's weights)."""
    out: dict[str, pa.Array] = {}
    for col in params.COLUMNS:
        if params.OWNER[col].name in params.OPTIONAL and params.OWNER[col].name not in model:
            continue
        values = columns[col]
        if params.OWNER[col].name == "init" and np.isnan(values).all():
            continue  # another init form's number (params.init_row)
        kind = params.COLUMN_DTYPE[col]
        if kind == "category":
            names = np.array(params.OWNER[col].choices, dtype=object)
            out[col] = categories(list(names[values]))
        elif kind == "float64" and params.OWNER[col].default is None:
            out[col] = arrow(values, mask=np.isnan(values))  # None when absent
        else:
            out[col] = arrow(values)
    return out


# ----- Arrow arrays from NumPy buffers and back -----
# (pa.array and Array.to_numpy import pandas on first use, to look for pandas objects;
# these do not, so that a sweep never loads pandas)
def arrow(values: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    """A numeric or bool Arrow array of ``values``; where ``mask`` is True, null."""
    values = np.ascontiguousarray(values)
    valid = None
    if mask is not None and mask.any():
        valid = pa.py_buffer(np.packbits(~mask, bitorder="little"))
    if values.dtype == np.bool_:
        bits = pa.py_buffer(np.packbits(values, bitorder="little"))
        return pa.Array.from_buffers(pa.bool_(), len(values), [valid, bits])
    kind = pa.from_numpy_dtype(values.dtype)
    return pa.Array.from_buffers(kind, len(values), [valid, pa.py_buffer(values)])


def categories(values: list[str]) -> pa.Array:
    """A dictionary-encoded string array (int32 indices, in order of first appearance)."""
    words = list(dict.fromkeys(values))
    data = [w.encode() for w in words]
    offsets = np.cumsum([0] + [len(b) for b in data], dtype=np.int32)
    buffers = [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(data))]
    dictionary = pa.Array.from_buffers(pa.string(), len(words), buffers)
    where = {w: i for i, w in enumerate(words)}
    return pa.DictionaryArray.from_arrays(arrow(np.array([where[v] for v in values])), dictionary)


def to_numpy(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A numeric column without nulls as a NumPy array."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    data = np.frombuffer(column.buffers()[1], dtype=column.type.to_pandas_dtype())
    return data[column.offset : column.offset + len(column)]


def losses_table(
    run_ids: np.ndarray,
    axis_cols: dict[str, pa.Array],
    loss: np.ndarray,
    istats: np.ndarray,
    fstats: np.ndarray,
    every: int,
    val_loss: np.ndarray | None = None,
    vstats: np.ndarray | None = None,
    metrics: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> pa.Table:
    """Tidy rows (run_id, axes..., epoch, loss[, val_loss][, metrics...]) in run, then
    epoch, order.

    Kept: epoch 1, every multiple of ``every``, and each run's last epoch; none if
    ``every`` is 0. ``val_loss`` and ``vstats``: the held-out losses, if any; ``metrics``:
    name -> (recorded values (slots, R), final values (R,)), stored as the loss is.
    """
    metrics = metrics or {}
    R = len(run_ids)
    held = val_loss is not None
    if every == 0:
        R, run_ids, loss, istats = 0, run_ids[:0], loss[:, :0], istats[:0]
        val_loss = val_loss[:, :0] if held else None
        metrics = {k: (v[:, :0], f[:0]) for k, (v, f) in metrics.items()}
    S = loss.shape[0]
    rec = np.arange(S, dtype=np.int64) * every if every > 1 else np.arange(1, S + 1)
    if every > 1:
        rec[0] = 1
    last = istats[:, kernels.EPOCHS_RUN]
    keep = rec[None, :] <= last[:, None]  # (R, S)
    extra = ~np.isin(last, rec) & (last > 0)  # last epoch not on the record grid
    if keep.all() and not extra.any():
        values = np.ascontiguousarray(loss.T).ravel()
        val_values = np.ascontiguousarray(val_loss.T).ravel() if held else None
        extras = {k: np.ascontiguousarray(v.T).ravel() for k, (v, _) in metrics.items()}
        epochs = np.tile(rec.astype(np.int32), R)
        counts = np.full(R, S)
    else:
        eps = np.concatenate([np.broadcast_to(rec, (R, S)), last[:, None]], 1)
        mask = np.concatenate([keep, extra[:, None]], 1)
        values = _with_last(loss, fstats[:R, kernels.FINAL_LOSS])[mask]
        val_values = None
        if held:
            val_values = _with_last(val_loss, vstats[:R, kernels.FINAL_VAL_LOSS])[mask]
        extras = {k: _with_last(v, f[:R])[mask] for k, (v, f) in metrics.items()}
        epochs = eps[mask].astype(np.int32)
        counts = mask.sum(1)
    cols = {"run_id": arrow(np.repeat(run_ids.astype(np.int32), counts))}
    for key, col in axis_cols.items():
        cols[key] = col.take(arrow(np.repeat(np.arange(R, dtype=np.int32), counts)))
    cols["epoch"] = arrow(epochs)
    cols["loss"] = arrow(values)
    if held:
        cols["val_loss"] = arrow(val_values)
    for key, values in extras.items():
        cols[key] = arrow(values.astype(loss.dtype))
    return pa.table(cols)


def metric_curves(res) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A batch result's metrics for ``losses_table``: accuracy, and val_accuracy with
    held-out rows; none without metrics."""
    if res.accuracy is None:
        return {}
    out = {"accuracy": (res.accuracy, res.astats[:, kernels.FINAL_ACCURACY])}
    if res.val_loss is not None:
        out["val_accuracy"] = (res.val_accuracy, res.astats[:, kernels.FINAL_VAL_ACCURACY])
    return out


def _with_last(loss: np.ndarray, final: np.ndarray) -> np.ndarray:
    """(R, slots + 1): each run's recorded losses, then its final one."""
    with np.errstate(over="ignore"):  # a huge float64 loss is inf in float32
        return np.concatenate([loss.T, final[:, None].astype(loss.dtype)], 1)


def weights_table(run_ids: np.ndarray, Wh: np.ndarray, Wz: np.ndarray) -> pa.Table:
    """One row per run: ``run_id``, then ``Wh`` and ``Wz`` (the kernel's, runs last:
    (rows, columns, R)) each as a float64 list, one run's matrix flattened in C order,
    and its shape as ``Wh_shape``, ``Wz_shape`` (list of two int32: rows, columns)."""
    R = len(run_ids)
    cols: dict[str, pa.Array] = {"run_id": arrow(run_ids.astype(np.int32))}
    for name, W in (("Wh", Wh), ("Wz", Wz)):
        flat = np.ascontiguousarray(np.moveaxis(W, 2, 0), dtype=np.float64).reshape(-1)
        cols[name] = _lists(flat, W.shape[0] * W.shape[1], R)
        cols[f"{name}_shape"] = _lists(np.tile(np.array(W.shape[:2], np.int32), R), 2, R)
    return pa.table(cols)


def _lists(values: np.ndarray, size: int, R: int) -> pa.Array:
    """R lists of ``size`` consecutive values each (large lists past int32 offsets)."""
    big = R * size > np.iinfo(np.int32).max
    offsets = np.arange(R + 1, dtype=np.int64 if big else np.int32) * size
    kind = pa.LargeListArray if big else pa.ListArray
    return kind.from_arrays(arrow(offsets), arrow(values))


# pandas metadata naming only the nullable epochs, so that pandas reads them back as Int32
# (written without importing pandas; pandas converts every other column from its Arrow type)
def _nullable(keys: tuple[str, ...]) -> dict[bytes, bytes]:
    return {
        b"pandas": json.dumps({
            "index_columns": [],
            "column_indexes": [],
            "columns": [
                {"name": key, "field_name": key, "pandas_type": "int32", "numpy_type": "Int32",
                 "metadata": None}
                for key in keys
            ],
        }).encode()
    }  # fmt: skip


NULLABLE_INT32 = _nullable(("diverged_epoch", "converged_epoch"))
NULLABLE_HELD = _nullable(("diverged_epoch", "converged_epoch", "stopped_early_epoch"))


def runs_table(
    run_ids: np.ndarray,
    param_cols: dict[str, pa.Array],
    istats: np.ndarray,
    fstats: np.ndarray,
    tail: bool = True,
    vstats: np.ndarray | None = None,
    astats: np.ndarray | None = None,
    held_out: bool = False,
) -> pa.Table:
    """One row per run: its parameters, then its statistics (``tail``: with first_loss and
    tail_mean, which sweeps begun before runner kept them lack; ``vstats``: with the
    held-out loss's final_val_loss, min_val_loss, min_val_loss_epoch, and the epoch a run
    ran out of patience; ``astats``: final_accuracy, and final_val_accuracy if
    ``held_out``)."""
    status = istats[:, kernels.STATUS]
    run = istats[:, kernels.EPOCHS_RUN]
    diverged = status == kernels.DIVERGED
    converged = status == kernels.CONVERGED
    cols: dict[str, pa.Array] = {"run_id": arrow(run_ids.astype(np.int32))}
    cols.update(param_cols)
    cols["epochs_run"] = arrow(run.astype(np.int32))
    cols["final_loss"] = arrow(fstats[:, kernels.FINAL_LOSS])
    cols["min_loss"] = arrow(fstats[:, kernels.MIN_LOSS])
    cols["min_loss_epoch"] = arrow(istats[:, kernels.MIN_EPOCH].astype(np.int32))
    if tail:
        cols["first_loss"] = arrow(fstats[:, kernels.FIRST_LOSS])
        cols["tail_mean"] = arrow(fstats[:, kernels.TAIL_MEAN])
    cols["diverged"] = arrow(diverged)
    cols["diverged_epoch"] = arrow(run.astype(np.int32), mask=~diverged)
    cols["converged_epoch"] = arrow(run.astype(np.int32), mask=~converged)
    if astats is not None:
        cols["final_accuracy"] = arrow(astats[:, kernels.FINAL_ACCURACY])
        if held_out:
            cols["final_val_accuracy"] = arrow(astats[:, kernels.FINAL_VAL_ACCURACY])
    if vstats is None:
        return pa.table(cols).replace_schema_metadata(NULLABLE_INT32)
    cols["final_val_loss"] = arrow(vstats[:, kernels.FINAL_VAL_LOSS])
    cols["min_val_loss"] = arrow(vstats[:, kernels.MIN_VAL_LOSS])
    cols["min_val_loss_epoch"] = arrow(vstats[:, kernels.MIN_VAL_EPOCH].astype(np.int32))
    stopped = status == kernels.STOPPED_EARLY
    cols["stopped_early_epoch"] = arrow(run.astype(np.int32), mask=~stopped)
    return pa.table(cols).replace_schema_metadata(NULLABLE_HELD)
