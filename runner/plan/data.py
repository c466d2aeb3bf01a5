"""Datasets: built-in ones and loaders for .csv, .parquet and .npz files."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from runner.errors import RunnerError

if TYPE_CHECKING:
    import pandas as pd

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


RANDOM = {"samples": None, "inputs": None, "outputs": 1, "seed": 0}  # None: required


def random_form(raw: object, fail) -> dict[str, int]:
    """``[data] random = {samples, inputs, outputs = 1, seed = 0}``, checked key by key."""
    if not isinstance(raw, dict):
        fail("data.random", f"must be a table like {{samples = 272, inputs = 16}}, got {raw!r}")
    for key in raw:
        if key not in RANDOM:
            fail(f"data.random.{key}", f"unknown key; the keys are {', '.join(RANDOM)}")
    form = {}
    for key, default in RANDOM.items():
        v = raw.get(key, default)
        least = 0 if key == "seed" else 1
        if v is None:
            fail(f"data.random.{key}", "is required")
        if isinstance(v, bool) or not isinstance(v, int) or v < least:
            fail(f"data.random.{key}", f"must be an integer >= {least}, got {v!r}")
        form[key] = v
    return form


def random(samples: int, inputs: int, outputs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Standard normal X, then Y, from ``default_rng(seed)`` (runner.kernel.reference)."""
    from runner.kernel.reference import random_data

    return random_data(samples, inputs, outputs, seed)


def load_file(
    path: str | Path,
    features: Sequence[str] | None = None,
    targets: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Load X, Y from .csv / .parquet (named columns) or .npz (arrays X and Y).

    A bad cell is reported by file, line (CSV, counting from the file's first line)
    or row (Parquet), column and the cell as written.
    """
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise RunnerError("data file not found", file=where, key="data.path")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _load_npz(path)
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

    frame = _read_frame(path)
    for key, cols in (("data.features", features), ("data.targets", targets)):
        for col in cols:
            if col not in frame.columns:
                raise RunnerError(
                    f"no column {col!r} (columns: {list(map(str, frame.columns))})",
                    file=where,
                    key=key,
                )
    for col in [*features, *targets]:
        values = pd.to_numeric(frame[col], errors="coerce")
        bad = values.isna() | ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            place, what = _bad_cell(path, frame, row, col)
            raise RunnerError(
                f"{what}; every feature and target cell must be a finite number",
                file=f"{where} {place}, column {col!r}",
            )
    X = frame[list(features)].to_numpy(dtype=np.float64)
    Y = frame[list(targets)].to_numpy(dtype=np.float64)
    return check_data(X, Y, where)


def read_column(path: str | Path, column: str, key: str) -> pd.Series:
    """One named column of a .csv or .parquet file, its rows in file order (as
    ``load_file`` reads them); ``key`` names the spec key that asked for it."""
    path = Path(path)
    frame = _read_frame(path)
    if column not in frame.columns:
        raise RunnerError(
            f"no column {column!r} (columns: {list(map(str, frame.columns))})",
            file=str(path),
            key=key,
        )
    return frame[column]


def in_spec(step: Callable[[], Any], place: tuple[str, Path, str], key: str) -> Any:
    """``step()``, a RunnerError of it naming the spec and the key as well as the data
    file as the spec names it; ``place``: (that name, the file found, the spec)."""
    rel, found, where = place
    try:
        return step()
    except RunnerError as exc:
        named = str(rel) + str(exc.file)[len(str(found)) :]
        raise RunnerError(f"{named}: {exc.reason}", file=where, key=exc.key or key) from None


def _load_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    where = str(path)
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


def _read_frame(path: Path) -> pd.DataFrame:
    import pandas as pd

    where = str(path)
    try:
        if path.suffix.lower() == ".csv":
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
    return frame


def _bad_cell(path: Path, frame: pd.DataFrame, row: int, col: str) -> tuple[str, str]:
    """("line 8" or "row 7", what is wrong with the cell as written) of data row ``row``."""
    position = frame.columns.get_loc(col)
    if path.suffix.lower() == ".csv":
        line, text = csv_cell(path, row, position)
        return f"line {line}", describe_cell(text)
    import pyarrow.parquet as pq

    value = pq.read_table(path, columns=[col]).column(0)[row].as_py()
    if value is None:
        return f"row {row + 1}", "empty cell (null)"
    return f"row {row + 1}", describe_cell(str(value))


def csv_cell(path: Path, row: int, position: int) -> tuple[int, str | None]:
    """The line (from 1, the header's) where data row ``row`` starts, and its cell
    ``position`` as written (None if the line is short). Blank lines are skipped, as
    pandas skips them; a quoted cell may span lines."""
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
        reader = csv.reader(fh)
        seen = -2  # the header is record -1
        before = 0
        for record in reader:
            if any(field.strip() for field in record):
                seen += 1
                if seen == row:
                    cell = record[position] if position < len(record) else None
                    return before + 1, cell
            before = reader.line_num
    raise AssertionError(f"{path}: row {row} not found")  # pandas read it, so it is there


def describe_cell(text: str | None) -> str:
    """What is wrong with a cell that is not a finite number, quoting it as written
    (its first 40 characters)."""
    if text is None or not text.strip():
        return "empty cell"
    shown = repr(text if len(text) <= 40 else text[:40] + "...")
    try:
        float(text)
    except ValueError:
        return f"{shown} is not a number"
    return f"{shown} is not a finite number"


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


def standardize(
    X: np.ndarray, Y: np.ndarray, train: np.ndarray, targets: bool
) -> tuple[np.ndarray, np.ndarray, dict[str, list[float] | None]]:
    """Standardise the columns of X (and of Y if ``targets``) by the training rows.

    ``train`` is a boolean mask of the training rows. Each column becomes
    ``(x - mean) / scale``, where mean and scale are NumPy's ``mean`` and ``std``
    (population, ddof 0) over the training rows, in file order; a column constant
    on those rows keeps scale 1. Returns the new X, Y and the statistics
    (``x_mean``, ``x_scale``, ``y_mean``, ``y_scale``; the ``y_`` ones None when
    Y is kept) as lists of floats, which JSON stores exactly.
    """
    train = np.asarray(train, dtype=bool)
    stats: dict[str, list[float] | None] = {"y_mean": None, "y_scale": None}
    out = []
    for name, arr, on in (("x", X, True), ("y", Y, targets)):
        if not on:
            out.append(arr)
            continue
        rows = arr[train]
        mean = rows.mean(axis=0)
        std = rows.std(axis=0)
        scale = np.where(std > 0, std, 1.0)
        out.append(np.ascontiguousarray((arr - mean) / scale))
        stats[f"{name}_mean"], stats[f"{name}_scale"] = mean.tolist(), scale.tolist()
    return out[0], out[1], {k: stats[k] for k in ("x_mean", "x_scale", "y_mean", "y_scale")}
