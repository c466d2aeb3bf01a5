"""runner bench: runner against its peers, side by side, measured in the same run.

Each kernel measurement runs in a fresh subprocess (so peak memory is its own),
pinned to one core unless it is an all-cores measurement; times are medians of
repeats, each repeat long enough (about 0.3 s) to time well. Before timing, every
peer's losses are checked against runner's in the same dtype. The end-to-end rows
time whole processes (`runner sweep` and a JAX + pyarrow script), start-up included.
"""

from __future__ import annotations

import json
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from runner.bench import peak, peers
from runner.bench.peers import MODES, has_modes, mode_name

PROBLEMS = {"seed": (4, 2, 4), "wide": (4, 2, 32)}  # samples, inputs, hidden
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


# ----- end to end: whole processes -----
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


def _e2e_size(quick: bool) -> tuple[int, int]:
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
    epochs, seeds = _e2e_size(quick)
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
            default = Path(__file__).resolve().parents[1] / "experiments" / "seed-sweep.toml"
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
        times, mib = _time_process(cmd, repeats, tmp_ / "out")
        return {
            "process_peak_mib": mib,
            "rows": _rows(tmp_ / "out" / folder / "losses"),
            "seconds": statistics.median(times),
        }


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
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _spawn(args: list[str], quick: bool) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "runner.bench.harness", *args] + (["--quick"] if quick else [])
    env = dict(os.environ)
    if args[0] == "kernel":  # one core: XLA's intra-op threads would use the others
        env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false"
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
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
    row = _spawn(args, quick)
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
        result["e2e"][name] = _spawn(["e2e", name], quick)
    jax_rate = result["e2e"]["JAX + pyarrow"].get("rows_per_s")
    for name in ("runner", "runner, fastest mode", "JAX + pyarrow"):  # the same table
        row = result["e2e"][name]
        if "rows_per_s" in row and jax_rate:
            row["x_jax"] = row["rows_per_s"] / jax_rate
    result["memory"] = {}
    for runs in (2_000, 20_000) if quick else (10_000, 100_000):
        say(f"memory: {runs:,} runs x 1,000 epochs")
        result["memory"][str(runs)] = _spawn(["memory", str(runs)], quick)
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


# ----- the figures the issues ask for -----
def _ns(rows: dict[str, Any], name: str) -> float | None:
    return rows.get(name, {}).get("ns_per_epoch_run")


def _figure(name: str, target: float, value: float | None, unit: str = "x") -> dict[str, Any]:
    holds = None if value is None else bool(value >= target)
    return {
        "figure": name,
        "target": f">= {target:,g}{unit}",
        "value": value,
        "unit": unit,
        "holds": holds,
    }


