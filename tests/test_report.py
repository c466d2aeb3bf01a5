"""runner report: one self-contained HTML file that a headless browser renders with figures."""

import base64
import os
import re
import shutil
import subprocess
import tempfile

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
    assert len(images) == 3
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


@pytest.mark.slow
def test_report_renders_in_headless_chromium(seed_results, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        need_service("chromium is not installed (apt-get install -y chromium)")
    out = tmp_path / "report.html"
    assert main(["report", str(seed_results), "--out", str(out)]) == 0
    shot = tmp_path / "shot.png"
    with tempfile.TemporaryDirectory() as profile:
        cmd = [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            f"--screenshot={shot}",
            "--window-size=1200,2000",
            out.as_uri(),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=os.environ)
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.is_file() and shot.read_bytes()[:8] == PNG
    pixels = imread(shot)[..., :3]
    assert pixels.shape[:2] == (2000, 1200)
    assert pixels.std() > 0.05  # not blank
    # the figures show: saturated colours (viridis, reds) that text and tables never use
    saturation = pixels.max(axis=2) - pixels.min(axis=2)
    assert (saturation > 0.3).sum() > 20_000
