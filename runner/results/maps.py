"""Trainability maps: one value per point of a 2-D grid of two numeric axes (docs/trainability.md).

A pixel is the median over every run at its (x, y): the seeds, and any other axis that
varies. The default value is the log loss ratio, ``log10(tail_mean / first_loss)`` when
the runs table has those columns, else ``log10(final_loss / loss at epoch 1)`` with the
epoch-1 loss read from the losses table. A run that diverged counts as +inf. A pixel
converged when its median ratio is below 1 (as in Sohl-Dickstein 2024).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from runner.errors import RunnerError
from runner.plan import params
from runner.results import store
from runner.results.boundary import BoundaryDimension, boundary_dimension

RATIO = "log_ratio"  # the default value's name
NUMERIC = ("int32", "int64", "float64")
MAX_POINTS = 4096 * 4096  # a map's pixels; beyond, its arrays pass half a gigabyte


@dataclass(frozen=True)
class Map:
    """A 2-D map: ``array[i, j]`` is the pixel at ``y = ys[i]``, ``x = xs[j]``.

    ``array``: the median of ``value`` over the pixel's runs (NaN where no run finished;
    +inf where the median run diverged, for the log ratio). ``converged``: the median log
    ratio is below 0. ``diverged``: the median run diverged. ``runs``: runs per pixel.
    """

    x: str
    y: str
    xs: np.ndarray
    ys: np.ndarray
    value: str  # RATIO or a runs column
    label: str  # what the value is, in words, for axes and colour bars
    ratio: str  # the loss ratio that decides "converged", e.g. "tail_mean / first_loss"
    array: np.ndarray
    converged: np.ndarray
    diverged: np.ndarray
    runs: np.ndarray

    def boundary_dimension(self, min_boxes: int = 4) -> BoundaryDimension:
        """Box-counting dimension of the edge between converged and other pixels."""
        return boundary_dimension(self.converged, min_boxes=min_boxes)

    def frame(self) -> pd.DataFrame:
        """The map as a tidy table: one row per pixel (x, y, value, converged, diverged, runs)."""
        yy, xx = np.meshgrid(self.ys, self.xs, indexing="ij")
        return pd.DataFrame(
            {
                self.x: xx.ravel(),
                self.y: yy.ravel(),
                self.value: self.array.ravel(),
                "converged": self.converged.ravel(),
                "diverged": self.diverged.ravel(),
                "runs": self.runs.ravel(),
            }
        )


def numeric_axes(res: Any) -> list[str]:
    """The grid's numeric columns, in run order (``init`` gives ``init_lo``, ``init_hi``)."""
    cols = store.axis_columns(res.axes)
    return [c for c in cols if params.COLUMN_DTYPE.get(c) in NUMERIC and c in res.runs.columns]


def varying_axes(res: Any) -> list[str]:
    """The numeric grid columns other than seed that take more than one value."""
    runs = res.runs
    return [c for c in numeric_axes(res) if c != "seed" and (runs[c] != runs[c].iloc[0]).any()]


def default_axes(res: Any) -> tuple[str, str] | None:
    """(x, y) for a sweep's map: the last two varying numeric axes (x the last), or None."""
    varying = varying_axes(res)
    return (varying[-1], varying[-2]) if len(varying) >= 2 else None


def log_ratio(res: Any) -> tuple[np.ndarray, str]:
    """Each run's log10 loss ratio (+inf if it diverged) and the ratio in words."""
    runs = res.runs
    if {"tail_mean", "first_loss"} <= set(runs.columns):
        ratio = runs["tail_mean"].to_numpy(float) / runs["first_loss"].to_numpy(float)
        label = "tail_mean / first_loss"
    else:
        ratio = runs["final_loss"].to_numpy(float) / _first_losses(res, runs["run_id"])
        label = "final_loss / loss at epoch 1"
    with np.errstate(all="ignore"):
        out = np.log10(ratio)
    out[runs["diverged"].to_numpy(bool)] = np.inf
    return out, label


