"""k-fold cross-validation: ``[data] kfold`` (docs/data.md).

With ``p = numpy.random.default_rng(split_seed).permutation(n)``, row ``p[j]`` belongs
to fold ``j mod k``. The folds are the axis ``fold`` (0..k-1): a per-call parameter
(params.PARAMS), so a chunk holds one fold, the last of the per-call axes, just before
``init`` in the run order. A chunk of fold f holds that fold's rows out. The spec keeps
every row (``Spec.folds``: each row's fold); with ``standardize``, X and Y stay raw and
each fold's training rows give its statistics, applied per chunk (``rows_of``). The
standardisation of a spec, by the training rows of a split or of each fold, is here too.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from runner.plan import data as datasets
from runner.plan import holdout as H
from runner.plan import params as P

AXIS_HINT = "is the axis of [data] kfold; run some folds only with [grid] fold = [0, 2]"


def fold_of_rows(n: int, k: int, seed: int) -> np.ndarray:
    """Each of ``n`` rows' fold (int64): row ``p[j]`` is in fold ``j mod k``, where
    ``p = default_rng(seed).permutation(n)``."""
    folds = np.empty(n, dtype=np.int64)
    folds[np.random.default_rng(seed).permutation(n)] = np.arange(n, dtype=np.int64) % k
    return folds


def parse(raw: dict[str, Any], fail) -> dict[str, Any]:
    """``kfold``, ``validation`` and ``split_seed`` of a raw [data] table -> their resolved
    form (holdout.parse's without ``kfold``). ``fail(key, msg)`` raises."""
    if "kfold" not in raw:
        return H.parse(raw, fail)
    k = raw["kfold"]
    if "validation" in raw:
        fail("data.kfold", "give validation (one split) or kfold (k folds), not both")
    if not P.is_int(k) or not 2 <= k <= P.INT32_MAX:
        fail("data.kfold", f"must be an integer number of folds >= 2, got {k!r}")
    return {"kfold": int(k), "split_seed": H.split_seed(raw, fail)}


def resolve(form: dict[str, Any], spec: dict[str, Any], n: int, place: tuple, fail
            ) -> tuple[np.ndarray | None, np.ndarray | None]:  # fmt: skip
    """(held-out mask, each row's fold) of a resolved form over ``n`` rows: one of them or
    neither; the form and a digest go into ``spec`` (the resolved [data]). ``place``: as
    holdout.resolve's."""
    if "kfold" not in form:
        return H.resolve(form, spec, n, place, fail), None
    k = form["kfold"]
    if k > n:
        fail("data.kfold", f"{k} folds need at least {k} rows, the data has {n}")
    folds = fold_of_rows(n, k, form["split_seed"])
    sha = hashlib.sha256(folds.astype("<i8").tobytes()).hexdigest()[:16]
    spec.update(form, folds={"rows": n, "sha256": sha})
    return None, folds


def grid(raw: dict[str, Any], data: dict[str, Any], fail) -> dict[str, Any]:
    """The raw [grid] with kfold's axis: ``fold`` as [grid] gives it (some folds), else
    every fold. ``fold`` in [train] or [sample], or without kfold, is refused."""
    grid_raw = raw.get("grid", {})
    for table in ("train", "sample"):
        if "fold" in (raw.get(table) or {}):
            fail(f"{table}.fold", AXIS_HINT)
    if "kfold" not in data:
        if "fold" in grid_raw:
            fail("grid.fold", "needs [data] kfold, the number of folds")
        return grid_raw
    if "fold" in grid_raw:
        return grid_raw
    return {**grid_raw, "fold": list(range(data["kfold"]))}


def check_axis(folds: set, data: dict[str, Any], fail) -> None:
    """Refuse a [grid] fold past kfold's last fold; ``folds``: the values planned."""
    if "kfold" in data and max(folds) >= data["kfold"]:
        k = data["kfold"]
        fail("grid.fold", f"lists fold {max(folds)}; kfold = {k} has folds 0 to {k - 1}")


def standardize(data: dict[str, Any], X: np.ndarray, Y: np.ndarray, targets: bool,
                holdout: np.ndarray | None = None, folds: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """``[data] standardize``: X (and Y if ``targets``: every run's output is linear) by
    the training rows (all but ``holdout``'s); the statistics go into ``data["scaling"]``.
    Under kfold (``folds``), X and Y stay raw and ``data["scaling"]`` lists each fold's,
    by its training rows (the other folds'), applied per chunk (``rows_of``)."""
    if folds is not None:
        k = int(folds.max()) + 1
        data["scaling"] = [datasets.standardize(X, Y, folds != f, targets=targets)[2]
                           for f in range(k)]  # fmt: skip
        return X, Y
    train = np.ones(len(X), dtype=bool) if holdout is None else ~holdout
    X, Y, data["scaling"] = datasets.standardize(X, Y, train, targets=targets)
    return X, Y


def rescale(X: np.ndarray, Y: np.ndarray, stats: dict[str, Any]
            ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """X (and Y where ``stats`` has the targets') standardised by ``stats``: the
    operations of data.standardize, on the numbers it gave."""
    out = []
    for name, arr in (("x", X), ("y", Y)):
        mean = stats[f"{name}_mean"]
        if mean is None:
            out.append(arr)
            continue
        mean, scale = np.asarray(mean, np.float64), np.asarray(stats[f"{name}_scale"], np.float64)
        out.append(np.ascontiguousarray((arr - mean) / scale))
    return out[0], out[1]


def rows_of(X: np.ndarray, Y: np.ndarray, holdout: np.ndarray | None, folds: np.ndarray | None,
            scaling: list[dict[str, Any]] | None, fold: int
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:  # fmt: skip
    """X, Y and the held-out mask of a chunk: as the spec has them, or under kfold (each
    row's ``folds``) the rows of ``fold`` held out and, with per-fold ``scaling``, X and Y
    standardised by that fold's statistics."""
    if folds is None:
        return X, Y, holdout
    if scaling is not None:
        X, Y = rescale(X, Y, scaling[fold])
    return X, Y, folds == fold
