"""Shared by the shard, SLURM and Dask tests: small sweeps, run as real processes, compared."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

import runner

REPO = Path(runner.__file__).resolve().parent.parent
SPEC = REPO / "experiments" / "seed-sweep.toml"
NAME = "seed-sweep"
# 5 alphas x 4 hidden x 4 seeds = 80 runs in 12 chunks; some diverge
SMALL = ["grid.seed={start=0,stop=4}", "train.epochs=300", "sweep.chunk_runs=8"]
# 24 runs in 6 chunks of about a second each: slow enough to cancel a task half-way
SLOW = [
    "grid.alpha=0.01,0.03,0.1",
    "grid.hidden=2,4",
    "grid.seed={start=0,stop=4}",
    "train.epochs=600000",
    "record.every=1000",
    "sweep.chunk_runs=4",
]


def env() -> dict[str, str]:
    """This environment, with this checkout of runner first on the path."""
    paths = [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "RUNNER_JOBS": "1"}


def sets(overrides: list[str]) -> list[str]:
    return [a for o in overrides for a in ("--set", o)]


def sweep_cmd(out: Path, overrides: list[str], *extra: str) -> list[str]:
    return [sys.executable, "-m", "runner", "sweep", str(SPEC), "--out", str(out), "--quiet",
            *sets(overrides), *extra]  # fmt: skip


def run_sweep(out: Path, overrides: list[str], *extra: str) -> Path:
    subprocess.run(sweep_cmd(out, overrides, *extra), env=env(), check=True, timeout=300)
    return out / NAME


def assert_same_results(got: Path, want: Path) -> None:
    """Same chunk files, same rows (sorted by run_id, epoch), no duplicate rows."""
    for part, keys in (("losses", ["run_id", "epoch"]), ("runs", ["run_id"])):
        assert sorted(os.listdir(got / part)) == sorted(os.listdir(want / part)), part
        a = pd.read_parquet(got / part).sort_values(keys, ignore_index=True)
        b = pd.read_parquet(want / part).sort_values(keys, ignore_index=True)
        assert not a.duplicated(keys).any(), f"duplicate {keys} in {got / part}"
        assert len(a) > 0
        pd.testing.assert_frame_equal(a, b)
