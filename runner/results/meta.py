"""``sweep.json`` and ``grown/NNNN.json``: what each invocation planned, written once by
whoever comes first, and read back as one description of the sweep (docs/growth.md)."""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from runner.errors import RunnerError
from runner.results.durable import fsync_dir, write_once
from runner.results.layout import GROWN, LOSSES, META, RUNS, WEIGHTS


def versions() -> dict[str, str]:
    import numba

    import runner

    return {
        "runner": runner.__version__,
        "numba": numba.__version__,
        "numpy": np.__version__,
        "pyarrow": pa.__version__,
        "python": platform.python_version(),
    }


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def read_meta(out: Path) -> dict[str, Any]:
    """The sweep as it stands: sweep.json, with the latest spec and the totals of every layer.

    ``layers`` lists each invocation that planned runs (sweep.json first, then
    ``grown/NNNN.json``): its spec hash, runs, chunks and offsets.
    """
    files = layer_files(out)
    meta = dict(files[0])
    meta["spec"], meta["spec_hash"] = files[-1]["spec"], files[-1]["spec_hash"]
    meta["runs"] = sum(int(f["runs"]) for f in files)
    meta["chunks"] = sum(int(f["chunks"]) for f in files)
    meta["layers"] = [
        {k: f.get(k) for k in ("spec_hash", "runs", "chunks", "created")} for f in files
    ]
    return meta


def prepare(out: Path, meta: dict[str, Any], fresh: bool) -> dict[str, Any]:
    """Create ``out`` and its sweep.json once (whoever comes first), or check it matches.

    Raises RunnerError when ``out`` is not writable. Returns sweep.json as found
    (runner.results.growth checks that it is the same sweep, or one that may grow).
    """
    where = str(out)
    if out.exists() and not out.is_dir():
        raise RunnerError("results path exists and is not a folder", file=where)
    if fresh and out.is_dir():
        if not (out / META).is_file() and any(p.name != "slurm" for p in out.iterdir()):
            raise RunnerError("--fresh refuses to delete a folder that is not a sweep", file=where)
        shutil.rmtree(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        stored = "weights" in meta["spec"]["record"]  # [record] weights = "final"
        for sub in (LOSSES, RUNS, WEIGHTS) if stored else (LOSSES, RUNS):
            (out / sub).mkdir(exist_ok=True)
        fsync_dir(out)  # the folders exist durably before any chunk is renamed into them
        probe = out / f".write-test.{socket.gethostname()}.{os.getpid()}.tmp"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise RunnerError(f"results folder is not writable ({exc.strerror})", file=where) from None
    path = out / META
    if not path.exists():
        write_once(path, json.dumps(meta, indent=2) + "\n")
    return read_json(path)


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RunnerError(
            "not a sweep results folder (no sweep.json)", file=str(path.parent)
        ) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise RunnerError(f"unreadable sweep file ({exc})", file=str(path)) from None


def layer_files(out: Path) -> list[dict[str, Any]]:
    """sweep.json, then the files of each growth, in order."""
    found = [read_json(out / META)]
    folder = out / GROWN
    if folder.is_dir():
        names = sorted(n for n in os.listdir(folder) if n.endswith(".json") and n[:4].isdigit())
        found.extend(read_json(folder / n) for n in names)
    return found


def add_layer(out: Path, k: int, meta: dict[str, Any]) -> bool:
    """Write growth k's file unless it exists (whoever comes first); True if written."""
    folder = out / GROWN
    folder.mkdir(exist_ok=True)
    return write_once(folder / f"{k:04d}.json", json.dumps(meta, indent=2) + "\n")


def new_meta(resolved: dict[str, Any], spec_hash: str, n_runs: int, n_chunks: int) -> dict:
    return {
        "spec": resolved,
        "spec_hash": spec_hash,
        "runs": n_runs,
        "chunks": n_chunks,
        "versions": versions(),
        "git_commit": git_commit(),
        "host": socket.gethostname(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": sys.argv,
    }
