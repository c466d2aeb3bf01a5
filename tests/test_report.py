"""runner report: one self-contained HTML file that a headless browser renders with figures."""

import base64
import os
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser

import pytest
from conftest import need_service
from matplotlib.image import imread

import runner
from runner.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


def test_report_is_self_contained(seed_results, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", str(seed_results), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    text = out.read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert len(images) == 4  # curves, final loss, divergence, the map (two numeric axes)
    assert 'id="fig-map"' in text
    assert all(base64.b64decode(i)[:8] == PNG for i in images)
    assert not re.search(r'(src|href)="(https?:)?//', text)  # nothing to fetch
    res = runner.load(seed_results)
    assert f"{len(res.runs)} of {len(res.runs)} runs done" in text
    assert text.count("<tr>") >= len(res.summary()) + 10  # summary and best runs
    assert res.meta["spec_hash"] in text and res.meta["versions"]["numba"] in text


def test_report_default_path(one_axis_results):
    from runner.results.report import write_report

    path = write_report(one_axis_results)
    assert path == one_axis_results / "report.html" and path.stat().st_size > 10_000


def browser() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        need_service("chromium is not installed (apt-get install -y chromium)")
    return found


def chromium(exe: str, *args: str) -> subprocess.CompletedProcess:
    """Headless Chromium with a throwaway profile, offline."""
    with tempfile.TemporaryDirectory() as profile:
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
               *args]  # fmt: skip
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=os.environ)


@pytest.mark.slow
def test_report_renders_in_headless_chromium(seed_results, tmp_path):
    exe = browser()
    out = tmp_path / "report.html"
    assert main(["report", str(seed_results), "--out", str(out)]) == 0
    shot = tmp_path / "shot.png"
    done = chromium(exe, f"--screenshot={shot}", "--window-size=1200,2000", out.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.is_file() and shot.read_bytes()[:8] == PNG
    pixels = imread(shot)[..., :3]
    assert pixels.shape[:2] == (2000, 1200)
    assert pixels.std() > 0.05  # not blank
    # the figures show: saturated colours (viridis, reds) that text and tables never use
    saturation = pixels.max(axis=2) - pixels.min(axis=2)
    assert (saturation > 0.3).sum() > 20_000


class Tables(HTMLParser):
    """Every <table> of a page as (header, rows of cell texts), and the text before each."""

    def __init__(self):
        super().__init__()
        self.tables, self.notes, self.cell, self.text = [], [], None, ""

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append(([], []))
            self.notes.append(self.text)
        elif tag == "tr":
            self.tables[-1][1].append([])
        elif tag in ("td", "th"):
            self.cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            head, rows = self.tables[-1]
            (head if tag == "th" else rows[-1]).append(self.cell.strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data
        else:
            self.text = (self.text + data)[-400:]


def test_report_tables_drop_constant_columns_and_show_missing_one_way(diverging_results):
    """Summary and best runs: no column that is the same in every row (those are listed
    once above the table), every missing value shown as "-", numbers as `number` writes them."""
    from runner.results.analysis import MISSING, number
    from runner.results.report import report_html

    res = runner.load(diverging_results)
    page = Tables()
    page.feed(report_html(res))
    (summary, s_rows), (best, b_rows), _versions = page.tables
    for head, rows in ((summary, s_rows), (best, b_rows)):
        body = [r for r in rows if r]
        assert len(body) > 1
        for j, name in enumerate(head):
            assert len({r[j] for r in body}) > 1, f"constant column {name}"
        cells = [c for r in body for c in r]
        assert not {"", "nan", "NaN", "<NA>", "None", "inf"} & set(cells)
    # the 10 best runs: none diverged, all of 2000 epochs and a linear output
    assert "The same in every row:" in page.notes[1]
    for name in ("epochs = 2000", "output = linear", "diverged = False", "diverged_epoch = -"):
        assert name in page.notes[1]
    # summary: the diverged points have no final-loss quantiles
    medians = [r[summary.index("final_loss_median")] for r in s_rows if r]
    assert medians == [number(v) for v in res.summary()["final_loss_median"]]
    assert MISSING in medians


@pytest.mark.slow
def test_report_in_chromium_shows_no_constant_column(diverging_results, tmp_path):
    """The page as Chromium renders it (its DOM): the summary and best-runs tables have no
    column constant over their rows, and missing values read one way."""
    from runner.results.analysis import MISSING

    out = tmp_path / "report.html"
    assert main(["report", str(diverging_results), "--out", str(out)]) == 0
    done = chromium(browser(), "--dump-dom", out.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    page = Tables()
    page.feed(done.stdout)
    assert len(page.tables) == 3
    cells = []
    for head, rows in page.tables[:2]:
        body = [r for r in rows if r]
        assert len(body) > 1 and all(len(r) == len(head) for r in body)
        assert all(len({r[j] for r in body}) > 1 for j in range(len(head)))
        cells += [c for r in body for c in r]
    assert MISSING in cells and not {"", "nan", "NaN", "<NA>", "None"} & set(cells)
