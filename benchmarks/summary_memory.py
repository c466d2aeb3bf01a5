"""Peak memory of `runner summary`, `runner plot` and `runner report` on a big sweep.

Writes a synthetic results folder in the store layout (the real spec, chunking
and Parquet writer; smooth made-up loss curves instead of training, some runs
diverged), then runs each command in a child process and reports its peak RSS.

    python benchmarks/summary_memory.py                 # 10,000 runs x 10,000 epochs
    python benchmarks/summary_memory.py --seeds 5 --epochs 500 --keep /tmp/small
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from runner.kernel import cpu as kernels
from runner.plan.spec import build_spec
from runner.results import store

LIMIT = 2 * 1024**3  # the bound the analysis must stay under


def make_results(root: Path, seeds: int, epochs: int) -> Path:
    """20 alphas x 5 hidden sizes x ``seeds`` seeds; the largest alphas diverge sometimes."""
    raw = {
        "name": "memory",
        "train": {"epochs": epochs},
        "grid": {
            "alpha": [float(a) for a in np.geomspace(1e-3, 0.3, 20)],
            "hidden": [2, 4, 8, 16, 32],
            "seed": {"start": 0, "stop": seeds},
        },
    }
    spec = build_spec(raw, "<benchmark>")
    out = root / spec.name
    store.prepare(out, store.new_meta(spec.resolved(), spec.hash, spec.n_runs, spec.n_chunks), True)
    e = np.arange(1, epochs + 1, dtype=np.float64)[:, None]
    for c in range(spec.n_chunks):
        chunk = spec.layer.chunk(c)
        ids = np.arange(chunk.run_start, chunk.run_stop)
        p = chunk.columns
        n = len(ids)
        rng = np.random.default_rng(c)
        alpha = np.asarray(p["alpha"])
        # smooth decay towards a floor: loss(e) = a exp(-alpha e / 50) + b
        a, b = rng.uniform(0.5, 2.0, n), rng.uniform(0.01, 0.9, n)
        loss = (a * np.exp(-alpha * e / 50) + b).astype(np.float32)  # (epochs, runs)
        diverged = (alpha > 0.1) & (rng.random(n) < 0.5)
        last = np.where(diverged, rng.integers(2, epochs + 1, n), epochs)
        loss[last - 1, np.arange(n)] = np.where(diverged, np.inf, loss[last - 1, np.arange(n)])
        istats = np.zeros((n, 3), np.int64)
        istats[:, kernels.EPOCHS_RUN] = last
        istats[:, kernels.MIN_EPOCH] = last
        istats[:, kernels.STATUS] = np.where(diverged, kernels.DIVERGED, kernels.RAN_ALL)
        fstats = np.zeros((n, kernels.FSTATS))
        fstats[:, kernels.FINAL_LOSS] = loss[last - 1, np.arange(n)]
        fstats[:, kernels.MIN_LOSS] = loss.min(0)
        fstats[:, kernels.FIRST_LOSS] = loss[0]
        fstats[:, kernels.TAIL_MEAN] = fstats[:, kernels.FINAL_LOSS]
        all_cols = store.param_columns(p)
        axis_cols = {k: all_cols[k] for k in store.axis_columns(spec.axis_names)}
        losses = store.losses_table(ids, axis_cols, loss, istats, fstats, 1)
        runs = store.runs_table(ids, all_cols, istats, fstats)
        store.write_chunk(out, c, losses, runs)
    return out


def peak_rss(argv: list[str]) -> tuple[int, float]:
    """Run ``argv`` in a fresh child (via a small helper) and return its peak RSS in bytes."""
    helper = (
        "import resource, subprocess, sys, time; t = time.perf_counter();"
        "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode;"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, rc,"
        " time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", helper, *argv], capture_output=True, text=True)
    kib, rc, seconds = out.stdout.split()
    if rc != "0":
        raise SystemExit(f"{argv} failed (exit {rc}): {out.stderr[-2000:]}")
    return int(kib) * 1024, float(seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=100, help="seeds per grid point (100 points)")
    ap.add_argument("--epochs", type=int, default=10_000)
    ap.add_argument("--keep", default=None, help="write the results here and keep them")
    args = ap.parse_args()
    root = Path(args.keep or tempfile.mkdtemp(prefix="runner-memory-"))
    try:
        t0 = time.perf_counter()
        folder = make_results(root, args.seeds, args.epochs)
        meta = store.read_meta(folder)
        rows = meta["runs"] * args.epochs
        size = sum(f.stat().st_size for f in folder.rglob("*.parquet"))
        print(
            f"wrote {meta['runs']:,} runs x {args.epochs:,} epochs (~{rows / 1e6:.0f}M loss rows,"
            f" {size / 2**20:.0f} MiB, {meta['chunks']} chunks) in {time.perf_counter() - t0:.0f} s"
        )
        result = {}
        runner = [sys.executable, "-m", "runner"]
        for cmd in (
            ["summary", str(folder)],
            ["plot", str(folder)],
            ["report", str(folder)],
        ):
            rss, seconds = peak_rss([*runner, *cmd])
            result[cmd[0]] = {"peak_rss_mib": round(rss / 2**20), "seconds": round(seconds, 1)}
            verdict = "ok" if rss < LIMIT else "OVER 2 GiB"
            print(
                f"runner {cmd[0]:8s} peak RSS {rss / 2**20:7.0f} MiB  {seconds:6.1f} s  {verdict}"
            )
        print(json.dumps(result))
        if any(v["peak_rss_mib"] * 2**20 >= LIMIT for v in result.values()):
            sys.exit(1)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
