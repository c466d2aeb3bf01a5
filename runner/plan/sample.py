"""``[sample]``: random or quasi-random points, crossed with ``[grid]``.

A point is one draw of every sampled key. ``method = "sobol"`` takes scrambled
Sobol' points (``scipy.stats.qmc.Sobol``, scrambled by ``seed``); ``"random"``
takes ``numpy.random.default_rng(seed).random``. Both are streams: the first
``n`` points never depend on ``points``, so raising ``points`` grows the sweep.
Distributions map a uniform ``u`` in [0, 1) to a value:

- ``uniform = [lo, hi]``: ``lo + u (hi - lo)``; integer keys take ``lo..hi``.
- ``loguniform = [lo, hi]`` (``lo > 0``): ``exp(log lo + u (log hi - log lo))``,
  rounded to 12 significant digits so that another libm gives the same value.
- ``choice = [a, b, ...]``: one of the values, each with equal chance.

Points that repeat an earlier point (possible with ``choice`` or integer keys)
are dropped: a run's identity is its parameters, so each is trained once.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from typing import Any

import numpy as np

from runner.plan import inits
from runner.plan import params as P
from runner.plan.chunks import Factor

METHODS = ("sobol", "random")
DISTRIBUTIONS = ("uniform", "loguniform", "choice")
MAX_POINTS = 10_000_000
PAIR = P.HALVES  # the numbers of ``init`` that may be sampled alone (its form's, runner.plan.inits)


def _keys() -> tuple[str, ...]:
    return (*P.NAMES, *PAIR)


def build_sample(raw: dict, train: dict[str, Any], grid: dict[str, Any], fail
                 ) -> tuple[dict[str, Any], Factor]:  # fmt: skip
    """Validate ``[sample]``; return its resolved form and its points (plan columns)."""
    points = raw.get("points")
    if not P.is_int(points) or not 1 <= points <= MAX_POINTS:
        fail("sample.points", f"must be an integer from 1 to {MAX_POINTS:,}, got {points!r}")
    method = raw.get("method", "sobol")
    if method not in METHODS:
        fail("sample.method", f"must be one of {', '.join(map(repr, METHODS))}, got {method!r}")
    seed = raw.get("seed", 0)
    if not P.is_int(seed) or not 0 <= seed <= P.INT64_MAX:
        fail("sample.seed", f"must be an integer >= 0, got {seed!r}")
    dists: dict[str, tuple[str, list]] = {}
    for key, value in raw.items():
        if key in ("points", "method", "seed"):
            continue
        if key not in _keys():
            fail(f"sample.{key}", P.suggest(key, (*_keys(), "points", "method", "seed")))
        where = f"sample.{key}"
        at = lambda m, w=where: fail(w, m)  # noqa: E731
        owner = "init" if key in PAIR else key
        for other in (owner, *PAIR) if owner == "init" else (owner,):
            if other in grid:
                fail(where, f"is also a [grid] axis (grid.{other}): sample it or grid it, not both")
        if key in PAIR:
            inits.check_half(key, train, raw, at)
        dists[key] = _distribution(key, value, where, at)
        if key == "init":
            inits.check_listed(key, dists[key][1], train, at)
    if not dists:
        fail("sample", "names no key to sample, e.g. alpha = { loguniform = [1e-4, 1.0] }")
    _check_init(dists, train, fail)
    order = sorted(dists, key=_position)
    u = _uniforms(method, int(seed), int(points), len(order))
    columns: dict[str, np.ndarray] = {}
    for j, key in enumerate(order):
        columns.update(_transform(key, *dists[key], u[:, j]))
    columns = _unique(columns)
    form: dict[str, Any] = {"points": int(points), "method": method, "seed": int(seed)}
    for key in order:
        form[key] = {dists[key][0]: dists[key][1]}
    form["sha256"] = digest(columns)
    return form, columns


def _position(key: str) -> int:
    return P.COLUMNS.index(key if key not in ("init",) else "init_lo")


def _distribution(key: str, value: Any, where: str, fail) -> tuple[str, list]:
    if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in DISTRIBUTIONS:
        fail(f"must be one table {{uniform = [lo, hi]}}, {{loguniform = [lo, hi]}} or "
             f"{{choice = [...]}}, got {value!r}")  # fmt: skip
    kind, args = next(iter(value.items()))
    if kind == "choice":
        if not isinstance(args, list) or not args:
            fail(f"choice needs a non-empty list of values, got {args!r}")
        values = [P.check(key, v, fail=fail) for v in args]
        if len({json.dumps(v) for v in values}) != len(values):
            fail(f"choice lists a value twice: {args!r}")
        return kind, values
    numeric = key in PAIR or P.BY_NAME[key].columns[0][1] in ("int32", "int64", "float64")
    if not numeric or key == "init":
        fail(f"{kind} needs a numeric key; use choice for {key}")
    if not isinstance(args, list) or len(args) != 2 or not all(map(P.is_num, args)):
        fail(f"{kind} needs [lo, hi] of two numbers, got {args!r}")
    lo, hi = (P.check(key, v, fail=fail) for v in args)
    if not lo < hi:
        fail(f"{kind} needs lo < hi, got {args!r}")
    if kind == "loguniform" and lo <= 0:
        fail(f"loguniform needs lo > 0 (the log of a non-positive bound), got {args!r}")
    return kind, [lo, hi]


def _check_init(dists: dict[str, tuple[str, list]], train: dict[str, Any], fail) -> None:
    """Every point must have init_lo < init_hi: the ranges may not overlap."""
    if not any(k in dists for k in ("init_lo", "init_hi")):
        return
    span = {}
    for half, key in enumerate(("init_lo", "init_hi")):
        if key in dists:
            _, args = dists[key]
            span[key] = (min(args), max(args))
        else:
            span[key] = (train["init"][half],) * 2
    if not span["init_lo"][1] < span["init_hi"][0]:
        key = "init_hi" if "init_hi" in dists else "init_lo"
        fail(f"sample.{key}", f"needs every init_lo below every init_hi, got lo in "
             f"{list(span['init_lo'])} and hi in {list(span['init_hi'])}")  # fmt: skip


def _uniforms(method: str, seed: int, n: int, d: int) -> np.ndarray:
    """(n, d) uniforms in [0, 1); the first rows never depend on n."""
    if method == "random":
        return np.random.default_rng(seed).random((n, d))
    from scipy.stats import qmc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # balance wants n a power of two
        return qmc.Sobol(d, scramble=True, rng=seed).random(n)


def _transform(key: str, kind: str, args: list, u: np.ndarray) -> dict[str, np.ndarray]:
    """Uniforms -> the key's plan column(s)."""
    if kind == "choice":
        pick = np.minimum((u * len(args)).astype(np.int64), len(args) - 1)
        if key in PAIR:
            return {key: np.asarray(args, np.float64)[pick]}
        p = P.BY_NAME[key]
        rows = [p.to_row(v) for v in args]
        return {
            col: np.array([r[j] for r in rows], dtype=P.NUMPY[dt])[pick]
            for j, (col, dt) in enumerate(p.columns)
        }
    lo, hi = args
    integer = key not in PAIR and P.BY_NAME[key].columns[0][1] != "float64"
    top = hi + 1 if integer else hi
    if kind == "uniform":
        values = lo + u * (top - lo)
    else:
        a, b = math.log(lo), math.log(top)
        values = np.array([float(f"{math.exp(a + x * (b - a)):.12g}") for x in u.tolist()])
    values = np.clip(values, lo, hi)
    if integer:
        values = np.minimum(np.floor(values), hi)
    dtype = P.NUMPY[P.COLUMN_DTYPE[key]]
    return {key: values.astype(dtype)}


def _unique(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Drop points that repeat an earlier point (first kept, order kept)."""
    names = sorted(columns)
    keys = np.stack(
        [
            columns[c].view(np.int64)
            if columns[c].dtype == np.float64
            else columns[c].astype(np.int64)
            for c in names
        ],
        axis=1,
    )
    _, first = np.unique(keys, axis=0, return_index=True)
    if len(first) == len(keys):
        return columns
    keep = np.sort(first)
    return {c: v[keep] for c, v in columns.items()}


def digest(columns: dict[str, np.ndarray]) -> str:
    """A short hash of the points: the same spec must give the same points anywhere."""
    h = hashlib.sha256()
    for c in sorted(columns):
        h.update(c.encode())
        h.update(
            np.ascontiguousarray(columns[c]).astype(columns[c].dtype.newbyteorder("<")).tobytes()
        )
    return h.hexdigest()[:16]
