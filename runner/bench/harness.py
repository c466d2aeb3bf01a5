"""runner bench: runner against its peers, side by side, measured in the same run.

Each kernel measurement runs in a fresh subprocess (so peak memory is its own),
pinned to one core unless it is an all-cores measurement; times are medians of
repeats, each repeat long enough (about 0.3 s) to time well. Before timing, every
peer's losses are checked against runner's in the same dtype. The end-to-end rows
time whole processes (`runner sweep` and a JAX + pyarrow script), start-up included.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from runner.bench import peak, peers
from runner.bench.e2e import e2e, memory_sweep
from runner.bench.peers import MODES, PROBLEMS, has_modes, mode_name
from runner.bench.tables import figures, shape_figures
from runner.bench.tables import markdown as markdown  # `runner bench` prints these
from runner.bench.tables import shapes_table as shapes_table
from runner.bench.tables import table as table
from runner.run.memory import peak_rss

# issue 15's six shapes first, then wider and longer ones
SHAPES = (
    (4, 2, 4),
    (256, 2, 4),
    (16, 2, 256),
    (64, 8, 32),
    (256, 8, 64),
    (1024, 4, 16),
    (4, 2, 32),
    (128, 4, 128),
    (512, 16, 128),
    (1024, 8, 256),
)
QUICK_SHAPES = ((4, 2, 4), (64, 8, 32))
BUDGET_S = {False: 0.3, True: 0.03}  # one timed repeat, full and quick


def shape_key(shape: tuple[int, int, int]) -> str:
    return "x".join(map(str, shape))


def parse_shape(text: str) -> tuple[int, int, int]:
    n, ni, nh = (int(v) for v in text.split("x"))
    return n, ni, nh


# ----- one measurement (inside its subprocess) -----
def _runs(peer: str, shape: tuple[int, int, int], quick: bool, problem: bool) -> int:
    """Runs per call: one for the notebook, a few for the @njit port, full tiles for
    runner and JAX (fewer on big shapes, where one run is a lot of work)."""
    if peer == "notebook":
        return 1
    if peer == "njit":
        return (16 if quick else 64) if problem else 4
    base = 256 if quick else 1024
    n, _, nh = shape
    return int(min(base, max(64, base * 64 // (n * nh) // 64 * 64)))


def _epochs(shape: tuple[int, int, int], quick: bool, problem: bool) -> int:
    """2,000 on the notebook's problems; else enough for runner's call to take about
    the budget (estimated from the floor), between 3 and 2,000."""
    if problem:
        return 300 if quick else 2000
    runs = _runs("runner", shape, quick, problem)
    floor = peak.floor_ns(peak.core(), *shape)["floor_ns"]
    return int(min(2000, max(3, BUDGET_S[quick] / (runs * floor * 3e-9))))


def measure(
    peer: str,
    shape: tuple[int, int, int],
    dtype: str,
    fastmath: bool,
    quick: bool,
    problem: bool = False,
    threads: int = 1,
) -> dict[str, Any]:
    """Check the peer's losses against runner's, then time it: ns per epoch-run."""
    runs, epochs = _runs(peer, shape, quick, problem), _epochs(shape, quick, problem)
    p = peers.make(peer, shape, dtype, fastmath, threads)
    err = p.check(min(epochs, 300 if problem else 50))
    fn = p.prepare(runs, epochs)
    fn()  # compiled, caches warm
    t0 = time.perf_counter()
    fn()
    calls = max(1, round(BUDGET_S[quick] / (time.perf_counter() - t0)))
    times = []
    for _ in range(3 if quick else 5):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - t0) / calls)
    work = threads * runs * epochs
    seconds = statistics.median(times)
    out = {
        "ns_per_epoch_run": seconds / work * 1e9,
        "epoch_runs_per_s": work / seconds,
        "check_rel_err": err,
        "runs": threads * runs,
        "epochs": epochs,
    }
    if peer == "runner":
        out["tile"] = peers.tile_choice(shape, dtype)
    return out


# ----- the harness -----
E2E = ("runner", "runner, fastest mode", "JAX + pyarrow", "runner, default make sweep")


def kernel_rows() -> list[tuple[str, str, str, bool]]:
    """(row name, peer, dtype, fastmath) of the kernel tables."""
    rows = [
        ("notebook NumPy loop", "notebook", "float64", False),
        ("plain @njit port", "njit", "float64", False),
        ("JAX jit(vmap(scan)) float64", "jax", "float64", False),
        ("JAX jit(vmap(scan)) float32", "jax", "float32", False),
    ]
    modes = MODES if has_modes() else MODES[:1]
    rows += [(f"runner {mode_name(d, f)}, 1 core", "runner", d, f) for d, f in modes]
    rows.append(("runner float64 exact, all cores", "runner", "float64", False))
    return rows


def _one(argv: list[str], quick: bool) -> dict[str, Any]:
    """Inside the subprocess: one measurement, as JSON."""
    kind = argv[0]
    if kind == "kernel":  # kernel PEER SHAPE DTYPE FASTMATH THREADS PROBLEM
        peer, shape, dtype, fastmath, threads, problem = argv[1:7]
        if threads == "1":
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        nthreads = peak.cores() if threads == "all" else 1
        out = measure(
            peer,
            parse_shape(shape),
            dtype,
            fastmath == "fastmath",
            quick,
            problem == "problem",
            nthreads,
        )
    elif kind == "e2e":
        out = e2e(argv[1], quick)
        out["rows_per_s"] = out["rows"] / out["seconds"]
    else:
        out = memory_sweep(int(argv[1]))
    out["peak_rss_mib"] = peak_rss() / 1024**2
    return out


def spawn(args: list[str], quick: bool, tree: Path | None = None) -> dict[str, Any]:
    """A measurement in a fresh process; ``tree``: another checkout's (its runner and
    its own Numba cache)."""
    cmd = [sys.executable, "-m", "runner.bench.harness", *args] + (["--quick"] if quick else [])
    env = dict(os.environ)
    if args[0] == "kernel":  # one core: XLA's intra-op threads would use the others
        env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false"
    if tree is not None:
        env.update(PYTHONPATH=str(tree), NUMBA_CACHE_DIR=str(tree / ".numba"))
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tree)
    if r.returncode != 0:
        lines = (r.stderr or r.stdout).strip().splitlines()
        return {"error": lines[-1] if lines else f"exit {r.returncode}"}
    return json.loads(r.stdout.strip().splitlines()[-1])


def has_jax() -> bool:
    import importlib.util

    return importlib.util.find_spec("jax") is not None


NO_JAX = {"error": "jax not installed (make bench installs it)"}


def _kernel_row(
    peer: str, shape, dtype: str, fastmath: bool, quick: bool, problem: bool, threads: str = "1"
) -> dict[str, Any]:
    if peer == "jax" and not has_jax():
        return dict(NO_JAX)
    args = [
        "kernel",
        peer,
        shape_key(shape),
        dtype,
        "fastmath" if fastmath else "exact",
        threads,
        "problem" if problem else "shape",
    ]
    row = spawn(args, quick)
    row.update(peer=peer, dtype=dtype, fastmath=fastmath)
    return row


def _floors(shape, core: peak.Core) -> dict[str, dict[str, Any]]:
    return {mode_name(d, f): peak.floor_ns(core, *shape, d, f) for d, f in MODES}


def run(quick: bool = False, log=None) -> dict[str, Any]:
    """Every measurement of the main tables; returns a JSON-able dict."""
    say = log or (lambda msg: None)
    core = peak.core()
    result: dict[str, Any] = {
        "machine": machine(),
        "core": core.as_dict(),
        "quick": quick,
        "modes": has_modes(),
        "kernel": {},
        "floors": {},
        "e2e": {},
    }
    for problem, shape in PROBLEMS.items():
        if quick and problem != "seed":
            continue
        rows = {}
        for name, peer, dtype, fastmath in kernel_rows():
            say(f"kernel {problem}: {name}")
            threads = "all" if "all cores" in name else "1"
            rows[name] = _kernel_row(peer, shape, dtype, fastmath, quick, True, threads)
        floors = _floors(shape, core)
        for name, row in rows.items():
            if "ns_per_epoch_run" not in row:
                continue
            if row["peer"] == "runner" and "all cores" not in name:
                row["x_floor"] = (
                    row["ns_per_epoch_run"]
                    / floors[mode_name(row["dtype"], row["fastmath"])]["floor_ns"]
                )
        result["kernel"][problem] = rows
        result["floors"][problem] = floors
    for name in E2E:
        if name == "JAX + pyarrow" and not has_jax():
            result["e2e"][name] = dict(NO_JAX)
            continue
        if name == "runner, fastest mode" and not has_modes():
            result["e2e"][name] = {"error": "precision modes not in this build"}
            continue
        say(f"end to end: {name}")
        result["e2e"][name] = spawn(["e2e", name], quick)
    jax_rate = result["e2e"]["JAX + pyarrow"].get("rows_per_s")
    for name in ("runner", "runner, fastest mode", "JAX + pyarrow"):  # the same table
        row = result["e2e"][name]
        if "rows_per_s" in row and jax_rate:
            row["x_jax"] = row["rows_per_s"] / jax_rate
    result["memory"] = {}
    for runs in (2_000, 20_000) if quick else (10_000, 100_000):
        say(f"memory: {runs:,} runs x 1,000 epochs")
        result["memory"][str(runs)] = spawn(["memory", str(runs)], quick)
    result["figures"] = figures(result)
    return result


def run_shapes(quick: bool = False, log=None) -> dict[str, Any]:
    """The shapes table: every mode against JAX in the same dtype and the @njit port."""
    say = log or (lambda msg: None)
    core = peak.core()
    result: dict[str, Any] = {
        "machine": machine(),
        "core": core.as_dict(),
        "quick": quick,
        "modes": has_modes(),
        "shapes": {},
    }
    modes = MODES if has_modes() else MODES[:1]
    for shape in QUICK_SHAPES if quick else SHAPES:
        key = shape_key(shape)
        rows: dict[str, Any] = {}
        for dtype in ("float64", "float32"):
            say(f"shape {key}: JAX {dtype}")
            rows[f"JAX {dtype}"] = _kernel_row("jax", shape, dtype, False, quick, False)
        for d, f in modes:
            say(f"shape {key}: runner {mode_name(d, f)}")
            rows[f"runner {mode_name(d, f)}"] = _kernel_row("runner", shape, d, f, quick, False)
        say(f"shape {key}: plain @njit port")
        rows["plain @njit port"] = _kernel_row("njit", shape, "float64", False, quick, False)
        flops = peak.epoch_flops(*shape)
        for name, row in rows.items():
            if "ns_per_epoch_run" not in row:
                continue
            row["peak_fraction"] = flops / row["ns_per_epoch_run"] / core.peak_gflops(row["dtype"])
            jax = rows.get(f"JAX {row['dtype']}", {})
            if name.startswith("runner") and "ns_per_epoch_run" in jax:
                row["x_jax"] = jax["ns_per_epoch_run"] / row["ns_per_epoch_run"]
        result["shapes"][key] = {"shape": list(shape), "flops": flops, "rows": rows}
    result["figures"] = shape_figures(result)
    return result


def machine() -> dict[str, Any]:
    import numba

    return {
        "cpu": peak.core().cpu,
        "cores": peak.cores(),
        "python": platform.python_version(),
        "numba": numba.__version__,
        "numpy": np.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    quick = "--quick" in argv
    print(json.dumps(_one([a for a in argv if a != "--quick"], quick)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
