"""runner bench: runner against its peers, side by side, measured in the same run.

Each measurement runs in a fresh subprocess (so peak memory is its own), pinned
to one core unless it is an all-cores measurement; times are medians of repeats.
Before timing, each peer's losses are checked against runner's.
"""

from __future__ import annotations

import json
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

PROBLEMS = {"seed": 4, "wide": 32}  # hidden size on the notebook's data
ALPHA = 0.01  # a stable rate: peers with other exp/summation stay within 1e-9
CHECK_RTOL = 1e-9


def _data() -> tuple[np.ndarray, np.ndarray]:
    from runner.data import builtin

    return builtin("seed")


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _runner_losses(hidden: int, seeds, epochs: int, alpha: float = ALPHA) -> np.ndarray:
    from runner.train import init_weights, run_batch

    X, Y = _data()
    Wh, Wz = init_weights(seeds, 2, hidden, 1)
    out = run_batch(X, Y, Wh, Wz, np.full(len(seeds), alpha), epochs)
    return out.loss.T  # (runs, epochs)


def _check(
    name: str, got: np.ndarray, hidden: int, seeds, epochs: int, alpha: float = ALPHA
) -> float:
    want = _runner_losses(hidden, seeds, epochs, alpha)
    err = float(np.max(np.abs(got - want) / np.abs(want)))
    if not err <= CHECK_RTOL:
        raise AssertionError(f"{name}: losses differ from runner's (max rel err {err:.2e})")
    return err


def _check_reference(name: str, got: np.ndarray, hidden: int, seeds, epochs: int) -> float:
    """Max relative error of ``got`` (runs, epochs) against runner.reference, NumPy code
    independent of runner's kernel, rounded to ``got``'s dtype."""
    from runner import reference

    X, Y = _data()
    want = []
    for seed in seeds:
        Wh, Wz = reference.init_weights(seed, 2, hidden, 1)
        want.append(reference.train_reference(X, Y, Wh, Wz, ALPHA, epochs).loss)
    want = np.array(want).astype(got.dtype).astype(np.float64)
    err = float(np.max(np.abs(got.astype(np.float64) - want) / np.abs(want)))
    if not err <= CHECK_RTOL:
        raise AssertionError(f"{name}: losses differ from the reference (max rel err {err:.2e})")
    return err


def _check_close(name: str, got: np.ndarray, want: np.ndarray, rtol: float) -> None:
    err = float(np.max(np.abs(got - want) / np.abs(want)))
    if not err <= rtol:
        raise AssertionError(f"{name}: losses differ from runner's (max rel err {err:.2e})")


