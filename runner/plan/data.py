"""Datasets: built-in ones and loaders for .csv, .parquet and .npz files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from runner.errors import RunnerError

BUILTINS: dict[str, tuple[list[list[float]], list[list[float]]]] = {
    # the notebook's four points: y = x1 + 2*x2 - 3
    "seed": ([[1, 1], [1, 2], [2, 1], [2, 2]], [[0], [1], [2], [3]]),
    "xor": ([[0, 0], [0, 1], [1, 0], [1, 1]], [[0], [1], [1], [0]]),
    "and": ([[0, 0], [0, 1], [1, 0], [1, 1]], [[0], [0], [0], [1]]),
    "or": ([[0, 0], [0, 1], [1, 0], [1, 1]], [[0], [1], [1], [1]]),
}


def builtin(name: str) -> tuple[np.ndarray, np.ndarray]:
    """A built-in dataset by name ("seed", "xor", "and", "or")."""
    if name not in BUILTINS:
        raise RunnerError(
            f"unknown builtin dataset {name!r}; choose one of {sorted(BUILTINS)}",
            key="data.builtin",
        )
    X, Y = BUILTINS[name]
    return np.array(X, dtype=np.float64), np.array(Y, dtype=np.float64)


def load_file(
    path: str | Path,
    features: Sequence[str] | None = None,
    targets: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Load X, Y from .csv / .parquet (named columns) or .npz (arrays X and Y)."""
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise RunnerError("data file not found", file=where, key="data.path")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as npz:
                missing = [k for k in ("X", "Y") if k not in npz.files]
                if missing:
                    raise RunnerError(
                        f"missing array {missing[0]!r} (has {sorted(npz.files)})",
                        file=where,
                        key=missing[0],
                    )
                X, Y = npz["X"], npz["Y"]
        except RunnerError:
            raise
        except Exception as exc:  # zip, pickle or format errors
            raise RunnerError(f"not a readable .npz file ({exc})", file=where) from None
        return check_data(X, Y, where)
    if suffix not in (".csv", ".parquet"):
        raise RunnerError(
            f"unsupported data format {suffix!r}; use .csv, .parquet or .npz", file=where
        )
    if not features or not targets:
        raise RunnerError(
            "a .csv or .parquet file needs data.features and data.targets column lists",
            file=where,
            key="data.features" if not features else "data.targets",
        )
    import pandas as pd

    try:
        if suffix == ".csv":
            # exact decimal -> float64 (pandas 3's default; before it, only on request)
            old = int(pd.__version__.split(".")[0]) < 3
            exact = {"float_precision": "round_trip"} if old else {}
            frame = pd.read_csv(path, **exact)
        else:
            frame = pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise RunnerError("file is empty", file=where) from None
    except Exception as exc:
        raise RunnerError(f"cannot read file ({type(exc).__name__}: {exc})", file=where) from None
    if len(frame) == 0:
        raise RunnerError("file has no rows", file=where)
    for key, cols in (("data.features", features), ("data.targets", targets)):
        for col in cols:
            if col not in frame.columns:
                raise RunnerError(
                    f"no column {col!r} (columns: {list(map(str, frame.columns))})",
                    file=where,
                    key=key,
                )
            values = pd.to_numeric(frame[col], errors="coerce")
            bad = values.isna() | ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise RunnerError(
                    f"column {col!r} row {row + 1}: {frame[col].iloc[row]!r} is not a finite "
                    "number",
                    file=where,
                    key=key,
                )
    X = frame[list(features)].to_numpy(dtype=np.float64)
    Y = frame[list(targets)].to_numpy(dtype=np.float64)
    return check_data(X, Y, where)


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
