"""Tables as text (table, csv, markdown) and a self-contained HTML report of a sweep."""

from __future__ import annotations

import base64
import html
import json
import platform
import time
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pyarrow as pa

from runner.errors import RunnerError
from runner.results.analysis import MISSING, Results, load, number

FORMATS = ("table", "csv", "markdown")
CAPTIONS = {
    "curves": "Loss per epoch: median (line) and 25–75% band over the seeds that did not "
    "diverge; × marks a run that diverged, at its epoch. The loss axis is logarithmic when "
    "those losses span a decade or more.",
    "final_loss": "Median final loss per grid point, over the runs that did not diverge.",
    "divergence": "Share of runs that diverged, per grid point.",
    "map": "Trainability map of the last two numeric axes: one pixel per grid point, the "
    "median over its runs of log10 of the loss ratio (tail_mean / first_loss, or final loss / "
    "loss at epoch 1 where the runs table has no tail_mean). Blue: the point converged "
    "(ratio < 1); red: it did not, darkest where the median run diverged.",
}
STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1400px;
       padding: 0 1em; color: #222; }
h1 { margin-bottom: .2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; }
.meta { color: #555; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 90%; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f4f4f4; } tr:nth-child(even) td { background: #fafafa; }
.wide { overflow-x: auto; max-width: 100%; } .same { color: #555; font-size: 90%; }
pre { background: #f6f8fa; padding: 1em; overflow-x: auto; font-size: 13px; }
"""


def format_table(df: pd.DataFrame, fmt: str = "table") -> str:
    """A DataFrame as text: an aligned "table", "csv" (full precision) or "markdown"
    (numbers as ``number`` writes them, missing values as ``MISSING``)."""
    if fmt == "csv":
        return df.to_csv(index=False)
    cells = [[number(v) for v in row] for row in df.itertuples(index=False)]
    head = [str(c) for c in df.columns]
    if fmt == "markdown":
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---:" for _ in head) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in cells]
        return "\n".join(lines) + "\n"
    if fmt == "table":
        widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(head)]
        rows = [head, *cells]
        return "\n".join(
            "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows
        )
    raise RunnerError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}", key="--format")


def constant_columns(df: pd.DataFrame) -> list[str]:
    """Columns with one value in every row (missing counts as a value), when rows > 1."""
    if len(df) < 2:
        return []
    out = []
    for c in df.columns:
        v = df[c].astype(object)
        missing = v.isna()
        if missing.all() or (not missing.any() and (v == v.iloc[0]).all()):
            out.append(c)
    return out


def _html_table(df: pd.DataFrame, drop_constant: bool = True) -> str:
    """A table of the rows shown: columns constant over them are listed once above it."""
    same = constant_columns(df) if drop_constant else []
    head = ""
    if same:
        items = ", ".join(f"<code>{html.escape(c)} = {html.escape(number(df[c].iloc[0]))}</code>"
                          for c in same)  # fmt: skip
        head = f'<p class="same">The same in every row: {items}.</p>'
    shown = df.drop(columns=same)
    cells = shown.astype(object).map(number) if len(shown) else shown
    table = cells.to_html(index=False, escape=True, border=0)
    return f'{head}<div class="wide">{table}</div>'


def _versions(res: Results) -> pd.DataFrame:
    swept = res.meta.get("versions", {})
    now = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "pyarrow": pa.__version__,
        "matplotlib": matplotlib.__version__,
    }
    import runner

    now["runner"] = runner.__version__
    names = list(dict.fromkeys([*swept, *now]))
    return pd.DataFrame(
        {
            "package": names,
            "sweep ran with": [swept.get(n, MISSING) for n in names],
            "report made with": [now.get(n, MISSING) for n in names],
        }
    )


def report_html(res: Results) -> str:
    """The whole report as one HTML string (figures inline as base64 PNG)."""
    from runner.results.plots import figures, png_bytes

    esc = html.escape
    runs = res.runs
    meta = res.meta
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>runner report: {esc(res.name)}</title><style>{STYLE}</style></head><body>",
        f"<h1>Sweep <code>{esc(res.name)}</code></h1>",
        f'<p class="meta">{len(runs):,} of {int(meta.get("runs", len(runs))):,} runs done, '
        f"{int(runs['diverged'].sum()):,} diverged · grid axes: "
        f"{esc(', '.join(res.axes) or 'none')} · created {esc(str(meta.get('created', '?')))}"
        f" on {esc(str(meta.get('host', '?')))} · git {esc(str(meta.get('git_commit') or '-'))}"
        f" · spec hash {esc(str(meta.get('spec_hash', '?')))}"
        f" · report {esc(time.strftime('%Y-%m-%d %H:%M'))}</p>",
        "<h2>Figures</h2>",
    ]
    for name, fig in figures(res).items():
        data = base64.b64encode(png_bytes(fig)).decode("ascii")
        caption = CAPTIONS.get(name, name)
        parts.append(
            f'<figure id="fig-{name}"><img src="data:image/png;base64,{data}" '
            f'alt="{esc(caption)}"><figcaption>{esc(caption)}</figcaption></figure>'
        )
    parts += [
        "<h2>Summary per grid point</h2>",
        "<p>Aggregated over seeds. Final-loss quantiles cover the runs that did not diverge; "
        f"<code>diverged_share</code> says how many did. A missing value reads {MISSING}.</p>",
        _html_table(res.summary()),
        "<h2>Best runs (by final loss)</h2>",
        _html_table(res.best(10)),
        "<h2>Spec</h2>",
        f"<pre>{esc(json.dumps(res.spec, indent=2))}</pre>",
        "<h2>Versions</h2>",
        _html_table(_versions(res), drop_constant=False),
        "</body></html>",
    ]
    return "\n".join(parts)


def write_report(folder: str | Path, out: str | Path | None = None) -> Path:
    """Write the HTML report of a results folder (default: FOLDER/report.html)."""
    res = load(folder)
    path = Path(out) if out is not None else res.folder / "report.html"
    text = report_html(res)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise RunnerError(f"cannot write the report ({exc.strerror})", file=str(path)) from None
    return path