# ----- peers: each returns (seconds per call, epoch-runs per call, check error) -----
def peer_notebook(hidden: int, quick: bool) -> tuple[float, int, float]:
    """The notebook's NumPy loop, one run at a time."""
    X, Y = _data()
    epochs = 300 if quick else 2000

    def train(seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        Wh = rng.uniform(size=(2, hidden))
        Wz = rng.uniform(size=(hidden, 1))
        loss = np.empty(epochs)
        for e in range(epochs):
            H = 1 / (1 + np.exp(-np.dot(X, Wh)))
            Z = np.dot(H, Wz)
            E = Y - Z
            loss[e] = np.mean(E**2)
            dZ = E * ALPHA
            Wz += H.T.dot(dZ)
            dH = dZ.dot(Wz.T) * (H * (1 - H))
            Wh += X.T.dot(dH)
        return loss

    err = _check("notebook", np.array([train(s) for s in (0, 1)]), hidden, [0, 1], epochs)
    return _median_time(lambda: train(0), 3 if quick else 5), epochs, err


def _njit_port():
    import math

    from numba import njit

    @njit(cache=True)
    def train(X, Y, Wh, Wz, alpha, epochs, loss):
        n, ni = X.shape
        nh = Wh.shape[1]
        H = np.empty((n, nh))
        E = np.empty(n)
        for e in range(epochs):
            sq = 0.0
            for s in range(n):
                z = 0.0
                for j in range(nh):
                    a = 0.0
                    for k in range(ni):
                        a += X[s, k] * Wh[k, j]
                    H[s, j] = 1.0 / (1.0 + math.exp(-a))
                    z += H[s, j] * Wz[j, 0]
                E[s] = Y[s, 0] - z
                sq += E[s] * E[s]
            loss[e] = sq / n
            for j in range(nh):
                g = 0.0
                for s in range(n):
                    g += H[s, j] * E[s] * alpha
                Wz[j, 0] += g
            for k in range(ni):
                for j in range(nh):
                    g = 0.0
                    for s in range(n):
                        g += X[s, k] * (E[s] * alpha * Wz[j, 0]) * H[s, j] * (1.0 - H[s, j])
                    Wh[k, j] += g

    return train


def peer_njit(hidden: int, quick: bool) -> tuple[float, int, float]:
    """A plain @njit port of the notebook, one run per call."""
    X, Y = _data()
    epochs = 2000
    runs = 16 if quick else 64
    train = _njit_port()

    def run_all(seeds) -> np.ndarray:
        out = np.empty((len(seeds), epochs))
        for i, seed in enumerate(seeds):
            rng = np.random.default_rng(seed)
            Wh = rng.uniform(size=(2, hidden))
            Wz = rng.uniform(size=(hidden, 1))
            train(X, Y, Wh, Wz, ALPHA, epochs, out[i])
        return out

    err = _check("njit", run_all([0, 1]), hidden, [0, 1], epochs)
    seeds = list(range(runs))
    return _median_time(lambda: run_all(seeds), 3 if quick else 5), runs * epochs, err


def _jax_train(hidden: int, epochs: int):
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    X, Y = (jnp.asarray(a) for a in _data())

    def one(Wh, Wz):
        def step(carry, _):
            Wh, Wz = carry
            H = jax.nn.sigmoid(X @ Wh)
            Z = H @ Wz
            E = Y - Z
            loss = jnp.mean(E**2)
            dZ = E * ALPHA
            Wz = Wz + H.T @ dZ
            dH = (dZ @ Wz.T) * H * (1 - H)
            Wh = Wh + X.T @ dH
            return (Wh, Wz), loss

        _, losses = jax.lax.scan(step, (Wh, Wz), None, length=epochs)
        return losses

    return jax.jit(jax.vmap(one))


def _jax_weights(hidden: int, seeds) -> tuple[np.ndarray, np.ndarray]:
    from runner.train import init_weights

    Wh, Wz = init_weights(seeds, 2, hidden, 1)
    return np.moveaxis(Wh, 2, 0).copy(), np.moveaxis(Wz, 2, 0).copy()


def peer_jax(hidden: int, quick: bool) -> tuple[float, int, float]:
    """JAX jit(vmap(lax.scan)) over runs, float64."""
    epochs, runs = 2000, (256 if quick else 1024)
    train = _jax_train(hidden, epochs)
    Wh, Wz = _jax_weights(hidden, [0, 1])
    err = _check("jax", np.asarray(train(Wh, Wz)), hidden, [0, 1], epochs)
    Wh, Wz = _jax_weights(hidden, range(runs))
    train(Wh, Wz).block_until_ready()  # compiled before timing
    seconds = _median_time(lambda: train(Wh, Wz).block_until_ready(), 3 if quick else 5)
    return seconds, runs * epochs, err


def peer_runner(hidden: int, quick: bool, threads: int = 1) -> tuple[float, int, float]:
    """runner's kernel: one call per thread, each training a batch of runs."""
    from concurrent.futures import ThreadPoolExecutor

    from runner.train import init_weights, run_batch

    X, Y = _data()
    epochs, runs = 2000, (256 if quick else 1024)
    _runner_losses(hidden, [0], 2)  # compiled (or loaded from cache) before timing
    batches = [init_weights(range(i * runs, (i + 1) * runs), 2, hidden, 1) for i in range(threads)]
    alpha = np.full(runs, ALPHA)

    def one(i: int) -> np.ndarray:
        Wh, Wz = (w.copy() for w in batches[i])
        return run_batch(X, Y, Wh, Wz, alpha, epochs, loss_dtype=np.float32).loss

    if threads == 1:
        fn = lambda: one(0)  # noqa: E731
    else:
        pool = ThreadPoolExecutor(threads)
        fn = lambda: list(pool.map(one, range(threads)))  # noqa: E731
    last = threads - 1  # the last batch's first two runs: seeds last * runs and the next
    seeds = [last * runs, last * runs + 1]
    err = _check_reference("runner", one(last).T[:2], hidden, seeds, epochs)
    return _median_time(fn, 3 if quick else 5), threads * runs * epochs, err


def peer_runner_all(hidden: int, quick: bool) -> tuple[float, int, float]:
    return peer_runner(hidden, quick, threads=_cores())


# ----- end to end: a sweep with Parquet writing -----
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
"""


def _e2e_size(quick: bool) -> tuple[int, int]:
    return (2000, 25) if quick else (10000, 125)  # epochs, seeds: 16 x seeds runs


def e2e_runner(quick: bool, backend: str = "threading") -> dict[str, Any]:
    """runner.sweep of the same grid as the JAX pipeline, all cores: loss rows per second."""
    epochs, seeds = _e2e_size(quick)
    return _time_sweep(E2E_SPEC.format(epochs=epochs, seeds=seeds), [], quick, backend)


def e2e_loky(quick: bool) -> dict[str, Any]:
    """The same with worker processes (loky) instead of threads."""
    return e2e_runner(quick, backend="loky")


def e2e_default(quick: bool) -> dict[str, Any]:
    """The default `make sweep` (experiments/seed-sweep.toml), all cores."""
    from runner.spec import load_spec

    path = Path(__file__).resolve().parents[1] / "experiments" / "seed-sweep.toml"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the default spec (run bench from a checkout)")
    load_spec(path)  # valid before timing
    overrides = ["grid.seed={start=0,stop=10}"] if quick else []
    return _time_sweep(path.read_text(), overrides, quick)


def _time_sweep(
    text: str, overrides: list[str], quick: bool, backend: str = "threading"
) -> dict[str, Any]:
    from runner.driver import sweep

    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "bench.toml"
        spec.write_text(text)
        sweep(spec, out=Path(tmp) / "warm", progress=False, overrides=["train.epochs=2"])
        times, rows = [], 0
        for i in range(2 if quick else 3):
            t0 = time.perf_counter()
            rep = sweep(
                spec, out=Path(tmp) / f"r{i}", progress=False, overrides=overrides, backend=backend
            )
            times.append(time.perf_counter() - t0)
            rows = rep.rows
            shutil.rmtree(Path(tmp) / f"r{i}")
    return {"rows": rows, "seconds": statistics.median(times)}


def e2e_jax(quick: bool) -> dict[str, Any]:
    """JAX computes every run's losses, then pyarrow writes the same tidy table."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    epochs, seeds = _e2e_size(quick)
    alphas, hiddens = [0.001, 0.003, 0.01, 0.03], [2, 4, 8, 16]
    trains = {h: _jax_train_alpha(h, epochs) for h in hiddens}
    for h in hiddens:  # compile before timing
        Wh, Wz = _jax_weights(h, range(2))
        trains[h](Wh, Wz, np.full(2, 0.01)).block_until_ready()

    def pipeline(folder: Path, check: bool = False) -> int:
        rows, run0 = 0, 0
        for h in hiddens:
            seeds_ = np.tile(np.arange(seeds), len(alphas))
            alpha = np.repeat(alphas, seeds)
            Wh, Wz = _jax_weights(h, seeds_)
            loss = np.asarray(trains[h](Wh, Wz, alpha))  # (runs, epochs)
            n = loss.shape[0]
            table = pa.table({
                "run_id": np.repeat(np.arange(run0, run0 + n, dtype=np.int32), epochs),
                "hidden": np.full(n * epochs, h, dtype=np.int32),
                "alpha": np.repeat(alpha, epochs),
                "seed": np.repeat(seeds_.astype(np.int64), epochs),
                "epoch": np.tile(np.arange(1, epochs + 1, dtype=np.int32), n),
                "loss": loss.astype(np.float32).ravel(),
            })  # fmt: skip
            pq.write_table(table, folder / f"hidden-{h}.parquet")
            if check:  # its first run (alpha 0.001, seed 0) against runner's
                got = loss[:1].astype(np.float32).astype(np.float64)
                want = _runner_losses(h, [0], epochs, alphas[0]).astype(np.float32)
                _check_close("JAX + pyarrow", got, want, 1e-6)
            rows += table.num_rows
            run0 += n
        return rows

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "check").mkdir()
        pipeline(Path(tmp) / "check", check=True)
        times, rows = [], 0
        for i in range(2 if quick else 3):
            folder = Path(tmp) / f"r{i}"
            folder.mkdir()
            t0 = time.perf_counter()
            rows = pipeline(folder)
            times.append(time.perf_counter() - t0)
            shutil.rmtree(folder)
    return {"rows": rows, "seconds": statistics.median(times)}


