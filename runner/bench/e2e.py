"""`runner bench`'s end-to-end rows and memory sweeps: whole processes, timed from
launch to exit, start-up included."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

E2E_SPEC = """
name = "bench"
[data]
builtin = "seed"
[train]
epochs = {epochs}
[grid]
alpha = [0.001, 0.003, 0.01, 0.03]
hidden = [2, 4, 8, 16]
seed = {{ start = 0, stop = {seeds} }}
[record]
loss_dtype = "float32"
"""
FASTEST = ["train.dtype=float32", "train.fastmath=true"]


def size(quick: bool) -> tuple[int, int]:
    return (1000, 16) if quick else (10000, 128)  # epochs, seeds: 16 x seeds runs


def _rows(folder: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in sorted(folder.glob("*.parquet")))


def _time_process(cmd: list[str], repeats: int, out: Path) -> tuple[list[float], float]:
    """Wall-clock seconds of each run of ``cmd`` (launch to exit) and its peak RSS in MiB."""
    times, peak_mib = [], 0.0
    for _ in range(repeats):
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        stderr = proc.stderr.read() if proc.stderr else b""
        _, status, usage = os.wait4(proc.pid, 0)
        times.append(time.perf_counter() - t0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            lines = stderr.decode(errors="replace").strip().splitlines()
            raise RuntimeError(lines[-1] if lines else f"exit {proc.returncode}")
        peak_mib = max(peak_mib, usage.ru_maxrss / 1024)
    return times, peak_mib


def e2e(name: str, quick: bool) -> dict[str, Any]:
    """One end-to-end pipeline as a whole process: loss rows per second, start-up included."""
    epochs, seeds = size(quick)
    repeats = 1 if quick else 3
    with tempfile.TemporaryDirectory() as tmp:
        tmp_ = Path(tmp)
        spec = tmp_ / "bench.toml"
        spec.write_text(E2E_SPEC.format(epochs=epochs, seeds=seeds))
        sweep = [sys.executable, "-m", "runner", "sweep", str(spec), "--quiet", "--out"]
        if name == "JAX + pyarrow":
            cmd = [
                sys.executable,
                "-m",
                "runner.bench.jax_sweep",
                str(tmp_ / "jax"),
                "--epochs",
                str(epochs),
                "--seeds",
                str(seeds),
            ]
            times, mib = _time_process(cmd, repeats, tmp_ / "jax")
            subprocess.run([*sweep, str(tmp_ / "ref")], check=True, capture_output=True)
            err = _same_table(tmp_ / "jax", tmp_ / "ref" / "bench" / "losses")
            return {
                "rows": _rows(tmp_ / "jax"),
                "seconds": statistics.median(times),
                "process_peak_mib": mib,
                "check_rel_err": err,
            }
        if name == "runner, default make sweep":
            default = Path(__file__).resolve().parents[2] / "experiments" / "seed-sweep.toml"
            if not default.is_file():
                raise FileNotFoundError(f"{default}: the default spec (run bench from a checkout)")
            sweep[4] = str(default)
            extra = ["--set", "grid.seed={start=0,stop=10}"] if quick else []
            folder = "seed-sweep"
        else:
            extra = [a for s in FASTEST for a in ("--set", s)] if "fastest" in name else []
            folder = "bench"
        cmd = [*sweep, str(tmp_ / "out"), *extra]
        _time_process([*cmd, "--set", "train.epochs=2"], 1, tmp_ / "out")  # kernels cached
        plan = _plan([*sweep[:3], "plan", sweep[4], "--out", str(tmp_ / "plan"), *extra])
        times, mib = _time_process(cmd, repeats, tmp_ / "out")
        return {
            "process_peak_mib": mib,
            "rows": _rows(tmp_ / "out" / folder / "losses"),
            "seconds": statistics.median(times),
            "estimated_s": plan["seconds"],
            "estimated_peak_mib": plan["peak_bytes"] / 2**20,
        }


def _plan(cmd: list[str]) -> dict[str, Any]:
    """`runner plan --json`'s cost of the sweep ``cmd`` would run (calibrated, not timed)."""
    out = subprocess.run([*cmd, "--json"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)["cost"]


CHECK_EPOCHS = 1000  # later, chaotic runs (alpha 0.03) part by more than any tolerance


def _same_table(jax_dir: Path, runner_dir: Path) -> float:
    """The JAX table holds runner's rows (every key); over the first CHECK_EPOCHS epochs,
    before another exp's ulps have grown, its losses are runner's within 1e-5 relative
    (plus 1e-12 absolute, for losses near zero). Returns the largest difference."""
    import pyarrow.parquet as pq

    def read(folder: Path) -> tuple[np.ndarray, np.ndarray]:
        tables = [pq.ParquetFile(f).read(columns=["run_id", "epoch", "loss"])
                  for f in sorted(folder.glob("*.parquet"))]  # fmt: skip
        run, epoch, loss = (np.concatenate([np.asarray(t.column(c)) for t in tables])
                            for c in ("run_id", "epoch", "loss"))  # fmt: skip
        key = run.astype(np.int64) << 32 | epoch
        order = np.argsort(key, kind="stable")
        return key[order], loss[order].astype(np.float64)

    (jk, jl), (rk, rl) = read(jax_dir), read(runner_dir)
    if not np.array_equal(jk, rk):
        raise AssertionError("JAX + pyarrow: its rows are not runner's (run_id, epoch)")
    early = (jk & 0xFFFFFFFF) <= CHECK_EPOCHS
    jl, rl = jl[early], rl[early]
    err = float(np.max(np.abs(jl - rl) / (np.abs(rl) + 1e-7)))
    if not err <= 1e-5:
        raise AssertionError(f"JAX + pyarrow: losses differ from runner's (max rel err {err:.2e})")
    return err


MEMORY_SPEC = """
name = "mem"
[data]
builtin = "seed"
[train]
epochs = 1000
alpha = 0.01
[grid]
seed = {{ start = 0, stop = {runs} }}
"""


def memory_sweep(runs: int) -> dict[str, Any]:
    """A runs x 1,000-epoch sweep on all cores: its peak memory (this process)."""
    from runner.run.driver import sweep

    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "mem.toml"
        spec.write_text(MEMORY_SPEC.format(runs=runs))
        t0 = time.perf_counter()
        rep = sweep(spec, out=tmp, progress=False)
        seconds = time.perf_counter() - t0
    return {"rows": rep.rows, "seconds": seconds}
