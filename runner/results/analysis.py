"""Reading a results folder: runs, filtered losses, summaries per grid point, loss curves,
maps (``Results.map``, ``boundary_dimension``).

Memory stays bounded by one chunk file, never by the sweep: ``summary`` and
``best`` use the ``runs`` table (one row per run), and ``curves`` reads the loss
files one at a time, at most about ``max_points`` epochs per run.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from runner.errors import RunnerError
from runner.plan import params
from runner.results import growth, store
from runner.results import weights as stored
from runner.results.boundary import BoundaryDimension, boundary_dimension
from runner.results.store import axis_columns

if TYPE_CHECKING:
    from runner.plan.chunks import Plan
    from runner.results.maps import Map

__all__ = ["BoundaryDimension", "Results", "boundary_dimension", "load", "number"]

SUMMARY_COLUMNS = (
    "runs",  # runs finished at this grid point
    "diverged_share",  # share of those runs that diverged
    "final_loss_median",  # final loss over the runs that did not diverge
    "final_loss_q25",
    "final_loss_q75",
    "best_loss",  # smallest loss any run reached (min of min_loss)
    "converged_share",  # share of runs that stopped below stop_below
    "converged_epoch_median",  # median epoch of convergence over those runs
)
BEST_KEYS = ("final_loss", "min_loss")
HUGE = 1e300  # quantiles run on finite numbers: +inf is stood in for by 1e308
MISSING = "-"  # how a missing value reads in summaries, plots and the report


def number(v: Any, digits: int = 3) -> str:
    """One number format for summaries, plots and the report: 3 significant digits
    (``3.16e-05``, ``0.457``, ``1.3e+11``), whole numbers below 1e6 as integers,
    ``MISSING`` for NaN, None and NA; anything else as ``str``."""
    if v is None or v is pd.NA or v is pd.NaT:
        return MISSING
    if isinstance(v, bool | np.bool_):
        return str(bool(v))
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        v = float(v)
        if np.isnan(v):
            return MISSING
        if v.is_integer() and abs(v) < 1e6:
            return str(int(v))
        return f"{v:.{digits}g}"
    return str(v)


def _suggest(name: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"choose from {', '.join(valid)}"
    return f"unknown column {name!r}; {hint}"


def _names(value: str | list[str] | tuple[str, ...] | None) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return list(value)


@dataclass
class Results:
    """A results folder (layout: docs/results.md), opened by :func:`load`."""

    folder: Path
    meta: dict[str, Any]  # sweep.json

    # ----- what the sweep is -----
    @property
    def spec(self) -> dict[str, Any]:
        """The resolved spec (sweep.json "spec")."""
        return self.meta["spec"]

    @property
    def name(self) -> str:
        return self.spec["name"]

    @property
    def axes(self) -> list[str]:
        """Grid axes in run order (seed last, varying fastest)."""
        return list(self.spec.get("axis_order", []))

    @property
    def point_axes(self) -> list[str]:
        """The axes that name a grid point: every grid axis but ``seed``."""
        return [a for a in self.axes if a != "seed"]

    def _axis_columns(self, axes: list[str]) -> list[str]:
        """Columns of ``axes``; of ``init``, those of the sweep's form (the runs table's)."""
        init = {c for c, _ in params.INIT_COLUMNS} - set(self.runs.columns)
        return [c for c in axis_columns(axes) if c not in init]

    def axis_size(self, axis: str) -> int:
        """Number of distinct values of an axis among the finished runs (1 if not an axis)."""
        if axis not in self.axes:
            return 1
        return len(self.runs[self._axis_columns([axis])].drop_duplicates())

    # ----- stored weights ([record] weights = "final") -----
    @cached_property
    def _plan(self) -> Plan:
        return growth.plan_of(self.folder, store.layer_files(self.folder))

    def weights(self, run_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Run ``run_id``'s final weights (Wh, Wz), float64: shapes (inputs, hidden) and
        (hidden, outputs), each with its bias row last where the run has a bias."""
        return stored.read_weights(self.folder, self.spec, self._plan, run_id)

    def predict(self, run_id: int, X: Any) -> np.ndarray:
        """Run ``run_id``'s network's outputs (rows, outputs) on the raw rows ``X`` (rows,
        inputs): ``[data] standardize`` applied to X and inverted on the outputs; the
        forward pass is the kernel's, exactly, in the run's dtype (docs/results.md)."""
        Wh, Wz = self.weights(run_id)
        model = stored.run_model(self.folder, self.spec, self._plan, run_id)
        scaling = stored.run_scaling(self.folder, self.spec, self._plan, run_id)
        return stored.predict(X, Wh, Wz, model, scaling, str(self.folder))

    # ----- tables -----
    def _files(self, sub: str) -> list[Path]:
        """Files of the done chunks (those with a runs file), in chunk (= run_id) order."""
        return [
            self.folder / sub / store.chunk_name(c) for c in sorted(store.done_chunks(self.folder))
        ]

    @cached_property
    def runs(self) -> pd.DataFrame:
        """One row per finished run (the ``runs`` dataset), in run_id order."""
        files = self._files(store.RUNS)
        if not files:
            raise RunnerError("no finished runs yet (run the sweep first)", file=str(self.folder))
        tables = []
        for f in files:
            try:
                tables.append(pq.read_table(f))
            except (OSError, pa.ArrowException) as exc:
                raise RunnerError(f"unreadable Parquet file ({exc})", file=str(f)) from None
        df = pa.concat_tables(tables, promote_options="permissive").to_pandas()
        return df.sort_values("run_id", ignore_index=True)

    def losses(
        self, columns: list[str] | None = None, filters: list[Any] | None = None
    ) -> pd.DataFrame:
        """The tidy loss table, or the part of it that ``filters`` selects.

        ``filters`` take pyarrow's / pandas' list-of-tuples form, e.g.
        ``[("alpha", "==", 0.1), ("epoch", "<=", 100)]``; they are pushed down to
        the Parquet reader, so only matching row groups and rows are loaded.
        """
        files = self._files(store.LOSSES)
        if not files:
            raise RunnerError("no finished runs yet (run the sweep first)", file=str(self.folder))
        dataset = ds.dataset([str(f) for f in files], format="parquet")
        valid = dataset.schema.names
        for col in list(columns or []) + _filter_columns(filters):
            if col not in valid:
                raise RunnerError(_suggest(col, valid), file=str(self.folder / store.LOSSES))
        try:
            expr = pq.filters_to_expression(filters) if filters else None
            table = dataset.to_table(columns=columns, filter=expr)
        except (TypeError, ValueError, pa.ArrowException) as exc:
            raise RunnerError(f"bad filters {filters!r} ({exc})", key="filters") from None
        return table.to_pandas()

    # ----- summaries -----
    def group_columns(self, by: str | list[str] | None) -> list[str]:
        """Validated columns for ``by`` (default: the grid axes other than seed)."""
        names = _names(by)
        if names is None:
            return self._axis_columns(self.point_axes)
        valid = [c for c in params.COLUMNS if c in self.runs.columns]
        out: list[str] = []
        for n in names:
            cols = self._axis_columns([n])
            for c in cols:
                if c not in valid:
                    raise RunnerError(
                        _suggest(n, [*valid, "init"]), file=str(self.folder), key="by"
                    )
            out.extend(c for c in cols if c not in out)
        return out

    def summary(self, by: str | list[str] | None = None, sort: str | None = None) -> pd.DataFrame:
        """One row per grid point (or per value of ``by``), aggregated over seeds.

        Columns: the ``by`` columns, then ``SUMMARY_COLUMNS``. Final-loss
        quantiles cover the runs that did not diverge (NaN if all diverged);
        ``diverged_share`` says how many did. ``sort`` orders by one column,
        ascending (NaN last).
        """
        cols = self.group_columns(by)
        runs = self.runs
        df = pd.DataFrame({c: runs[c] for c in cols})
        df["_all"] = 0  # a key for the single group when there are no columns
        df["diverged"] = runs["diverged"].astype(float)
        df["final"] = runs["final_loss"].where(~runs["diverged"])
        df["best"] = runs["min_loss"]
        df["conv"] = runs["converged_epoch"].notna().astype(float)
        df["conv_epoch"] = runs["converged_epoch"].astype(float)
        g = df.groupby(cols or ["_all"], observed=True, dropna=False, sort=True)
        out = pd.DataFrame(
            {
                "runs": g.size(),
                "diverged_share": g["diverged"].mean(),
                "final_loss_median": g["final"].median(),
                "final_loss_q25": g["final"].quantile(0.25),
                "final_loss_q75": g["final"].quantile(0.75),
                "best_loss": g["best"].min(),
                "converged_share": g["conv"].mean(),
                "converged_epoch_median": g["conv_epoch"].median(),
            }
        )
        out = out.reset_index().drop(columns="_all", errors="ignore")
        if sort is not None:
            if sort not in out.columns:
                raise RunnerError(
                    _suggest(sort, list(out.columns)), file=str(self.folder), key="sort"
                )
            out = out.sort_values(sort, na_position="last", kind="stable", ignore_index=True)
        return out

    def best(self, n: int = 10, key: str = "final_loss") -> pd.DataFrame:
        """The ``n`` best runs by ``key`` ("final_loss": the network training ends
        with, the default; or "min_loss"), smallest first; diverged runs last."""
        if key not in BEST_KEYS:
            raise RunnerError(f"must be one of {', '.join(BEST_KEYS)}, got {key!r}", key="key")
        runs = self.runs
        order = runs.assign(_div=runs["diverged"]).sort_values(
            ["_div", key], na_position="last", kind="stable"
        )
        return order.drop(columns="_div").head(n).reset_index(drop=True)

    # ----- maps (docs/trainability.md) -----
    def map(self, x: str, y: str, value: str | None = None) -> Map:
        """The 2-D map over the numeric axes ``x`` and ``y``: per pixel, the median of
        ``value`` over its runs (seeds and any other axis). ``value``: a numeric runs
        column, or by default the log10 loss ratio, +inf for a run that diverged."""
        from runner.results.maps import make_map

        return make_map(self, x, y, value)

    # ----- loss curves (bounded memory) -----
    def sample_epochs(
        self, max_points: int = 200, run_epochs: list[int] | None = None
    ) -> np.ndarray:
        """Recorded epochs to draw curves at: all if few, else about ``max_points`` log-spaced.

        ``run_epochs``: the runs' epoch limits (default: from the latest spec).
        """
        grid_epochs = (
            run_epochs or self.spec["grid"].get("epochs") or [self.spec["train"]["epochs"]]
        )
        every = int(self.spec["record"]["every"])
        if every == 0:
            raise RunnerError("keeps no per-epoch losses ([record] every = 0): no curves to "
                              "draw; the runs table has each run's statistics",
                              file=str(self.folder))  # fmt: skip
        top = max(grid_epochs)
        if top // every + 1 <= max_points:
            picks = np.arange(every, top + 1, every)
        else:
            picks = np.round(np.geomspace(1, top, max_points) / every) * every
        picks = np.concatenate([[1], picks, grid_epochs]).astype(np.int64)
        return np.unique(picks[(picks >= 1) & (picks <= top)]).astype(np.int32)

    def curves(self, max_points: int = 200) -> pd.DataFrame:
        """Loss per grid point and sampled epoch over seeds: ``runs``, ``diverged_share``,
        ``median``, ``q25``, ``q75``.

        The quantiles (and ``runs``) cover the runs that did not diverge; the
        point's share of runs that diverged stands beside them. A run that
        converged early keeps its final loss. Reads one loss file at a time and
        keeps only the grid points still open: a point is aggregated as soon as
        all its runs are read (its runs are contiguous unless the sweep grew).
        """
        stats = self._run_stats()
        epochs = self.sample_epochs(max_points, sorted(int(e) for e in stats["epochs"].unique()))
        point_of, first = self._points()
        remaining = np.bincount(point_of.to_numpy(), minlength=len(first))
        parts: list[pd.DataFrame] = []
        open_ids = np.empty(0, np.int64)
        open_mat = np.empty((0, len(epochs)))
        for f in self._files(store.LOSSES):
            table = pq.read_table(
                f, columns=["run_id", "epoch", "loss"], filters=[("epoch", "in", epochs.tolist())]
            )
            ids, mat = _matrix(table, epochs)
            mat = _fill_stopped(mat, stats.loc[ids], epochs)
            np.subtract.at(remaining, point_of.loc[ids].to_numpy(), 1)
            ids, mat = np.concatenate([open_ids, ids]), np.vstack([open_mat, mat])
            point = point_of.loc[ids].to_numpy()
            closed = remaining[point] == 0
            if closed.any():
                order = np.argsort(point[closed], kind="stable")
                parts.append(_aggregate(point[closed][order], mat[closed][order], epochs))
            open_ids, open_mat = ids[~closed], mat[~closed]
        if not parts:
            raise RunnerError("no finished runs yet (run the sweep first)", file=str(self.folder))
        curves = pd.concat(parts, ignore_index=True)
        curves = curves.sort_values(["point", "epoch"], kind="stable", ignore_index=True)
        share = stats["diverged"].groupby(point_of.loc[stats.index].to_numpy()).mean()
        curves.insert(2, "diverged_share", share.loc[curves["point"]].to_numpy())
        # the grid point's axis values, from its first run
        cols = self._axis_columns(self.point_axes)
        values = first.loc[curves["point"].to_numpy()]
        for c in reversed(cols):
            curves.insert(0, c, values[c].to_numpy())
        return curves.drop(columns="point")

    def _points(self) -> tuple[pd.Series, pd.DataFrame]:
        """Each run's grid point (numbered in run_id order) and each point's axis values."""
        runs = self.runs
        cols = self._axis_columns(self.point_axes)
        if not cols:
            point = pd.Series(np.zeros(len(runs), np.int64), index=runs["run_id"])
            return point, pd.DataFrame(index=[0])
        g = runs.groupby(cols, sort=False, dropna=False, observed=True)
        codes = g.ngroup().to_numpy().astype(np.int64)  # in order of first appearance
        point = pd.Series(codes, index=runs["run_id"])
        first = runs[cols].assign(_p=codes).drop_duplicates("_p").set_index("_p").sort_index()
        return point, first

    def _run_stats(self) -> pd.DataFrame:
        cols = ["run_id", "epochs", "epochs_run", "final_loss", "diverged"]
        return self.runs[cols].set_index("run_id")