def figures(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 11's figures on the seed problem, one core, and end to end."""
    rows = result["kernel"].get("seed", {})
    jax32, jax64 = (
        _ns(rows, "JAX jit(vmap(scan)) float32"),
        _ns(rows, "JAX jit(vmap(scan)) float64"),
    )
    notebook = _ns(rows, "notebook NumPy loop")
    mode = {(d, f): _ns(rows, f"runner {mode_name(d, f)}, 1 core") for d, f in MODES}
    fastest = min((v for v in mode.values() if v), default=None)

    def ratio(a, b):
        return a / b if a and b else None

    e2e = result["e2e"]
    default = e2e.get("runner", {}).get("rows_per_s")
    return [
        _figure("fastest mode vs JAX float32", 5, ratio(jax32, fastest)),
        _figure("fastest mode vs the notebook", 1000, ratio(notebook, fastest)),
        _figure("float32 exact vs JAX float32", 3, ratio(jax32, mode["float32", False])),
        _figure("float64 fastmath vs JAX float64", 4, ratio(jax64, mode["float64", True])),
        _figure(
            "float64 exact vs JAX float64 (issue 15: 1.8x before the modes)",
            1.8,
            ratio(jax64, mode["float64", False]),
        ),
        _figure(
            "end to end vs JAX + pyarrow, whole processes",
            3,
            ratio(default, e2e.get("JAX + pyarrow", {}).get("rows_per_s")),
        ),
        _figure("end to end, default mode", 10, default / 1e6 if default else None, "M rows/s"),
    ]


LARGE = 1024  # samples x hidden from which a shape counts as large (issue 15: >= 30% peak)


def shape_figures(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 15's figures: runner >= 2x JAX (same dtype) at every shape; float64 exact at
    >= 30% of the core's peak on the large shapes."""
    out = []
    for key, entry in result["shapes"].items():
        n, _, nh = entry["shape"]
        for name, row in entry["rows"].items():
            if name.startswith("runner"):
                out.append(
                    _figure(f"{key}: {name} vs JAX {row.get('dtype', '')}", 2, row.get("x_jax"))
                )
        if n * nh >= LARGE:
            row = entry["rows"].get("runner float64 exact", {})
            frac = row.get("peak_fraction")
            out.append(
                _figure(
                    f"{key}: runner float64 exact, share of peak",
                    30,
                    frac * 100 if frac is not None else None,
                    "%",
                )
            )
    return out


def machine() -> dict[str, Any]:
    import numba

    return {
        "cpu": peak.core().cpu,
        "cores": peak.cores(),
        "python": platform.python_version(),
        "numba": numba.__version__,
        "numpy": np.__version__,
    }


# ----- tables -----
def _f(value: float | None, fmt: str = ",.1f", unit: str = "") -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:{fmt}}{unit}"


def _machine_line(result: dict[str, Any]) -> str:
    m = result["machine"]
    return (
        f"Machine: {m['cpu']}, {m['cores']} cores; Python {m['python']}, numba "
        f"{m['numba']}, numpy {m['numpy']}."
    )


def _figure_lines(figs: list[dict[str, Any]]) -> list[str]:
    lines = ["| figure | target | measured | holds |", "|---|---:|---:|---|"]
    for fig in figs:
        unit = fig["unit"]
        value = _f(fig["value"], ",.2f", unit if unit != "%" else "%")
        holds = {True: "yes", False: "**no**", None: "not measured"}[fig["holds"]]
        lines.append(f"| {fig['figure']} | {fig['target']} | {value} | {holds} |")
    return lines


def table(result: dict[str, Any]) -> str:
    """The main result as Markdown tables."""
    lines = [_machine_line(result), "", f"Peak model: {result['core']['note']}.", ""]
    for problem, rows in result["kernel"].items():
        n, ni, nh = PROBLEMS[problem]
        base = _ns(rows, "runner float64 exact, 1 core")
        lines += [
            f"Kernel, {problem} problem ({n} samples, {ni} inputs, hidden {nh}, 1 output; "
            "median; x runner: its time over runner float64 exact's):",
            "",
            "| peer | ns / epoch-run | epoch-runs / s | peak MiB | x runner | x floor |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, row in rows.items():
            if "error" in row:
                lines.append(f"| {name} | {row['error']} | | | | |")
                continue
            ns = row["ns_per_epoch_run"]
            lines.append(
                f"| {name} | {ns:,.1f} | {row['epoch_runs_per_s']:,.0f} | "
                f"{row['peak_rss_mib']:,.0f} | {_f(ns / base if base else None, ',.2f')}"
                f" | {_f(row.get('x_floor'), ',.2f')} |"
            )
        for mode, fl in result["floors"][problem].items():
            lines.append(
                f"| floor, {mode} ({fl['ops']:,} ops, {fl['divisions']} divisions, "
                f"{fl['bound']}-bound) | {fl['floor_ns']:,.1f} | | | | 1.00 |"
            )
        lines.append("")
    epochs, seeds = _e2e_size(result["quick"])
    lines += [
        f"End to end, whole processes, start-up included (4 alphas x 4 hidden sizes x "
        f"{seeds} seeds x {epochs:,} epochs, float32 losses; the default `make sweep`: "
        "experiments/seed-sweep.toml; median):",
        "",
        "| pipeline | rows | seconds | rows / s | peak MiB | x JAX + pyarrow |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, row in result["e2e"].items():
        if "error" in row:
            lines.append(f"| {name} | {row['error']} | | | | |")
            continue
        lines.append(
            f"| {name} | {row['rows']:,} | {row['seconds']:.2f} | "
            f"{row['rows_per_s'] / 1e6:,.1f}M | {row['process_peak_mib']:,.0f} | "
            f"{_f(row.get('x_jax'), ',.2f', 'x')} |"
        )
    lines += [
        "",
        "Peak memory of a sweep (runs x 1,000 epochs, all cores):",
        "",
        "| runs | loss rows | seconds | peak MiB |",
        "|---:|---:|---:|---:|",
    ]
    for runs, row in result["memory"].items():
        if "error" in row:
            lines.append(f"| {int(runs):,} | {row['error']} | | |")
            continue
        lines.append(
            f"| {int(runs):,} | {row['rows']:,} | {row['seconds']:.1f} | "
            f"{row['peak_rss_mib']:,.0f} |"
        )
    lines += ["", "Figures (issue 11; seed problem, one core, and end to end):", ""]
    lines += _figure_lines(result["figures"])
    return "\n".join(lines)


def shapes_table(result: dict[str, Any]) -> str:
    """The shapes result as a Markdown table."""
    lines = [
        _machine_line(result),
        "",
        f"Peak model: {result['core']['note']}.",
        "",
        "Kernel by shape, one core (ns per epoch-run, median; x JAX: JAX's time in the "
        "same dtype over runner's; peak: achieved share of the core's peak flop rate "
        "in that dtype; tile: runs per tile):",
        "",
        "| samples | inputs | hidden | peer | ns / epoch-run | x JAX | peak | tile |",
        "|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for entry in result["shapes"].values():
        n, ni, nh = entry["shape"]
        for name, row in entry["rows"].items():
            if "error" in row:
                lines.append(f"| {n:,} | {ni} | {nh} | {name} | {row['error']} | | | |")
                continue
            lines.append(
                f"| {n:,} | {ni} | {nh} | {name} | {row['ns_per_epoch_run']:,.1f} | "
                f"{_f(row.get('x_jax'), ',.2f', 'x')} | "
                f"{_f(row['peak_fraction'] * 100, '.1f', '%')} | "
                f"{row.get('tile', '')} |"
            )
    lines += ["", "Figures (issue 15):", "", *_figure_lines(result["figures"])]
    return "\n".join(lines)


def markdown(result: dict[str, Any], shapes: bool = False) -> str:
    """The README's Performance block: what was run, on which machine, then the tables."""
    m = result["machine"]
    what = "runner bench --shapes" if shapes else "runner bench"
    head = (
        f"`{what}` on {m['cpu']} ({m['cores']} cores), {time.strftime('%Y-%m-%d', time.gmtime())}:"
    )
    return head + "\n\n" + (shapes_table(result) if shapes else table(result))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    quick = "--quick" in argv
    print(json.dumps(_one([a for a in argv if a != "--quick"], quick)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
