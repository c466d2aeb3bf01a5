"""The figure of a trainability map (runner.results.maps): one pixel per grid point.

Converged points are drawn on a blue ramp by their value, the others on a red ramp by
the same value, with the points whose median run diverged at its end (the colour bar's
triangle). Axes whose values are log-spaced are drawn on a log scale.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Colormap, ListedColormap, LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.image import NonUniformImage
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator

from runner.errors import RunnerError
from runner.results.analysis import number
from runner.results.maps import RATIO, Map, default_axes, numeric_axes

CONVERGED = ListedColormap(colormaps["Blues"](np.linspace(1.0, 0.3, 256)), "converged")
OTHER = ListedColormap(colormaps["Reds"](np.linspace(0.2, 0.75, 256)), "other").with_extremes(
    over=(0.25, 0.0, 0.05, 1.0)  # the ramp's end: diverged
)
MISSING_COLOUR = (0.88, 0.88, 0.88, 1.0)  # no finished run, or no value
TICKED = 12  # up to this many values on an axis: a tick at each
MIN_SIDE = 16  # the boundary dimension is shown for maps at least this wide and tall


def log_spaced(values: np.ndarray) -> bool:
    """Positive values whose steps are more even on a log scale than on a linear one
    (two values: a ratio of 10 or more)."""
    v = np.unique(np.asarray(values, dtype=float))
    if len(v) < 2 or v[0] <= 0:
        return False
    if len(v) == 2:
        return bool(v[1] / v[0] >= 10)

    def spread(steps: np.ndarray) -> float:
        return float(np.std(steps) / np.mean(steps))

    return spread(np.diff(np.log(v))) < spread(np.diff(v))


def _edges(c: np.ndarray) -> np.ndarray:
    """Pixel edges around centres ``c``: midpoints, and half a step beyond each end."""
    if len(c) == 1:
        return np.array([c[0] - 0.5, c[0] + 0.5])
    mid = (c[:-1] + c[1:]) / 2
    return np.concatenate([[2 * c[0] - mid[0]], mid, [2 * c[-1] - mid[-1]]])


def _axis(ax_axis, values: np.ndarray, log: bool) -> tuple[np.ndarray, np.ndarray]:
    """Centres and edges in drawing coordinates (log10 on a log axis), ticks, labels."""
    c = np.log10(values) if log else values.astype(float)
    edges = _edges(c)
    ax_axis.set_major_formatter(FuncFormatter(lambda v, _: number(10**v if log else v)))
    if len(c) <= TICKED:
        ax_axis.set_major_locator(FixedLocator(c))
    elif log:
        lo, hi = np.floor(edges[0]), np.ceil(edges[-1])
        span = edges[-1] - edges[0]  # decades
        subs = [1.0] if span > 3 else [1.0, 2.0, 5.0] if span > 1.5 else [1.0, 2.0, 3.0, 5.0]
        ticks = [np.log10(s) + k for k in np.arange(lo, hi + 1) for s in subs]
        ax_axis.set_major_locator(FixedLocator([t for t in ticks if edges[0] <= t <= edges[-1]]))
    else:
        ax_axis.set_major_locator(MaxNLocator(8))
    return c, edges


def _norm(values: np.ndarray, top: float | None, ratio: bool) -> Normalize:
    """A colour scale over the finite ``values`` (ending at ``top`` if given); log for
    positive non-ratio values spanning two decades or more."""
    v = values[np.isfinite(values)]
    if len(v) == 0:
        return Normalize(-1.0, 0.0) if top == 0.0 else Normalize(0.0, 1.0)
    lo, hi = float(v.min()), float(v.max()) if top is None else top
    if not ratio and lo > 0 and hi >= 100 * lo:
        return LogNorm(lo, hi)
    return Normalize(lo, hi if hi > lo else lo + 1.0)


def _colours(m: Map) -> tuple[np.ndarray, Normalize, Normalize]:
    """RGBA pixels; the colour scales of converged and other points."""
    ratio = m.value == RATIO
    conv = m.converged & ~np.isnan(m.array)
    other = ~m.converged & ~m.diverged & np.isfinite(m.array)
    good = _norm(m.array[conv], 0.0 if ratio else None, ratio)
    bad = _norm(m.array[other], None, ratio)
    if ratio and isinstance(bad, Normalize) and not isinstance(bad, LogNorm):
        bad = Normalize(min(bad.vmin, 0.0), bad.vmax)
    rgba = np.tile(np.array(MISSING_COLOUR), (*m.array.shape, 1))
    rgba[conv] = CONVERGED(good(m.array[conv]))
    rgba[other] = OTHER(np.clip(bad(m.array[other]), 0.0, 1.0))
    rgba[m.diverged] = OTHER.get_over()
    return rgba, good, bad


def _bar(fig: Figure, ax, norm: Normalize, cmap: Colormap, label: str, extend: str) -> None:
    bar = fig.colorbar(ScalarMappable(norm, cmap), ax=ax, label=label, extend=extend,
                       shrink=0.9, pad=0.02)  # fmt: skip
    if not isinstance(norm, LogNorm):
        bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: number(v)))


def map_figure(res: Any, x: str | None = None, y: str | None = None,
               value: str | None = None) -> Figure:  # fmt: skip
    """The map of ``value`` over ``x`` and ``y`` (default: the last two numeric axes
    that vary, x the last) as a figure."""
    if x is None or y is None:
        axes = default_axes(res)
        if axes is None:
            raise RunnerError(
                "a map needs two numeric axes that vary; this grid's numeric axes: "
                f"{', '.join(numeric_axes(res)) or 'none'}",
                file=str(res.folder),
                key="--map",
            )
        x, y = axes
    m = res.map(x, y, value)
    fig = Figure(figsize=(8.6, 6.2), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    rgba, good, bad = _colours(m)
    logx, logy = log_spaced(m.xs), log_spaced(m.ys)
    cx, ex = _axis(ax.xaxis, m.xs, logx)
    cy, ey = _axis(ax.yaxis, m.ys, logy)
    image = NonUniformImage(ax, interpolation="nearest", extent=(ex[0], ex[-1], ey[0], ey[-1]))
    image.set_data(cx, cy, (rgba * 255).astype(np.uint8))
    ax.add_image(image)
    ax.set_xlim(ex[0], ex[-1])
    ax.set_ylim(ey[0], ey[-1])
    ax.set_xlabel(f"{x}{' (log scale)' if logx else ''}")
    ax.set_ylabel(f"{y}{' (log scale)' if logy else ''}")
    what = "converged" if m.value == RATIO else f"converged, by {m.label}"
    _bar(fig, ax, bad, OTHER, f"not converged: {m.label}; ▲ diverged", "max")
    _bar(fig, ax, good, CONVERGED, f"{what}: {m.label}", "neither")
    fig.suptitle(_title(res, m), fontsize=11)
    return fig


def _title(res: Any, m: Map) -> str:
    """What the map shows: the pixel rule, the share converged, the boundary dimension."""
    done = m.runs > 0
    per = sorted(set(m.runs[done].tolist()))
    if not per:
        rule = "no run finished yet"
    elif per == [1]:
        rule = f"a point: its run; converged: {m.ratio} < 1"
    else:
        many = f"{per[0]:,}" if len(per) == 1 else f"{per[0]:,}–{per[-1]:,}"
        rule = f"a point: the median over its {many} runs; converged: median {m.ratio} < 1"
    lines = [
        f"{res.name}: trainability map, {m.array.shape[1]:,} × {m.array.shape[0]:,} points",
        rule,
        f"{int(m.converged.sum()):,} of {int(done.sum()):,} points converged",
    ]
    if min(m.array.shape) >= MIN_SIDE:
        lines[-1] += f"; boundary dimension {number(m.boundary_dimension().dimension)}"
    return "\n".join(lines)
