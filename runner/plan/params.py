"""The run parameters: one table, one rule per parameter.

Each row of ``PARAMS`` says everything about a parameter: its default, whether
it is one value per kernel call (``per_call``) or may differ from run to run,
the table columns that hold it (name and dtype) and the rule that validates it.
The spec (``[train]``, ``[grid]``, ``[sample]``), ``runner.run.train``, the run plan
and the results tables all read this table: adding a parameter is adding a row
(and teaching the kernel about it).

Plan columns hold fixed dtypes: ``int32``, ``int64``, ``float64`` (a missing
optional value is NaN: such parameters must be finite when given), ``bool``, and
``category`` (an ``int8`` code into the row's ``choices``).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from runner.errors import RunnerError
from runner.kernel.family import ACTIVATIONS, SCALINGS, STEPS

OUTPUTS = ("linear", "sigmoid")
UPDATES = ("sequential", "simultaneous")
DTYPES = ("float64", "float32")
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1


class Invalid(ValueError):
    """A rule's verdict on one value; the caller names the key and the file."""


def is_int(v: Any) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_)


def is_num(v: Any) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(
        v, bool | np.bool_
    )


def _integer(low: int, high: int) -> Callable[[Any], int]:
    def check(v: Any) -> int:
        if not is_int(v):
            raise Invalid(f"must be an integer, got {v!r}")
        if v < low:
            raise Invalid(f"must be >= {low}, got {v}")
        if v > high:
            raise Invalid(f"is too large ({v}; at most {high})")
        return int(v)

    return check


def _positive(v: Any) -> float:
    if not is_num(v) or not math.isfinite(v) or v <= 0:
        raise Invalid(f"must be a finite number > 0, got {v!r}")
    return float(v)


def _optional_positive(v: Any) -> float | None:
    return None if v is None else _positive(v)


def _factor(v: Any) -> float:
    if not is_num(v) or math.isnan(v) or v < 1:
        raise Invalid(f"must be a number >= 1 (or inf: only a non-finite loss diverges), got {v!r}")
    return float(v)


def _choice(choices: tuple[str, ...]) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        if not isinstance(v, str) or v not in choices:
            raise Invalid(f"must be one of {', '.join(map(repr, choices))}, got {v!r}")
        return v

    return check


def _boolean(v: Any) -> bool:
    if not isinstance(v, bool | np.bool_):
        raise Invalid(f"must be true or false, got {v!r}")
    return bool(v)


def _pair(v: Any) -> list[float]:
    if isinstance(v, np.ndarray):
        v = v.tolist()
    if not isinstance(v, list | tuple) or len(v) != 2 or not all(map(is_num, v)):
        raise Invalid(f"must be a pair [lo, hi] of numbers, got {v!r}")
    lo, hi = float(v[0]), float(v[1])
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise Invalid(f"needs finite lo < hi, got {v!r}")
    return [lo, hi]


def _finite(v: Any) -> float:
    if not is_num(v) or not math.isfinite(v):
        raise Invalid(f"must be a finite number, got {v!r}")
    return float(v)


def _init(v: Any) -> Any:
    """``[lo, hi]`` (uniform), ``{normal = [mean, std]}`` or ``{path = "w0.npz"}`` (with the
    file's ``sha256`` once the spec has read it)."""
    if not isinstance(v, dict):
        return _pair(v)
    if set(v) == {"normal"}:
        pair = v["normal"].tolist() if isinstance(v["normal"], np.ndarray) else v["normal"]
        if not isinstance(pair, list | tuple) or len(pair) != 2 or not all(map(is_num, pair)):
            raise Invalid(f"normal needs [mean, std] of two numbers, got {v['normal']!r}")
        mean, std = float(pair[0]), float(pair[1])
        if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
            raise Invalid(f"normal needs a finite mean and a finite std > 0, got {pair!r}")
        return {"normal": [mean, std]}
    if "path" in v and set(v) <= {"path", "sha256"}:
        if not isinstance(v["path"], str) or not v["path"]:
            raise Invalid(f"path must be a file path string, got {v['path']!r}")
        if not isinstance(v.get("sha256", ""), str):
            raise Invalid(f"sha256 must be a string, got {v['sha256']!r}")
        return dict(v)
    raise Invalid("must be [lo, hi], {normal = [mean, std]} or {path = \"file.npz\"}, "
                  f"got {v!r}")  # fmt: skip