def _jax_train_alpha(hidden: int, epochs: int):
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    X, Y = (jnp.asarray(a) for a in _data())

    def one(Wh, Wz, alpha):
        def step(carry, _):
            Wh, Wz = carry
            H = jax.nn.sigmoid(X @ Wh)
            E = Y - H @ Wz
            dZ = E * alpha
            Wz = Wz + H.T @ dZ
            Wh = Wh + X.T @ ((dZ @ Wz.T) * H * (1 - H))
            return (Wh, Wz), jnp.mean(E**2)

        return jax.lax.scan(step, (Wh, Wz), None, length=epochs)[1]

    return jax.jit(jax.vmap(one))


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
    from runner.driver import sweep

    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "mem.toml"
        spec.write_text(MEMORY_SPEC.format(runs=runs))
        t0 = time.perf_counter()
        rep = sweep(spec, out=tmp, progress=False)
        seconds = time.perf_counter() - t0
    return {"rows": rep.rows, "seconds": seconds}


# ----- the harness -----
E2E = {
    "runner": e2e_runner,
    "runner, loky backend": e2e_loky,
    "JAX + pyarrow": e2e_jax,
    "runner, default make sweep": e2e_default,
}
KERNEL_PEERS = {
    "notebook NumPy loop": (peer_notebook, True),
    "plain @njit port": (peer_njit, True),
    "JAX vmap+scan f64": (peer_jax, True),
    "runner, 1 core": (peer_runner, True),
    "runner, all cores": (peer_runner_all, False),
}


