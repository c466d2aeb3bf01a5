"""Held-out rows: ``[data] validation`` and ``split_seed``, and ``[train] patience``.

The held-out rows are a boolean mask over the data's rows (True: held out), made
from the resolved ``[data]`` table and the data alone, so a resumed sweep makes the
same mask; the mask's digest goes into the resolved spec beside the keys
(``holdout``), so that a mask made differently (another NumPy) is another sweep.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from runner.plan import data as datasets
from runner.plan import params as P

if TYPE_CHECKING:
    import pandas as pd

COLUMN_KEYS = ("column", "value")
TRAIN_KEYS = ("patience",)  # [train] keys outside the parameter table: one value a sweep


def fraction_rows(n: int, fraction: float, seed: int) -> np.ndarray:
    """The held-out mask of ``n`` rows by fraction: ``k = round(fraction * n)`` (halves to
    even) clipped to 1..n-1; the rows ``default_rng(seed).permutation(n)[:k]``."""
    k = min(max(round(fraction * n), 1), n - 1)
    mask = np.zeros(n, dtype=bool)
    mask[np.random.default_rng(seed).permutation(n)[:k]] = True
    return mask


def column_rows(values: pd.Series, value: Any) -> np.ndarray:
    """The held-out mask by column: the rows whose ``values`` equal ``value`` (a missing
    cell equals nothing)."""
    return np.asarray((values == value).to_numpy(), dtype=bool)


def parse(raw: dict[str, Any], fail) -> dict[str, Any]:
    """``validation`` and ``split_seed`` of a raw [data] table -> their resolved form
    (empty when no rows are held out). ``fail(key, msg)`` raises."""
    if "validation" not in raw:
        if "split_seed" in raw:
            fail("data.split_seed", "needs held-out rows: set [data] validation to a "
                 "fraction, or kfold")  # fmt: skip
        return {}
    v = raw["validation"]
    if isinstance(v, dict):
        for key in v:
            if key not in COLUMN_KEYS:
                fail(f"data.validation.{key}", P.suggest(key, COLUMN_KEYS))
        for key in COLUMN_KEYS:
            if key not in v:
                fail(f"data.validation.{key}", "is required (validation = {column = \"part\", "
                     "value = 3})")  # fmt: skip
        if not isinstance(v["column"], str) or not v["column"]:
            fail("data.validation.column", f"must be a column name, got {v['column']!r}")
        value = v["value"]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float | str)
            or (isinstance(value, float) and not math.isfinite(value))
        ):
            fail("data.validation.value", f"must be a number or a string, got {value!r}")
        if "split_seed" in raw:
            fail("data.split_seed", "applies to a fraction only; a column split draws nothing")
        if "path" not in raw or Path(str(raw["path"])).suffix.lower() not in (".csv", ".parquet"):
            fail("data.validation", "a column split needs a .csv or .parquet [data] path; "
                 "give a fraction (validation = 0.2) for other data")  # fmt: skip
        for key in ("features", "targets"):
            if v["column"] in (raw.get(key) or []):
                fail(f"data.{key}", f"lists {v['column']!r}, the validation column; "
                     "it cannot also be a feature or a target")  # fmt: skip
        return {"validation": {"column": v["column"], "value": value}}
    if not P.is_num(v) or not 0 < v < 1:
        fail("data.validation", "must be a fraction strictly between 0 and 1 (e.g. 0.2) or "
             f"a table {{column = \"part\", value = 3}}, got {v!r}")  # fmt: skip
    return {"validation": float(v), "split_seed": split_seed(raw, fail)}


def split_seed(raw: dict[str, Any], fail) -> int:
    """``[data] split_seed`` (default 0): the seed of the rows' permutation."""
    seed = raw.get("split_seed", 0)
    if not P.is_int(seed) or not 0 <= seed <= P.INT64_MAX:
        fail("data.split_seed", f"must be an integer >= 0, got {seed!r}")
    return int(seed)


def rows(form: dict[str, Any], n: int, column: pd.Series | None, fail) -> np.ndarray:
    """The held-out mask of a resolved form (``parse``) over ``n`` rows; ``column``: the
    split column's values, for a column split. A split leaving no row on a side fails."""
    v = form["validation"]
    if n < 2:
        fail("data.validation", f"needs at least 2 rows to hold some out, the data has {n}")
    if isinstance(v, dict):
        mask = column_rows(column, v["value"])
        if not mask.any():
            fail("data.validation.value", f"{v['value']!r} matches no row of column "
                 f"{v['column']!r}: nothing would be held out")  # fmt: skip
        if mask.all():
            fail("data.validation.value", f"{v['value']!r} matches every row of column "
                 f"{v['column']!r}: nothing would be left to train on")  # fmt: skip
        return mask
    return fraction_rows(n, v, form["split_seed"])


def resolve(form: dict[str, Any], spec: dict[str, Any], n: int, place: tuple, fail
            ) -> np.ndarray | None:  # fmt: skip
    """The held-out mask of a resolved form over ``n`` rows (None: none held out), added
    with its digest to ``spec`` (the resolved [data]); ``place``: the data file as the spec
    names it, the file found and the spec (a column split reads its column there)."""
    if not form:  # no validation: a spec without it keeps its hash
        return None
    column = None
    if isinstance(form["validation"], dict):
        key = "data.validation.column"
        found = place[1]
        column = datasets.in_spec(
            lambda: datasets.read_column(found, form["validation"]["column"], key), place, key
        )
    mask = rows(form, n, column, fail)
    spec.update(form, holdout=digest(mask))
    return mask


def digest(mask: np.ndarray) -> dict[str, Any]:
    """What the resolved spec records of a mask: its count and a digest of its rows."""
    held = np.flatnonzero(mask).astype("<i8")
    return {"rows": int(held.size), "sha256": hashlib.sha256(held.tobytes()).hexdigest()[:16]}


def patience(train_raw: dict[str, Any], holdout: np.ndarray | None, fail) -> int | None:
    """``[train] patience`` (epochs without a better val_loss before a run stops), or None."""
    if "patience" not in train_raw:
        return None
    value = train_raw["patience"]
    if not P.is_int(value) or not 1 <= value <= P.INT32_MAX:
        fail("train.patience", f"must be an integer number of epochs >= 1, got {value!r}")
    if holdout is None:
        fail("train.patience", "patience needs held-out rows: set [data] validation or kfold")
    return int(value)