def init_kind(v: Any) -> str:
    """Which of the three forms a normalised ``init`` is."""
    if isinstance(v, dict):
        return "normal" if "normal" in v else "path"
    return "uniform"


def init_row(v: Any) -> tuple[float, float, float, float]:
    """A normalised ``init`` -> (init_lo, init_hi, init_mean, init_std): NaN where the
    form has no such number (a file's weights have none)."""
    kind = init_kind(v)
    if kind == "normal":
        return (math.nan, math.nan, *v["normal"])
    if kind == "path":
        return (math.nan,) * 4
    return (v[0], v[1], math.nan, math.nan)


@dataclass(frozen=True)
class Param:
    """One run parameter (a row of the table)."""

    name: str
    default: Any
    per_call: bool  # one value per kernel call: the runs of a chunk share it
    columns: tuple[tuple[str, str], ...]  # (column, dtype) in the plan and the tables
    check: Callable[[Any], Any]  # value -> normalised value, or raise Invalid
    choices: tuple[str, ...] = ()  # the categories of a "category" column

    def to_row(self, value: Any) -> tuple:
        """A normalised value -> its column values (plan dtypes)."""
        if self.name == "init":
            return init_row(value)
        kind = self.columns[0][1]
        if kind == "category":
            return (self.choices.index(value),)
        if kind == "float64" and value is None:
            return (math.nan,)
        return (value,)

    def from_row(self, row: tuple) -> Any:
        """Column values -> the normalised value (inverse of ``to_row``)."""
        if self.name == "init":
            lo, hi, mean, std = map(float, row)
            if not math.isnan(lo):
                return [lo, hi]
            return {"path": None} if math.isnan(mean) else {"normal": [mean, std]}
        kind, v = self.columns[0][1], row[0]
        if kind == "category":
            return self.choices[int(v)]
        if kind == "float64":
            return None if math.isnan(v) else float(v)
        if kind == "bool":
            return bool(v)
        return int(v)


