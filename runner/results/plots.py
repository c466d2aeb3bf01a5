"""PNG figures of a sweep: loss curves, a heatmap of final loss, a map of divergence.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot): no GUI
backend, no global state, safe in threads and notebooks.

Defaults follow the grid: the varying axes other than seed are taken in run
order; the last one (usually alpha) is the colour (curves) or the x axis
(heatmaps), the one before it the facet columns (curves) or the y axis
(heatmaps), and any others the facet rows.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import BoundaryNorm, ListedColormap, LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from runner.errors import RunnerError
from runner.results.analysis import Results, load, number
from runner.results.mapplot import map_figure
from runner.results.maps import default_axes

FIGURES = ("curves", "final_loss", "divergence", "map")
MAX_ANNOTATED = 150  # heatmap cells beyond this are not labelled with their value
CAP = 1e30  # colour scales stop here: larger losses have blown up
CATEGORICAL = 10  # up to this many colour levels: distinct colours and a legend; beyond: a bar
DECADES = 1  # a loss range spanning this many decades (or more) gets a log axis
NUMBER = FuncFormatter(lambda v, _: number(v))  # tick labels in the one number format
PERCENT = FuncFormatter(lambda v, _: f"{100 * v:.0f}%")  # shares, as the cells show them


# ----- axes, labels and facets -----
def _fmt(v: Any, digits: int = 3) -> str:
    if isinstance(v, tuple):
        return "[" + ", ".join(_fmt(x, digits) for x in v) + "]"
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "none"
    return number(v, digits)


def _sort_key(v: Any) -> tuple:
    if isinstance(v, tuple | int | float | np.number) and not (
        isinstance(v, float) and math.isnan(v)
    ):
        return (0, v)
    return (1, str(v))


def labels(df: pd.DataFrame, axis: str) -> tuple[pd.Series, list[str]]:
    """Each row's label on ``axis`` and the labels in value order (numbers ascending)."""
    if axis == "init":
        pair = ("init_lo", "init_hi") if "init_lo" in df else ("init_mean", "init_std")
        raw = pd.Series(list(zip(df[pair[0]], df[pair[1]], strict=True)), index=df.index)
    else:
        raw = df[axis].astype(object)
    values = pd.unique(raw.to_numpy())
    for digits in (3, 6, 17):  # more digits only where 3 would merge two values
        table = {v: _fmt(v, digits) for v in values}
        if len(set(table.values())) == len(table):
            break
    levels = [table[v] for v in sorted(table, key=_sort_key)]
    return raw.map(table), list(dict.fromkeys(levels))


@dataclass
class Layout:
    """Which axis plays which role; any of them may be None (fewer axes)."""

    colour: str | None
    column: str | None
    rows: list[str]

    @classmethod
    def of(cls, res: Results) -> Layout:
        varying = [a for a in res.point_axes if res.axis_size(a) > 1]
        colour = varying[-1] if varying else None
        column = varying[-2] if len(varying) > 1 else None
        return cls(colour, column, varying[:-2])

    @property
    def axes(self) -> list[str]:
        return [*self.rows, *(a for a in (self.column, self.colour) if a)]