def _filter_columns(filters: list[Any] | None) -> list[str]:
    """Column names in a list-of-tuples (or list of lists of tuples) filter."""
    out: list[str] = []
    for item in filters or []:
        if isinstance(item, tuple) and item and isinstance(item[0], str):
            out.append(item[0])
        elif isinstance(item, list):
            out.extend(_filter_columns(item))
    return out


def _matrix(table: pa.Table, epochs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows (run_id, epoch, loss) -> sorted run ids and a (runs, epochs) loss matrix."""
    run_id = table["run_id"].to_numpy()
    ids, row = np.unique(run_id, return_inverse=True)
    mat = np.full((len(ids), len(epochs)), np.nan)
    col = np.searchsorted(epochs, table["epoch"].to_numpy())
    loss = table["loss"].to_numpy().astype(np.float64)
    mat[row, col] = np.where(np.isnan(loss), np.inf, loss)  # a NaN loss: diverged
    return ids.astype(np.int64), mat


def _fill_stopped(mat: np.ndarray, stats: pd.DataFrame, epochs: np.ndarray) -> np.ndarray:
    """A diverged run: left out (NaN). A run that converged early: its final loss after."""
    after = epochs[None, :] > stats["epochs_run"].to_numpy()[:, None]
    diverged = stats["diverged"].to_numpy()
    within = epochs[None, :] <= stats["epochs"].to_numpy()[:, None]
    final = np.broadcast_to(stats["final_loss"].to_numpy()[:, None], mat.shape)
    early = after & within
    mat[early] = final[early]
    mat[diverged] = np.nan
    return mat


def _aggregate(points: np.ndarray, mat: np.ndarray, epochs: np.ndarray) -> pd.DataFrame:
    """Quantiles over the runs of each grid point (rows of ``mat`` grouped by ``points``)."""
    if len(points) == 0:
        return pd.DataFrame()
    uniq, start = np.unique(points, return_index=True)
    stops = [*start[1:], len(points)]
    frames = []
    for p, a, b in zip(uniq, start, stops, strict=True):
        block = np.where(np.isinf(mat[a:b]), 1e308, mat[a:b])
        count = (~np.isnan(block)).sum(0)
        with np.errstate(all="ignore"):
            q = np.full((3, len(epochs)), np.nan)
            some = count > 0
            if some.any():
                q[:, some] = np.nanquantile(block[:, some], [0.25, 0.5, 0.75], axis=0)
        q[q > HUGE] = np.inf
        frames.append(
            pd.DataFrame(
                {
                    "point": p,
                    "epoch": epochs,
                    "runs": count,
                    "median": q[1],
                    "q25": q[0],
                    "q75": q[2],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def load(folder: str | Path) -> Results:
    """Open a results folder (``results/<name>``): spec, runs, losses, summaries."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RunnerError("no such results folder", file=str(folder))
    return Results(folder, store.read_meta(folder))