def _cores() -> int:
    return len(os.sched_getaffinity(0))


def _one(kind: str, name: str, arg: str, quick: bool) -> dict[str, Any]:
    """Run inside the subprocess: one measurement, as JSON."""
    if kind == "kernel":
        fn, pin = KERNEL_PEERS[name]
        if pin:
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        seconds, work, err = fn(PROBLEMS[arg], quick)
        out = {"ns_per_epoch_run": seconds / work * 1e9, "epoch_runs_per_s": work / seconds,
               "check_rel_err": err}  # fmt: skip
    elif kind == "e2e":
        out = E2E[name](quick)
        out["rows_per_s"] = out["rows"] / out["seconds"]
    else:
        out = memory_sweep(int(arg))
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _spawn(kind: str, name: str, arg: str, quick: bool) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "runner.bench", kind, name, arg] + (["--quick"] if quick else [])
    env = dict(os.environ, XLA_FLAGS="--xla_cpu_multi_thread_eigen=false")
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        lines = (r.stderr or r.stdout).strip().splitlines()
        return {"error": lines[-1] if lines else f"exit {r.returncode}"}
    return json.loads(r.stdout.strip().splitlines()[-1])


def has_jax() -> bool:
    import importlib.util

    return importlib.util.find_spec("jax") is not None