def _roles(df: pd.DataFrame, layout: Layout) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Add label columns _colour, _column, _row; return their levels."""
    df = df.copy()
    levels: dict[str, list[str]] = {}
    for role, axis in (("_colour", layout.colour), ("_column", layout.column)):
        if axis is None:
            df[role], levels[role] = "", [""]
        else:
            df[role], levels[role] = labels(df, axis)
    if layout.rows:
        parts = [labels(df, a) for a in layout.rows]
        df["_row"] = [
            ", ".join(f"{a} = {v}" for a, v in zip(layout.rows, vals, strict=True))
            for vals in zip(*(p[0] for p in parts), strict=True)
        ]
        combos = pd.MultiIndex.from_product([p[1] for p in parts])
        present = set(df["_row"])
        levels["_row"] = [
            r
            for r in (
                ", ".join(f"{a} = {v}" for a, v in zip(layout.rows, c, strict=True)) for c in combos
            )
            if r in present
        ]
    else:
        df["_row"], levels["_row"] = "", [""]
    return df, levels


def _colours(n: int) -> list:
    """Distinct colours for up to CATEGORICAL levels; beyond, steps along viridis."""
    if n <= CATEGORICAL:
        return [colormaps["tab10"](i) for i in range(n)]
    return [colormaps["viridis"](x) for x in np.linspace(0.0, 0.9, n)]


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


# ----- figures -----
def curves_figure(res: Results, layout: Layout | None = None, max_points: int = 200) -> Figure:
    """Median loss per epoch over the runs that did not diverge, 25-75% band; facets and
    colours by axis; an x at the top edge where a run diverged, at its epoch."""
    layout = layout or Layout.of(res)
    df, levels = _roles(res.curves(max_points), layout)
    runs, _ = _roles(res.runs, layout)
    nrows, ncols = len(levels["_row"]), len(levels["_column"])
    many = len(levels["_colour"]) > CATEGORICAL  # a colour bar beside the legend
    fig = _figure(min(3.8 + 3.6 * ncols + 1.2 * many, 60), min(1.6 + 3.0 * nrows, 60))
    grid = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False)
    colours = dict(zip(levels["_colour"], _colours(len(levels["_colour"])), strict=True))
    scale, ylim = y_axis(df)
    top = int(df["epoch"].max())
    for i, row in enumerate(levels["_row"]):
        for j, col in enumerate(levels["_column"]):
            ax = grid[i][j]
            here = df[(df["_row"] == row) & (df["_column"] == col)]
            mine = runs[(runs["_row"] == row) & (runs["_column"] == col)]
            _draw_panel(ax, here, mine, colours, scale == "log")
            ax.set_yscale(scale)
            ax.set_ylim(*ylim)
            if top > 100:
                ax.set_xscale("log")
            if scale == "log" and ylim[1] < 1000 * ylim[0]:  # under 3 decades: 1, 2, 5 ticks
                ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            for axis in (ax.xaxis, ax.yaxis):
                axis.set_major_formatter(NUMBER)
                axis.set_minor_formatter(NullFormatter())
            ax.grid(True, which="major", alpha=0.3)
            title = f"{layout.column} = {col}" if layout.column else ""
            ax.set_title("\n".join(t for t in (row, title) if t), fontsize=10)
            if i == nrows - 1:
                ax.set_xlabel("epoch")
            if j == 0:
                ax.set_ylabel("loss (MSE)")
    seeds, diverged = res.axis_size("seed"), int(runs["diverged"].sum())
    lines = [f"{res.name}: loss per epoch",
             f"median and 25–75% band of the runs that did not diverge ({seeds} "
             f"seed{'s' * (seeds > 1)} a point)"]  # fmt: skip
    if diverged:
        lines.append(f"{diverged} of {len(runs)} runs diverged: × at the epoch each did")
    fig.suptitle("\n".join(lines), fontsize=11)
    _colour_key(fig, grid, layout, levels["_colour"], colours, runs)
    return fig


def _draw_panel(ax, here: pd.DataFrame, mine: pd.DataFrame, colours: dict[str, Any],
                log: bool) -> None:  # fmt: skip
    """One panel: a median line and a band per colour level; an x per diverged run."""
    shade = 0.2 if len(colours) <= 6 else 0.07  # many bands: fainter, so lines stay legible
    for level, colour in colours.items():
        c = here[here["_colour"] == level]
        if not c.empty:
            x = c["epoch"].to_numpy()
            ax.plot(x, _drawable(c["median"], log), color=colour, lw=1.4)
            low, high = _drawable(c["q25"], log), _drawable(c["q75"], log)
            ax.fill_between(x, low, high, color=colour, alpha=shade, lw=0)
        gone = mine.loc[(mine["_colour"] == level) & mine["diverged"], "diverged_epoch"]
        if len(gone):
            epochs = gone.to_numpy(dtype=float)
            at = ax.get_xaxis_transform()  # x in epochs, y from 0 (bottom) to 1 (top)
            ax.plot(epochs, np.full(len(epochs), 0.97), "x", color=colour, ms=7, mew=1.8,
                    transform=at, clip_on=False, label="_diverged")  # fmt: skip


def _colour_key(fig: Figure, grid, layout: Layout, levels: list[str], colours: dict[str, Any],
                runs: pd.DataFrame) -> None:  # fmt: skip
    """A legend outside the panels (up to CATEGORICAL levels), or a labelled colour bar."""
    handles, names = [], []
    many = len(levels) > CATEGORICAL
    for level, colour in colours.items():
        if many:
            break
        div = runs.loc[runs["_colour"] == level, "diverged"]
        name = f"{layout.colour} = {level}" if layout.colour else "all runs"
        if div.any():
            name += f" ({int(div.sum())} of {len(div)} diverged)"
        handles.append(Line2D([], [], color=colour, lw=1.4))
        names.append(name)
    if runs["diverged"].any():
        handles.append(Line2D([], [], color="0.3", marker="x", ls="", ms=7, mew=1.8))
        names.append("a run diverged (at its epoch)")
    if many:
        cmap = ListedColormap(list(colours.values()))
        norm = BoundaryNorm(np.arange(len(levels) + 1) - 0.5, len(levels))
        step = max(1, math.ceil(len(levels) / 12))
        ticks = list(range(0, len(levels), step))
        bar = fig.colorbar(ScalarMappable(norm, cmap), ax=list(np.ravel(grid)), ticks=ticks,
                           label=layout.colour or "", shrink=0.9)  # fmt: skip
        bar.ax.set_yticklabels([levels[t] for t in ticks])
    if handles:
        fig.legend(handles, names, loc="outside right center", fontsize=9,
                   ncols=max(1, math.ceil(len(handles) / 20)))  # fmt: skip


def y_axis(df: pd.DataFrame) -> tuple[str, tuple[float, float]]:
    """Scale and limits of the loss axis: the 25-75% bands of the runs that did not diverge
    (``curves`` holds no other), at most 1000x the largest median of the first epoch (runs
    that blow up without diverging), log when that range spans DECADES decades."""
    low = df["q25"].to_numpy(dtype=float)
    high = df["q75"].to_numpy(dtype=float)
    start = df.loc[df["epoch"] == df["epoch"].min(), "median"].to_numpy(dtype=float)
    low, high, start = (v[np.isfinite(v)] for v in (low, high, start))
    if len(low) == 0 or len(high) == 0:
        return "log", (1e-3, 1.0)
    lo, hi = float(low.min()), float(high.max())
    if len(start) and start.max() > 0:
        hi = min(hi, 1e3 * float(start.max()))
    hi = max(hi, lo)
    positive = low[low > 0]
    if len(positive) and hi / positive.min() >= 10**DECADES:
        return "log", (float(positive.min()) / 1.5, hi * 1.5)
    pad = 0.05 * (hi - lo) or 0.05 * abs(hi) or 1.0
    return "linear", (max(lo - pad, 0.0) if lo >= 0 else lo - pad, hi + pad)


def _drawable(s: pd.Series, log: bool = True) -> np.ndarray:
    v = s.to_numpy(dtype=np.float64, copy=True)
    v[~np.isfinite(v) | ((v <= 0) if log else False)] = np.nan  # no inf; no zero on a log axis
    return v


def heatmap_figure(res: Results, what: str, layout: Layout | None = None) -> Figure:
    """Per grid point: ``what`` = "final_loss" (median, log colours) or "divergence" (share)."""
    layout = layout or Layout.of(res)
    summary = res.summary(by=layout.axes or None)
    df, levels = _roles(summary, layout)
    xs, ys, rows = levels["_colour"], levels["_column"], levels["_row"]
    column = "final_loss_median" if what == "final_loss" else "diverged_share"
    if what == "final_loss":
        finite = df[column][np.isfinite(df[column]) & (df[column] > 0)]
        top = _colour_top(finite.to_numpy()) if len(finite) else 1.0
        low = min(finite.min(), top / 10) if len(finite) and finite.min() >= top else None
        norm = LogNorm(low or finite.min(), top) if len(finite) else Normalize(0, 1)
        extend = "max" if len(finite) and finite.max() > top else "neither"
        cmap = colormaps["viridis"].with_extremes(bad="0.85", over="tab:red")
        bar = "median final loss (runs that did not diverge)"
    else:
        norm, cmap, bar = Normalize(0, 1), colormaps["Reds"], "share of runs diverged"
        extend = "neither"
    width = min(2.5 + 0.9 * len(xs), 40)
    fig = _figure(width, min(1.5 + (0.6 * len(ys) + 0.8) * len(rows), 60))
    axs = fig.subplots(len(rows), 1, squeeze=False)[:, 0]
    annotate = len(xs) * len(ys) <= MAX_ANNOTATED
    image = None
    for ax, row in zip(axs, rows, strict=True):
        here = df[df["_row"] == row]
        mat = np.full((len(ys), len(xs)), np.nan)
        mat[[ys.index(y) for y in here["_column"]], [xs.index(x) for x in here["_colour"]]] = here[
            column
        ].to_numpy()
        image = ax.imshow(np.ma.masked_invalid(mat), aspect="auto", cmap=cmap, norm=norm)
        ax.set_xticks(range(len(xs)), xs, rotation=45 if len(xs) > 8 else 0)
        ax.set_yticks(range(len(ys)), ys)
        ax.set_xlabel(layout.colour or "")
        ax.set_ylabel(layout.column or "")
        if row:
            ax.set_title(row, fontsize=10)
        if annotate:
            for (y, x), v in np.ndenumerate(mat):
                _annotate(ax, x, y, v, what, norm)
    name = "median final loss" if what == "final_loss" else "share of runs diverged"
    fig.suptitle(f"{res.name}: {name} per grid point", fontsize=12)
    if image is not None:
        key = fig.colorbar(image, ax=list(axs), label=bar, shrink=0.9, extend=extend)
        if isinstance(norm, LogNorm) and norm.vmax < 100 * norm.vmin:  # under 2 decades
            key.ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        key.ax.yaxis.set_major_formatter(NUMBER if what == "final_loss" else PERCENT)
        key.ax.yaxis.set_minor_formatter(NullFormatter())
    return fig


def _colour_top(values: np.ndarray) -> float:
    """Top of the colour scale: the cells below the first gap of over 10 decades (and
    1e30). Cells above it (runs blown up near overflow, yet finite) get the "over" colour."""
    logs = np.sort(np.log10(values))
    gaps = np.flatnonzero(np.diff(logs) > 10)
    top = logs[gaps[0]] if len(gaps) else logs[-1]
    return float(10 ** min(top, math.log10(CAP)))


def _annotate(ax, x: int, y: int, v: float, what: str, norm) -> None:
    if np.isnan(v):
        text, shade = ("all div." if what == "final_loss" else ""), 1.0
    else:
        text = number(v) if what == "final_loss" else f"{100 * v:.0f}%"
        shade = float(norm(v))
    # viridis is dark at low values (and red above its range), Reds dark at high ones
    dark = (shade < 0.5 or shade > 1) if what == "final_loss" else shade > 0.5
    ax.text(x, y, text, ha="center", va="center", fontsize=8, color="white" if dark else "black")


def figures(res: Results) -> dict[str, Figure]:
    """All figures by name (see FIGURES); heatmaps only when the grid has an axis, the
    map only when it has two numeric axes that vary."""
    layout = Layout.of(res)
    out = {}
    if int(res.spec["record"]["every"]) != 0:  # else no losses were kept
        out["curves"] = curves_figure(res, layout)
    if layout.colour is not None:
        out["final_loss"] = heatmap_figure(res, "final_loss", layout)
        out["divergence"] = heatmap_figure(res, "divergence", layout)
    if default_axes(res) is not None:
        out["map"] = map_figure(res)
    return out


def png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def plot(
    folder: str | Path, out: str | Path | None = None, map_axes: tuple[str, str] | None = None
) -> list[Path]:
    """Write the figures of a results folder as PNG files (default: FOLDER/plots/); with
    ``map_axes`` = (x, y), only the map of those axes (map.png)."""
    res = load(folder)
    drawn = {"map": map_figure(res, *map_axes)} if map_axes else None
    target = Path(out) if out is not None else res.folder / "plots"
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunnerError(
            f"cannot create the plot folder ({exc.strerror})", file=str(target)
        ) from None
    paths = []
    for name, fig in (drawn or figures(res)).items():
        path = target / f"{name}.png"
        fig.savefig(path)
        paths.append(path)
    return paths