def _first_losses(res: Any, run_ids: pd.Series) -> np.ndarray:
    """The loss at epoch 1 of each run, one loss file at a time."""
    ids, losses = [np.empty(0, np.int64)], [np.empty(0)]
    for f in res._files(store.LOSSES):
        try:
            table = pq.read_table(f, columns=["run_id", "loss"], filters=[("epoch", "==", 1)])
        except (OSError, pa.ArrowException) as exc:
            raise RunnerError(f"unreadable Parquet file ({exc})", file=str(f)) from None
        ids.append(table["run_id"].to_numpy().astype(np.int64))
        losses.append(table["loss"].to_numpy().astype(np.float64))
    found, loss = np.concatenate(ids), np.concatenate(losses)
    order = np.argsort(found, kind="stable")
    found, loss = found[order], loss[order]
    want = run_ids.to_numpy(np.int64)
    at = np.minimum(np.searchsorted(found, want), max(len(found) - 1, 0))
    missing = want[(len(found) == 0) | (found[at] != want)] if len(found) else want
    if len(missing):
        raise RunnerError(
            f"no loss at epoch 1 for {len(missing)} runs (first: run {missing[0]}); "
            "a map needs the losses at epoch 1 or the columns first_loss and tail_mean",
            file=str(res.folder / store.LOSSES),
        )
    return loss[at]


def _check_axis(res: Any, name: str, role: str) -> None:
    valid = numeric_axes(res)
    if name not in valid:
        raise RunnerError(
            f"{name!r} is no numeric grid axis of this sweep; "
            f"choose from {', '.join(valid) or 'none (the grid has no numeric axis)'}",
            file=str(res.folder),
            key=role,
        )


def _medians(pixel: np.ndarray, v: np.ndarray, n: int) -> np.ndarray:
    """The median of ``v`` per pixel index, as pandas takes it: NaN left out, +inf kept
    (the mean of the two middle values of an even count)."""
    out = np.full(n, np.nan)
    keep = ~np.isnan(v)
    pixel, v = pixel[keep], v[keep]
    order = np.lexsort((v, pixel))
    pixel, v = pixel[order], v[order]
    uniq, start, count = np.unique(pixel, return_index=True, return_counts=True)
    lo, hi = start + (count - 1) // 2, start + count // 2
    with np.errstate(invalid="ignore", over="ignore"):
        out[uniq] = (v[lo] + v[hi]) / 2
    return out


def make_map(res: Any, x: str, y: str, value: str | None = None) -> Map:
    """The map of ``value`` (default: the log loss ratio) over the axes ``x`` and ``y``."""
    _check_axis(res, x, "x")
    _check_axis(res, y, "y")
    if x == y:
        raise RunnerError(f"x and y are both {x!r}; a map needs two axes", key="y")
    runs = res.runs
    value = value or RATIO
    ratio, words = log_ratio(res)
    label = f"log10({words})"
    if value == RATIO:
        v = ratio
    elif value in runs.columns and pd.api.types.is_numeric_dtype(runs[value]):
        v, label = runs[value].to_numpy(dtype=float, na_value=np.nan), value
    else:
        numeric = [c for c in runs.columns if pd.api.types.is_numeric_dtype(runs[c])]
        raise RunnerError(
            f"unknown value {value!r}; choose {RATIO} or a numeric runs column: "
            f"{', '.join(numeric)}",
            key="value",
        )
    xs, xi = np.unique(runs[x].to_numpy(float), return_inverse=True)
    ys, yi = np.unique(runs[y].to_numpy(float), return_inverse=True)
    n = len(xs) * len(ys)
    if n > MAX_POINTS:
        raise RunnerError(
            f"{x} has {len(xs):,} values and {y} {len(ys):,}: {n:,} points, over the "
            f"{MAX_POINTS:,} a map holds (sampled values are all distinct: map grid axes)",
            file=str(res.folder),
        )
    pixel = yi.astype(np.int64) * len(xs) + xi
    shape = (len(ys), len(xs))
    med_ratio = _medians(pixel, ratio, n)
    values = med_ratio if value == RATIO else _medians(pixel, v, n)
    return Map(
        x=x,
        y=y,
        xs=xs,
        ys=ys,
        value=value,
        label=label,
        ratio=words,
        array=values.reshape(shape),
        converged=(med_ratio < 0).reshape(shape),
        diverged=np.isposinf(med_ratio).reshape(shape),
        runs=np.bincount(pixel, minlength=n).reshape(shape),
    )
