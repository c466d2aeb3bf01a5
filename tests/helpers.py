"""Shared test helpers: tiny specs and dataset comparison."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def sweep_cmd(spec: Path, out: Path, *extra: str) -> list[str]:
    """The command line of a quiet sweep in a fresh interpreter."""
    return [sys.executable, "-m", "runner", "sweep", str(spec), "--out", str(out), "--quiet",
            *extra]  # fmt: skip


SMALL_SPEC = """
name = "small"
[data]
builtin = "seed"
[train]
epochs = 300
init = [0.0, 1.0]
[grid]
alpha = [0.01, 0.1, 0.5]
hidden = [2, 3]
seed = {{ start = 0, stop = 6 }}
[record]
every = {every}
[sweep]
chunk_runs = {chunk_runs}
"""


def write_spec(folder: Path, text: str | None = None, name: str = "spec.toml", **fmt) -> Path:
    params = {"every": 1, "chunk_runs": 5} | fmt
    path = folder / name
    path.write_text(textwrap.dedent(text if text is not None else SMALL_SPEC.format(**params)))
    return path


def read_results(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(losses, runs), sorted, with a check that no (run_id, epoch) appears twice."""
    losses = pd.read_parquet(folder / "losses")
    runs = pd.read_parquet(folder / "runs")
    assert not losses.duplicated(["run_id", "epoch"]).any()
    assert not runs.duplicated(["run_id"]).any()
    losses = losses.sort_values(["run_id", "epoch"], ignore_index=True)
    runs = runs.sort_values("run_id", ignore_index=True)
    return losses, runs


def assert_same_results(a: Path, b: Path) -> None:
    la, ra = read_results(a)
    lb, rb = read_results(b)
    pd.testing.assert_frame_equal(la, lb, check_exact=True)  # bit for bit
    pd.testing.assert_frame_equal(ra, rb, check_exact=True)


def runner_cmd(*args: str, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT)) | kw.pop("env", {})
    return subprocess.run(
        [sys.executable, "-m", "runner", *args], capture_output=True, text=True, env=env, **kw
    )
