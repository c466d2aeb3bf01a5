"""A run's stored final weights and its network's outputs on new rows (docs/results.md).

The forward pass is runner.kernel.reference's, operation for operation (the kernel's
own order), in the run's training dtype: on the training rows it gives the kernel's
numbers exactly (not for ``fastmath`` runs, whose kernel reorders and fuses).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from runner.errors import RunnerError
from runner.kernel import reference as ref
from runner.plan import params as P
from runner.plan.chunks import Plan
from runner.results import store
from runner.results.tables import to_numpy

MODEL_KEYS = ("output", "dtype", "activation", "bias", "scaling")  # what the forward pass needs


def chunk_of_run(plan: Plan, run_id: int, where: str) -> int:
    """The chunk holding ``run_id`` (runs are contiguous in chunk order)."""
    if not 0 <= run_id < plan.n_runs:
        raise RunnerError(f"no run {run_id}: the sweep has runs 0 to {plan.n_runs - 1}",
                          file=where, key="run_id")  # fmt: skip
    stops = np.cumsum(plan.chunk_sizes())
    return int(np.searchsorted(stops, run_id, side="right"))


def _row(path: Path, run_id: int, columns: list[str] | None = None) -> pa.Table:
    """The one row of ``run_id`` in a chunk's file."""
    try:
        table = pq.read_table(path, columns=columns, filters=[("run_id", "==", run_id)])
    except (OSError, pa.ArrowException) as exc:
        raise RunnerError(f"unreadable Parquet file ({exc})", file=str(path)) from None
    if table.num_rows != 1:
        raise RunnerError(f"holds {table.num_rows} rows of run {run_id}, not 1", file=str(path))
    return table


def read_weights(folder: Path, spec: dict[str, Any], plan: Plan, run_id: int
                 ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Run ``run_id``'s final weights (Wh, Wz), float64, shapes (inputs [+1], hidden) and
    (hidden [+1], outputs): the bias row last."""
    where = str(folder)
    if "weights" not in spec["record"]:
        raise RunnerError("keeps no weights ([record] weights = \"none\", or a sweep begun "
                          "before runner stored them)", file=where)  # fmt: skip
    c = chunk_of_run(plan, int(run_id), where)
    if not (folder / store.RUNS / store.chunk_name(c)).is_file():
        raise RunnerError(f"run {run_id} is not finished (chunk {c}): run the sweep to "
                          "finish it", file=where)  # fmt: skip
    table = _row(folder / store.WEIGHTS / store.chunk_name(c), int(run_id))
    out = []
    for name in ("Wh", "Wz"):
        values = table.column(name).combine_chunks().flatten()
        shape = table.column(f"{name}_shape").to_pylist()[0]
        out.append(to_numpy(values).reshape(shape).copy())
    return out[0], out[1]


def run_model(folder: Path, spec: dict[str, Any], plan: Plan, run_id: int) -> dict[str, Any]:
    """The model keys of run ``run_id``: its runs row's, else the spec's [train], else the
    defaults (the runs table has a model family column only where the sweep names it)."""
    c = chunk_of_run(plan, int(run_id), str(folder))
    path = folder / store.RUNS / store.chunk_name(c)
    names = set(pq.read_schema(path).names)
    row = _row(path, int(run_id), [k for k in MODEL_KEYS if k in names]).to_pylist()[0]
    return {k: row[k] if k in row else spec["train"].get(k, P.DEFAULTS[k]) for k in MODEL_KEYS}


def run_scaling(folder: Path, spec: dict[str, Any], plan: Plan, run_id: int
                ) -> dict[str, Any] | None:  # fmt: skip
    """The standardisation of run ``run_id``'s rows: sweep.json's ``data.scaling``, or,
    under kfold (a list, one a fold), that of the run's fold (None: none)."""
    scaling = spec["data"].get("scaling")
    if not isinstance(scaling, list):
        return scaling
    c = chunk_of_run(plan, int(run_id), str(folder))
    return scaling[int(plan.chunk(c).columns["fold"][0])]  # a chunk holds one fold


def forward(X: np.ndarray, Wh: np.ndarray, Wz: np.ndarray, *, output: str = "linear",
            dtype: str = "float64", activation: str = "sigmoid", bias: bool = False,
            scaling: str = "standard") -> np.ndarray:  # fmt: skip
    """The network's outputs Z on the rows of X, in ``dtype``: the reference's forward pass
    (runner.kernel.reference.train_reference), the same operations in the same order."""
    f = np.dtype(dtype)
    X, Wh, Wz = (np.asarray(a, dtype=f) for a in (X, Wh, Wz))
    hidden = Wz.shape[0] - bias
    c_h, c_o = (f.type(s) for s in ref.scales(scaling, activation, X.shape[1], hidden))
    with np.errstate(all="ignore"):
        A = ref.dot(ref.with_ones(X, bias), Wh) * c_h
        H = ref.activate(activation, A)
        Pz = ref.dot(ref.with_ones(H, bias), Wz) * c_o
        return Pz if output == "linear" else ref.sigmoid(Pz)


def predict(X: Any, Wh: np.ndarray, Wz: np.ndarray, model: dict[str, Any],
            scaling: dict[str, Any] | None, where: str = "") -> np.ndarray:  # fmt: skip
    """Outputs (rows, outputs), float64, of a network on raw rows X: standardised by
    ``scaling`` (sweep.json's ``data.scaling``; None: as given), then the forward pass in
    the run's dtype, then the targets' standardisation inverted (where it was applied)."""
    X = np.asarray(X, dtype=np.float64)
    inputs = Wh.shape[0] - bool(model["bias"])
    if X.ndim != 2 or X.shape[1] != inputs:
        raise RunnerError(f"X must be rows of {inputs} features (rows, {inputs}), got shape "
                          f"{X.shape}", file=where, key="X")  # fmt: skip
    if scaling is not None:  # the operations of runner.plan.data.standardize
        X = (X - np.asarray(scaling["x_mean"])) / np.asarray(scaling["x_scale"])
    Z = forward(X, Wh, Wz, **model).astype(np.float64)
    if scaling is not None and scaling.get("y_mean") is not None:
        Z = Z * np.asarray(scaling["y_scale"]) + np.asarray(scaling["y_mean"])
    return Z