# init's columns: a form's numbers, NaN for the others' (init_row)
INIT_COLUMNS = tuple((c, "float64") for c in ("init_lo", "init_hi", "init_mean", "init_std"))
PARAMS: tuple[Param, ...] = (
    # per kernel call, in the order that makes blocks of one shape contiguous
    Param("epochs", 10000, True, (("epochs", "int32"),), _integer(1, INT32_MAX)),
    Param("output", "linear", True, (("output", "category"),), _choice(OUTPUTS), OUTPUTS),
    Param("update", "sequential", True, (("update", "category"),), _choice(UPDATES), UPDATES),
    Param("hidden", 4, True, (("hidden", "int32"),), _integer(1, INT32_MAX)),
    Param("stop_below", None, True, (("stop_below", "float64"),), _optional_positive),
    Param("diverge_above", None, True, (("diverge_above", "float64"),), _optional_positive),
    # a run diverged once its loss passes diverge_factor x its first loss; the default
    # here is the rule of sweeps written before it (inf), a new spec's is DIVERGE_FACTOR
    Param("diverge_factor", math.inf, True, (("diverge_factor", "float64"),), _factor),
    Param("dtype", "float64", True, (("dtype", "category"),), _choice(DTYPES), DTYPES),
    Param("fastmath", False, True, (("fastmath", "bool"),), _boolean),
    Param(
        "activation",
        "sigmoid",
        True,
        (("activation", "category"),),
        _choice(ACTIVATIONS),
        ACTIVATIONS,
    ),
    Param("bias", False, True, (("bias", "bool"),), _boolean),
    Param("scaling", "standard", True, (("scaling", "category"),), _choice(SCALINGS), SCALINGS),
    Param("step", "notebook", True, (("step", "category"),), _choice(STEPS), STEPS),
    # the held-out fold of [data] kfold: an axis of its own, set from kfold (runner.plan.folds)
    Param("fold", 0, True, (("fold", "int32"),), _integer(0, INT32_MAX)),
    # per run
    Param("init", [0.0, 1.0], False, INIT_COLUMNS, _init),
    Param("alpha", 0.1, False, (("alpha", "float64"),), _positive),
    Param("alpha_hidden", None, False, (("alpha_hidden", "float64"),), _optional_positive),
    Param("alpha_output", None, False, (("alpha_output", "float64"),), _optional_positive),
    Param("seed", 0, False, (("seed", "int64"),), _integer(0, INT64_MAX)),
)
# The model family's parameters (docs/numerics.md). A sweep written before them has none
# in its sweep.json, which means their defaults; a spec's resolved form leaves out those at
# their default, and the tables hold their columns only where a sweep names them (a
# value in [train] other than the default, a [grid] axis, a [sample] key): a sweep of the
# notebook's model keeps its bytes.
MODEL: tuple[str, ...] = (
    "diverge_factor", "activation", "bias", "scaling", "step", "alpha_hidden", "alpha_output"
)  # fmt: skip
# Columns the tables hold only where a sweep names them: the model family's, and the fold
# of a k-fold sweep ([data] kfold).
OPTIONAL: tuple[str, ...] = (*MODEL, "fold")
DIVERGE_FACTOR = 1e6  # a new spec's diverge_factor, unless it names one
BY_NAME: dict[str, Param] = {p.name: p for p in PARAMS}
NAMES: tuple[str, ...] = tuple(BY_NAME)
DEFAULTS: dict[str, Any] = {p.name: p.default for p in PARAMS}
COLUMNS: tuple[str, ...] = tuple(c for p in PARAMS for c, _ in p.columns)
COLUMN_DTYPE: dict[str, str] = {c: t for p in PARAMS for c, t in p.columns}
OWNER: dict[str, Param] = {c: p for p in PARAMS for c, _ in p.columns}
PER_CALL: tuple[str, ...] = tuple(p.name for p in PARAMS if p.per_call)
NUMPY = {
    "int32": np.int32,
    "int64": np.int64,
    "float64": np.float64,
    "bool": np.bool_,
    "category": np.int8,
}


# The numbers of ``init``, which a [grid] or a [sample] may vary alone, and the form each
# belongs to.
HALVES = {"init_lo": _finite, "init_hi": _finite, "init_mean": _finite, "init_std": _positive}
HALF_KIND = {"init_lo": "uniform", "init_hi": "uniform", "init_mean": "normal",
             "init_std": "normal"}  # fmt: skip


def check(
    name: str,
    value: Any,
    *,
    file: str | None = None,
    key: str | None = None,
    fail: Callable[[str], Any] | None = None,
) -> Any:
    """Validate one parameter value (or a half of init) by its rule: the one validator.

    Returns the normalised value. A bad value raises RunnerError naming ``file`` and
    ``key`` (default: the name), or, given ``fail``, calls ``fail(message)`` (which
    raises, naming the key as its caller knows it)."""
    try:
        return (HALVES.get(name) or BY_NAME[name].check)(value)
    except Invalid as exc:
        if fail is not None:
            fail(str(exc))
        raise RunnerError(str(exc), file=file, key=key or name) from None


def columns_of(names: list[str] | tuple[str, ...]) -> list[str]:
    """Table columns of parameters, in table order (``init`` is ``init_lo``, ``init_hi``,
    ``init_mean``, ``init_std``: a table holds those of its sweep's form).

    A name that is no parameter stays as it is (at the end), for the caller to refuse.
    """
    wanted = set(names)
    known = [c for p in PARAMS if p.name in wanted for c, _ in p.columns]
    return known + [n for n in names if n not in BY_NAME]


def params_of(columns: list[str]) -> list[str]:
    """Parameters owning ``columns``, in table order."""
    owners = {OWNER[c].name for c in columns}
    return [p.name for p in PARAMS if p.name in owners]


def suggest(key: Any, valid: tuple[str, ...]) -> str:
    """'unknown key ...' with the nearest valid key, or the list of them."""
    close = difflib.get_close_matches(str(key), valid, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(valid)}"
    return f"unknown key {key!r}{hint}"
