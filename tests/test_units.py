"""Rates and counts print with a unit prefix people read at a glance."""

import math
import re

import pytest

from runner.run.units import compiling_line, rate, si


@pytest.mark.parametrize(
    ("value", "text"),
    [(0, "0"), (7, "7.0"), (950, "950"), (999.4, "999"), (999.96, "1.0k"), (7200, "7.2k"),
     (12_000, "12k"), (12_345, "12.3k"), (2.5e6, "2.5M"), (1.5e9, "1.5G"), (3e12, "3.0T"),
     (math.nan, "?")],
)  # fmt: skip
def test_si(value, text):
    assert si(value) == text


def test_rate_has_its_unit():
    assert rate(7200, 1.0, "rows") == "7.2k rows/s"
    assert rate(36_000, 10.0, "epoch-runs") == "3.6k epoch-runs/s"  # not 0.0M epoch-runs/s
    assert rate(4.2e8, 2.0, "epoch-runs") == "210M epoch-runs/s"
    assert rate(5, 0.0, "runs") == "? runs/s"


def test_compiling_line():
    assert compiling_line("float64", False, 4.2) == (
        "compiling the float64 kernel (first run on this machine, ~4 s)"
    )
    assert "float32 fastmath kernel" in compiling_line("float32", True, 6)


def test_the_done_line_of_a_small_sweep_prints_its_rate_with_a_prefix(tmp_path, capsys):
    """A sweep of a few hundred rows printed ``0.0M rows/s``; it prints e.g. ``41k rows/s``."""
    from helpers import SMALL, SPEC, sets

    from runner.cli import main

    assert main(["sweep", str(SPEC), "--out", str(tmp_path), "--quiet", *sets(SMALL)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.search(r"loss rows, \d+(\.\d)?[kMGT]? rows/s -> ", line), line
    assert "0.0M" not in line
