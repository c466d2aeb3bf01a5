"""The names in a results folder (docs/results.md): ``sweep.json``, ``grown/``, and one
file per chunk in ``losses/``, ``runs/`` and (where a sweep stores them) ``weights/``."""

from __future__ import annotations

LOSSES, RUNS, META = "losses", "runs", "sweep.json"
WEIGHTS = "weights"  # [record] weights = "final": each run's final weights
GROWN = "grown"  # one JSON file per invocation that grew the sweep (docs/growth.md)
CLAIMS = ".claims"  # one empty file per chunk being trained: <chunk>.<host>.<pid>


def chunk_name(c: int) -> str:
    return f"chunk-{c:06d}.parquet"


def chunk_of(name: str) -> int | None:
    if name.startswith("chunk-") and name.endswith(".parquet"):
        try:
            return int(name[6:-8])
        except ValueError:
            return None
    return None