def run(quick: bool = False, log=None) -> dict[str, Any]:
    """Every measurement; returns a JSON-able dict."""
    say = log or (lambda msg: None)
    result: dict[str, Any] = {"machine": machine(), "quick": quick, "kernel": {}, "e2e": {}}
    for problem in PROBLEMS:
        rows = {}
        for name in KERNEL_PEERS:
            if "JAX" in name and not has_jax():
                rows[name] = {"error": "jax not installed (make bench installs it)"}
                continue
            say(f"kernel {problem}: {name}")
            rows[name] = _spawn("kernel", name, problem, quick)
        base = rows["runner, 1 core"].get("ns_per_epoch_run")
        for row in rows.values():
            if "ns_per_epoch_run" in row and base:
                row["ratio_to_runner"] = row["ns_per_epoch_run"] / base
        result["kernel"][problem] = rows
    for name in E2E:
        if "JAX" in name and not has_jax():
            result["e2e"][name] = {"error": "jax not installed (make bench installs it)"}
            continue
        say(f"end to end: {name}")
        result["e2e"][name] = _spawn("e2e", name, "-", quick)
    base = result["e2e"]["runner"].get("rows_per_s")
    for name in ("runner", "runner, loky backend", "JAX + pyarrow"):  # the same grid
        row = result["e2e"][name]
        if "rows_per_s" in row and base:
            row["ratio_to_runner"] = base / row["rows_per_s"]
    sizes = (2_000, 20_000) if quick else (10_000, 100_000)
    result["memory"] = {}
    for runs in sizes:
        say(f"memory: {runs:,} runs x 1,000 epochs")
        result["memory"][str(runs)] = _spawn("memory", "sweep", str(runs), quick)
    return result


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numba

    return {"cpu": cpu, "cores": _cores(), "python": platform.python_version(),
            "numba": numba.__version__, "numpy": np.__version__}  # fmt: skip


def _ratio(row: dict[str, Any], unit: str) -> str:
    ratio = row.get("ratio_to_runner")
    return f"{ratio:,.2f}{unit}" if ratio is not None else "-"


def table(result: dict[str, Any]) -> str:
    """The result as Markdown tables."""
    m = result["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores; Python {m['python']}, "
             f"numba {m['numba']}, numpy {m['numpy']}.", ""]  # fmt: skip
    for problem, rows in result["kernel"].items():
        lines += [f"Kernel, {problem} problem (4 samples, 2 inputs, hidden {PROBLEMS[problem]}, "
                  "1 output, float64; median):", "",
                  "| peer | ns / epoch-run | epoch-runs / s | peak MiB | x runner (1 core) |",
                  "|---|---:|---:|---:|---:|"]  # fmt: skip
        for name, row in rows.items():
            if "error" in row:
                lines.append(f"| {name} | {row['error']} | | | |")
                continue
            lines.append(f"| {name} | {row['ns_per_epoch_run']:,.1f} | "
                         f"{row['epoch_runs_per_s']:,.0f} | {row['peak_rss_mib']:,.0f} | "
                         f"{_ratio(row, '')} |")  # fmt: skip
        lines.append("")
    lines += ["End to end, sweep with Parquet writing (loss rows per second; median). The first "
              "three: 4 alphas x 4 hidden sizes x 125 seeds x 10,000 epochs, no divergence; the "
              "default `make sweep`: experiments/seed-sweep.toml:", "",
              "| pipeline | rows | seconds | rows / s | peak MiB | slower than runner |",
              "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for name, row in result["e2e"].items():
        if "error" in row:
            lines.append(f"| {name} | {row['error']} | | | | |")
            continue
        lines.append(f"| {name} | {row['rows']:,} | {row['seconds']:.2f} | "
                     f"{row['rows_per_s'] / 1e6:,.1f}M | {row['peak_rss_mib']:,.0f} | "
                     f"{_ratio(row, 'x')} |")  # fmt: skip
    lines += ["", "Peak memory of a sweep (runs x 1,000 epochs, all cores):", "",
              "| runs | loss rows | seconds | peak MiB |", "|---:|---:|---:|---:|"]  # fmt: skip
    for runs, row in result["memory"].items():
        if "error" in row:
            lines.append(f"| {int(runs):,} | {row['error']} | | |")
            continue
        lines.append(f"| {int(runs):,} | {row['rows']:,} | {row['seconds']:.1f} | "
                     f"{row['peak_rss_mib']:,.0f} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    quick = "--quick" in argv
    args = [a for a in argv if a != "--quick"]
    print(json.dumps(_one(args[0], args[1], args[2], quick)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
