"""`runner bench`'s figures (the targets the issues set) and its Markdown tables."""

from __future__ import annotations

import copy
import math
import time
from typing import Any

from runner.bench.e2e import size
from runner.bench.peers import MODES, PROBLEMS, mode_name


# ----- the figures the issues ask for -----
def _ns(rows: dict[str, Any], name: str) -> float | None:
    return rows.get(name, {}).get("ns_per_epoch_run")


def _figure(name: str, target: float, value: float | None, unit: str = "x") -> dict[str, Any]:
    holds = None if value is None else bool(value >= target)
    return {
        "figure": name,
        "target": f">= {target:,g}{unit}",
        "value": value,
        "unit": unit,
        "holds": holds,
    }


def figures(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 11's figures on the seed problem, one core, and end to end."""
    rows = result["kernel"].get("seed", {})
    jax32, jax64 = (
        _ns(rows, "JAX jit(vmap(scan)) float32"),
        _ns(rows, "JAX jit(vmap(scan)) float64"),
    )
    notebook = _ns(rows, "notebook NumPy loop")
    mode = {(d, f): _ns(rows, f"runner {mode_name(d, f)}, 1 core") for d, f in MODES}
    fastest = min((v for v in mode.values() if v), default=None)

    def ratio(a, b):
        return a / b if a and b else None

    e2e = result["e2e"]
    default = e2e.get("runner", {}).get("rows_per_s")
    return [
        _figure("fastest mode vs JAX float32", 5, ratio(jax32, fastest)),
        _figure("fastest mode vs the notebook", 1000, ratio(notebook, fastest)),
        _figure("float32 exact vs JAX float32", 3, ratio(jax32, mode["float32", False])),
        _figure("float64 fastmath vs JAX float64", 4, ratio(jax64, mode["float64", True])),
        _figure(
            "float64 exact vs JAX float64 (issue 15: 1.8x before the modes)",
            1.8,
            ratio(jax64, mode["float64", False]),
        ),
        _figure(
            "end to end vs JAX + pyarrow, whole processes",
            3,
            ratio(default, e2e.get("JAX + pyarrow", {}).get("rows_per_s")),
        ),
        _figure("end to end, default mode", 10, default / 1e6 if default else None, "M rows/s"),
    ]


# samples x hidden from which a shape counts as large: 256 x 8 x 64 and larger (issue 23)
LARGE = 256 * 64
PEAK_SHARE = 25  # float64 exact's share of the core's peak there, in percent (issue 23)


def shape_figures(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Issues 15 and 23's figures: runner >= 2x JAX (same dtype) at every shape and mode;
    float64 exact at >= 25% of the core's peak on the large shapes."""
    out = []
    for key, entry in result["shapes"].items():
        n, _, nh = entry["shape"]
        for name, row in entry["rows"].items():
            if name.startswith("runner"):
                out.append(
                    _figure(f"{key}: {name} vs JAX {row.get('dtype', '')}", 2, row.get("x_jax"))
                )
        if n * nh >= LARGE:
            row = entry["rows"].get("runner float64 exact", {})
            frac = row.get("peak_fraction")
            out.append(
                _figure(
                    f"{key}: runner float64 exact, share of peak",
                    PEAK_SHARE,
                    frac * 100 if frac is not None else None,
                    "%",
                )
            )
    return out


def old_figures(result: dict[str, Any], shapes: bool = False) -> list[dict[str, Any]]:
    """The same figures for REV's kernel (``result["against"]``, ``runner bench --against``):
    each runner row on one core with its time scaled by REV's over this one's, measured
    side by side at that (shape, mode); the end-to-end row from REV's own ``runner sweep``
    (``result["e2e_old"]``). A figure REV was not timed for has no value."""
    versus = result["against"]["rows"]
    old = copy.deepcopy(result)

    def scale(row: dict[str, Any], key: str) -> None:
        ratio = versus.get(key, {}).get("ratio")  # new / old
        if "ns_per_epoch_run" not in row:
            return
        if ratio is None:
            row.clear()
            return
        row["ns_per_epoch_run"] /= ratio
        for name in ("x_jax", "peak_fraction"):
            if name in row:
                row[name] *= ratio

    if shapes:
        for key, entry in old["shapes"].items():
            for name, row in entry["rows"].items():
                if name.startswith("runner"):
                    scale(row, f"{key} {name.removeprefix('runner ')}")
        return shape_figures(old)
    for problem, rows in old["kernel"].items():
        key = "x".join(map(str, PROBLEMS[problem]))
        for name, row in rows.items():
            if name.startswith("runner") and name.endswith(", 1 core"):
                scale(row, f"{key} {name.removeprefix('runner ').removesuffix(', 1 core')}")
    old["e2e"] = {**old["e2e"], "runner": result.get("e2e_old", {})}
    return figures(old)


def with_old(figs: list[dict[str, Any]], old: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``figs`` with REV's value and whether it held beside each (the same order)."""
    return [
        {**f, "old": o["value"], "old_holds": o["holds"]} for f, o in zip(figs, old, strict=True)
    ]


# ----- tables -----
def _f(value: float | None, fmt: str = ",.1f", unit: str = "") -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:{fmt}}{unit}"


def _machine_line(result: dict[str, Any]) -> str:
    m = result["machine"]
    return (
        f"Machine: {m['cpu']}, {m['cores']} cores; Python {m['python']}, numba "
        f"{m['numba']}, numpy {m['numpy']}."
    )


def _figure_lines(figs: list[dict[str, Any]]) -> list[str]:
    words = {True: "yes", False: "**no**", None: "not measured"}
    if figs and "old" in figs[0]:
        lines = ["| figure | target | old | holds | new | holds |", "|---|---:|---:|---|---:|---|"]
    else:
        lines = ["| figure | target | measured | holds |", "|---|---:|---:|---|"]
    for fig in figs:
        unit = fig["unit"] if fig["unit"] != "%" else "%"
        value = f"{_f(fig['value'], ',.2f', unit)} | {words[fig['holds']]}"
        if "old" in fig:
            value = f"{_f(fig['old'], ',.2f', unit)} | {words[fig['old_holds']]} | {value}"
        lines.append(f"| {fig['figure']} | {fig['target']} | {value} |")
    return lines


def table(result: dict[str, Any]) -> str:
    """The main result as Markdown tables."""
    lines = [_machine_line(result), "", f"Peak model: {result['core']['note']}.", ""]
    for problem, rows in result["kernel"].items():
        n, ni, nh = PROBLEMS[problem]
        base = _ns(rows, "runner float64 exact, 1 core")
        lines += [
            f"Kernel, {problem} problem ({n} samples, {ni} inputs, hidden {nh}, 1 output; "
            "median; x runner: its time over runner float64 exact's):",
            "",
            "| peer | ns / epoch-run | epoch-runs / s | peak MiB | x runner | x floor |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, row in rows.items():
            if "error" in row:
                lines.append(f"| {name} | {row['error']} | | | | |")
                continue
            ns = row["ns_per_epoch_run"]
            lines.append(
                f"| {name} | {ns:,.1f} | {row['epoch_runs_per_s']:,.0f} | "
                f"{row['peak_rss_mib']:,.0f} | {_f(ns / base if base else None, ',.2f')}"
                f" | {_f(row.get('x_floor'), ',.2f')} |"
            )
        for mode, fl in result["floors"][problem].items():
            lines.append(
                f"| floor, {mode} ({fl['ops']:,} ops, {fl['divisions']} divisions, "
                f"{fl['bound']}-bound) | {fl['floor_ns']:,.1f} | | | | 1.00 |"
            )
        lines.append("")
    epochs, seeds = size(result["quick"])
    lines += [
        f"End to end, whole processes, start-up included (4 alphas x 4 hidden sizes x "
        f"{seeds} seeds x {epochs:,} epochs, float32 losses; the default `make sweep`: "
        "experiments/seed-sweep.toml; median):",
        "",
        "| pipeline | rows | seconds | planned s | actual / plan | rows / s | peak MiB "
        "| planned MiB | x JAX + pyarrow |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in result["e2e"].items():
        if "error" in row:
            lines.append(f"| {name} | {row['error']} | | | | | | | |")
            continue
        est = row.get("estimated_s")
        lines.append(
            f"| {name} | {row['rows']:,} | {row['seconds']:.2f} | {_f(est, ',.2f')} | "
            f"{_f(row['seconds'] / est if est else None, ',.2f')} | "
            f"{row['rows_per_s'] / 1e6:,.1f}M | {row['process_peak_mib']:,.0f} | "
            f"{_f(row.get('estimated_peak_mib'), ',.0f')} | "
            f"{_f(row.get('x_jax'), ',.2f', 'x')} |"
        )
    lines += [
        "",
        "Peak memory of a sweep (runs x 1,000 epochs, all cores):",
        "",
        "| runs | loss rows | seconds | peak MiB |",
        "|---:|---:|---:|---:|",
    ]
    for runs, row in result["memory"].items():
        if "error" in row:
            lines.append(f"| {int(runs):,} | {row['error']} | | |")
            continue
        lines.append(
            f"| {int(runs):,} | {row['rows']:,} | {row['seconds']:.1f} | "
            f"{row['peak_rss_mib']:,.0f} |"
        )
    lines += ["", "Figures (issue 11; seed problem, one core, and end to end):", ""]
    lines += _figure_lines(result["figures"])
    return "\n".join(lines)


def shapes_table(result: dict[str, Any]) -> str:
    """The shapes result as a Markdown table."""
    lines = [
        _machine_line(result),
        "",
        f"Peak model: {result['core']['note']}.",
        "",
        "Kernel by shape, one core (ns per epoch-run, median; x JAX: JAX's time in the "
        "same dtype over runner's; peak: achieved share of the core's peak flop rate "
        "in that dtype; tile: runs per tile):",
        "",
        "| samples | inputs | hidden | peer | ns / epoch-run | x JAX | peak | tile |",
        "|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for entry in result["shapes"].values():
        n, ni, nh = entry["shape"]
        for name, row in entry["rows"].items():
            if "error" in row:
                lines.append(f"| {n:,} | {ni} | {nh} | {name} | {row['error']} | | | |")
                continue
            lines.append(
                f"| {n:,} | {ni} | {nh} | {name} | {row['ns_per_epoch_run']:,.1f} | "
                f"{_f(row.get('x_jax'), ',.2f', 'x')} | "
                f"{_f(row['peak_fraction'] * 100, '.1f', '%')} | "
                f"{row.get('tile', '')} |"
            )
    lines += ["", "Figures (issue 15):", "", *_figure_lines(result["figures"])]
    return "\n".join(lines)


def markdown(result: dict[str, Any], shapes: bool = False) -> str:
    """The Markdown block of docs/performance.md: what ran, on which machine, the tables."""
    m = result["machine"]
    what = "runner bench --shapes" if shapes else "runner bench"
    head = (
        f"`{what}` on {m['cpu']} ({m['cores']} cores), {time.strftime('%Y-%m-%d', time.gmtime())}:"
    )
    return head + "\n\n" + (shapes_table(result) if shapes else table(result))
