"""The device check: one short run on a GPU machine gives every GPU figure of the README.

    PYTHONPATH=. python benchmarks/gpu_check.py [--scale S] [--json PATH]

Runs from a checkout (no install, no dask, no network). It
  1. checks bit identity with the CPU: the seed sweep and a mixed-shapes sweep, run
     with the CPU backend and with --backend cuda, compared value for value;
  2. times the kernel (epoch-runs/s per mode: float64/float32, exact/fastmath), the
     CPU kernel on one core, and whole sweeps with the Parquet writer (every = 1, 100);
  3. times JAX jit(vmap(lax.scan)) on the same GPU (skipped, with the reason, if JAX
     or its GPU backend is missing);
and prints a table, then the JSON (also written to --json PATH). A few minutes on an
H100 at --scale 1; tests run it in numba-cuda's simulator with a tiny --scale.
Exit 1 if a sweep was not bit-identical.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runner.errors import RunnerError  # noqa: E402
from runner.plan.data import builtin  # noqa: E402
from runner.run.driver import sweep  # noqa: E402
from runner.run.train import init_weights, run_batch  # noqa: E402

ALPHA = 0.01  # stable: no run stops early, so runs x epochs is the work done
MODES = (("float64", False), ("float64", True), ("float32", False), ("float32", True))

MIXED = """
name = "mixed"
[data]
path = "{data}"
[train]
epochs = {epochs}
stop_below = 0.14
diverge_above = 1e4
[grid]
output = ["linear", "sigmoid"]
update = ["sequential", "simultaneous"]
hidden = [1, 3]
alpha = [0.05, 0.9]
seed = {{ start = 0, stop = {seeds} }}
[record]
every = 7
"""

E2E = """
name = "e2e-{every}"
[data]
builtin = "seed"
[train]
epochs = {epochs}
hidden = 4
alpha = {alpha}
[grid]
seed = {{ start = 0, stop = {runs} }}
[record]
every = {every}
"""


def _size(n: float, scale: float, low: int) -> int:
    return max(low, int(n * scale))


def _median(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def device_info() -> dict:
    from numba import cuda

    from runner.run.cuda import _simulator, device_count

    n = device_count()
    if _simulator():
        return {"name": "numba-cuda simulator", "simulator": True, "devices": n}
    dev = cuda.get_current_device()
    name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
    info = {"name": name, "simulator": False, "devices": n}
    info["compute_capability"] = ".".join(map(str, dev.compute_capability))
    info["sms"] = dev.MULTIPROCESSOR_COUNT
    return info


# ----- 1. bit identity -----
def _same(a: Path, b: Path) -> bool:
    import pandas as pd

    for table, key in (("losses", ["run_id", "epoch"]), ("runs", ["run_id"])):
        x = pd.read_parquet(a / table).sort_values(key, ignore_index=True)
        y = pd.read_parquet(b / table).sort_values(key, ignore_index=True)
        try:
            pd.testing.assert_frame_equal(x, y, check_exact=True)
        except AssertionError as exc:
            print(f"gpu_check: {a.name} {table} differ: {' '.join(str(exc).split())[:300]}")
            return False
    return True


def identity(tmp: Path, scale: float) -> dict[str, bool]:
    rng = np.random.default_rng(7)
    X = rng.uniform(-1, 1, size=(5, 3))
    Y = np.stack([np.tanh(X.sum(1)), X[:, 0] * X[:, 1]], axis=1)
    np.savez(tmp / "points.npz", X=X, Y=Y)
    mixed = tmp / "mixed.toml"
    mixed.write_text(
        textwrap.dedent(
            MIXED.format(
                data=tmp / "points.npz", epochs=_size(3000, scale, 20), seeds=_size(50, scale, 2)
            )
        )
    )
    seed = (ROOT / "experiments" / "seed-sweep.toml", [
        f"grid.seed={{ start = 0, stop = {_size(100, scale, 2)} }}",
        f"train.epochs={_size(10000, scale, 20)}",
    ])  # fmt: skip
    out: dict[str, bool | str] = {
        f"batch_{d}": batch_identity(_size(4096, scale, 16), _size(5000, scale, 50), d)
        for d in ("float64", "float32")
    }
    sweeps = {"seed": seed, "mixed": (mixed, [])}
    if _has_float32():  # the seed sweep in float32 too, where specs take [train] dtype
        sweeps["seed_float32"] = (seed[0], [*seed[1], "train.dtype=float32"])
    for name, (spec, sets) in sweeps.items():
        kw = dict(overrides=sets, quiet=True, progress=False)
        try:
            cpu = sweep(spec, out=tmp / "cpu" / name, backend="threading", **kw)
        except RunnerError as exc:  # a spec key this checkout lacks
            out[name] = f"skipped: {exc}"
            continue
        gpu = sweep(spec, out=tmp / "gpu" / name, backend="cuda", **kw)
        out[name] = _same(cpu.out, gpu.out)
    return out


def _has_float32() -> bool:
    import inspect

    return "dtype" in inspect.signature(run_batch).parameters


# ----- 2. speed -----
def _weights(runs: int, hidden: int, dtype=np.float64):
    rng = np.random.default_rng(0)  # any weights will do for timing
    return rng.uniform(0, 1, (2, hidden, runs)), rng.uniform(0, 1, (hidden, 1, runs))


def kernel_rate(runs: int, epochs: int, every: int, dtype: str, fastmath: bool) -> dict:
    from runner.run.cuda import run_batch_cuda

    X, Y = builtin("seed")
    Wh, Wz = _weights(runs, 4)
    alpha = np.full(runs, ALPHA)
    loss_dtype = np.float64 if dtype == "float64" else np.float32
    row = {"mode": dtype, "fastmath": fastmath, "runs": runs, "epochs": epochs, "every": every}

    def once():
        return run_batch_cuda(
            X, Y, Wh.copy(), Wz.copy(), alpha, epochs, every=every, loss_dtype=loss_dtype,
            dtype=dtype, fastmath=fastmath,
        )  # fmt: skip

    try:
        res = once()  # compiles
    except (ValueError, NotImplementedError) as exc:
        return row | {"error": " ".join(str(exc).split())}
    work = int(res.istats[:, 0].sum())
    seconds = _median(once, 3)
    return row | {"seconds": seconds, "epoch_runs_per_s": work / seconds}


def cpu_rate(runs: int, epochs: int, dtype: str) -> dict:
    """runner's CPU kernel on one core (one kernel call is one thread)."""
    X, Y = builtin("seed")
    Wh, Wz = _weights(runs, 4)
    alpha = np.full(runs, ALPHA)
    mode = {"dtype": dtype} if _has_float32() else {}
    if dtype != "float64" and not mode:
        return {"mode": dtype, "runs": runs, "epochs": epochs, "error": "no float32 mode"}
    run_batch(X, Y, Wh.copy(), Wz.copy(), alpha, 2, **mode)  # compiled or loaded
    seconds = _median(lambda: run_batch(X, Y, Wh.copy(), Wz.copy(), alpha, epochs, **mode), 3)
    return {"mode": dtype, "runs": runs, "epochs": epochs, "seconds": seconds,
            "epoch_runs_per_s": runs * epochs / seconds}  # fmt: skip


def batch_identity(runs: int, epochs: int, dtype: str) -> bool | str:
    """run_batch_cuda against run_batch on the seed problem at rates from stable to
    diverging, every epoch recorded: losses, statistics and final weights."""
    from runner.run.cuda import run_batch_cuda

    if dtype != "float64" and not _has_float32():
        return "skipped: run_batch has no float32 mode in this checkout"
    X, Y = builtin("seed")
    Wh, Wz = init_weights(range(runs), 2, 4, 1)
    alpha = np.geomspace(0.003, 0.3, runs)
    mode = {"dtype": dtype} if dtype != "float64" else {}
    args = (X, Y, Wh, Wz, alpha, epochs, "linear", "sequential", 1, None, None, np.float64)
    a = run_batch(*args[:2], Wh.copy(), Wz.copy(), *args[4:], **mode)
    b = run_batch_cuda(*args[:2], Wh.copy(), Wz.copy(), *args[4:], dtype=dtype)
    return all(
        np.array_equal(getattr(a, k), getattr(b, k), equal_nan=True)
        for k in ("loss", "istats", "fstats", "Wh", "Wz")
    )


def end_to_end(tmp: Path, every: int, runs: int, epochs: int) -> dict:
    import pandas as pd

    from runner.run.cuda import run_batch_cuda

    spec = tmp / f"e2e-{every}.toml"
    spec.write_text(textwrap.dedent(E2E.format(every=every, epochs=epochs, alpha=ALPHA, runs=runs)))
    X, Y = builtin("seed")  # the kernel compiled before timing, as in a long sweep
    Wh, Wz = _weights(2, 4)
    run_batch_cuda(X, Y, Wh, Wz, np.full(2, ALPHA), 2, every=every, loss_dtype=np.float32)
    t0 = time.perf_counter()
    rep = sweep(spec, out=tmp / "e2e", backend="cuda", quiet=True, progress=False, yes=True)
    seconds = time.perf_counter() - t0
    work = int(pd.read_parquet(rep.out / "runs", columns=["epochs_run"])["epochs_run"].sum())
    return {"every": every, "runs": runs, "epochs": epochs, "rows": rep.rows,
            "seconds": seconds, "epoch_runs_per_s": work / seconds,
            "rows_per_s": rep.rows / seconds}  # fmt: skip


def init_rate(runs: int) -> dict:
    """Seeded initial weights per second on the host: NumPy run by run (the CPU path)
    and runner.kernel.seeding (the cuda path), which must agree."""
    from runner.kernel import seeding

    seeds = np.arange(runs)
    seeding.init_weights(seeds[:2], 2, 4, 1, 0.0, 1.0)  # compiled or loaded
    numpy_s = _median(lambda: init_weights(seeds, 2, 4, 1), 1)
    fast_s = _median(lambda: seeding.init_weights(seeds, 2, 4, 1, 0.0, 1.0), 3)
    want, got = init_weights(seeds, 2, 4, 1), seeding.init_weights(seeds, 2, 4, 1, 0.0, 1.0)
    same = all(np.array_equal(a, b) for a, b in zip(want, got, strict=True))
    return {"runs": runs, "numpy_runs_per_s": runs / numpy_s, "runs_per_s": runs / fast_s,
            "same_as_numpy": same}  # fmt: skip


# ----- 3. JAX on the same GPU -----
def jax_rows(runs: int, epochs: int) -> list[dict] | str:
    try:
        import jax
    except ImportError:
        return "JAX is not installed"
    try:
        if not jax.devices("gpu"):
            return "JAX sees no GPU"
    except RuntimeError as exc:
        return f"JAX has no GPU backend ({' '.join(str(exc).split())[:120]})"
    jax.config.update("jax_enable_x64", True)
    rows = []
    for dtype in ("float64", "float32"):
        train = _jax_train(epochs, dtype)
        Wh, Wz = (np.moveaxis(w, 2, 0).astype(dtype) for w in _weights(runs, 4))
        Wh, Wz = jax.device_put(Wh), jax.device_put(Wz)
        train(Wh, Wz).block_until_ready()
        seconds = _median(lambda t=train, a=Wh, b=Wz: t(a, b).block_until_ready(), 3)
        rows.append({"mode": dtype, "runs": runs, "epochs": epochs, "every": 1,
                     "seconds": seconds, "epoch_runs_per_s": runs * epochs / seconds})  # fmt: skip
    return rows


def _jax_train(epochs: int, dtype: str):
    """The seed problem (linear, sequential) for one run, vmapped over runs; every loss."""
    import jax
    import jax.numpy as jnp

    X, Y = (jnp.asarray(a, dtype=dtype) for a in builtin("seed"))
    alpha = jnp.asarray(ALPHA, dtype=dtype)

    def one(Wh, Wz):
        def step(carry, _):
            Wh, Wz = carry
            H = jax.nn.sigmoid(X @ Wh)
            E = Y - H @ Wz
            loss = jnp.mean(E**2)
            dZ = E * alpha
            Wz = Wz + H.T @ dZ
            Wh = Wh + X.T @ ((dZ @ Wz.T) * H * (1 - H))
            return (Wh, Wz), loss

        return jax.lax.scan(step, (Wh, Wz), None, length=epochs)[1]

    return jax.jit(jax.vmap(one))


# ----- report -----
def run(scale: float) -> dict:
    from runner.run.cuda_sweep import launch_runs

    info = device_info()
    result: dict = {"device": info, "scale": scale, "host": platform.node(),
                    "cpus": os.cpu_count()}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp_:
        tmp = Path(tmp_)
        result["identical"] = identity(tmp, scale)
        from numba import cuda

        full = launch_runs(None if info["simulator"] else cuda.get_current_device())
        big, epochs = _size(full, scale, 64), _size(2000, scale, 10)
        result["kernel"] = [kernel_rate(big, epochs, epochs, d, f) for d, f in MODES]
        peer_runs = _size(65536, scale, 64)
        result["kernel_every_1"] = [kernel_rate(peer_runs, epochs, 1, d, False)
                                    for d in ("float64", "float32")]  # fmt: skip
        jax = jax_rows(peer_runs, epochs)
        result["jax"] = jax if isinstance(jax, list) else {"skipped": jax}
        result["cpu_1core"] = [cpu_rate(_size(4096, scale, 64), epochs, d)
                               for d in ("float64", "float32")]  # fmt: skip
        result["init_weights"] = init_rate(_size(65536, scale, 64))
        result["end_to_end"] = [
            end_to_end(tmp, 100, _size(262144, scale, 64), _size(5000, scale, 200)),
            end_to_end(tmp, 1, _size(16384, scale, 64), _size(1000, scale, 20)),
        ]
    result["ratios"] = ratios(result)
    return result


def _rate(rows, mode: str, fastmath: bool = False) -> float | None:
    for r in rows:
        if r["mode"] == mode and r.get("fastmath", False) == fastmath and "seconds" in r:
            return r["epoch_runs_per_s"]
    return None


def ratios(res: dict) -> dict:
    out = {}
    for mode in ("float64", "float32"):
        k, cpu = _rate(res["kernel"], mode), _rate(res["cpu_1core"], mode)
        if k is not None and cpu is not None:
            cpu2 = 2 * cpu
            out[f"{mode}_vs_cpu_2cores"] = k / cpu2
        if isinstance(res["jax"], list):
            mine, jax = _rate(res["kernel_every_1"], mode), _rate(res["jax"], mode)
            if mine is not None and jax is not None:
                out[f"{mode}_vs_jax"] = mine / jax
    return out


def table(res: dict) -> str:
    d = res["device"]
    lines = [f"gpu_check on {d['name']}" + (" (simulator)" if d["simulator"] else ""),
             f"bit-identical to the CPU: {res['identical']}", "",
             f"{'what':<34}{'runs':>9}{'epochs':>8}{'every':>7}{'epoch-runs/s':>15}"]  # fmt: skip

    def line(what, r):
        rate = f"{r['epoch_runs_per_s']:.3g}" if "epoch_runs_per_s" in r else "-"
        text = f"{what:<34}{r['runs']:>9}{r['epochs']:>8}{r.get('every', '-'):>7}{rate:>15}"
        return text + (f"  ({r['error']})" if "error" in r else "")

    for r in res["kernel"]:
        lines.append(line(f"kernel {r['mode']}{' fastmath' if r['fastmath'] else ''}", r))
    for r in res["kernel_every_1"]:
        lines.append(line(f"kernel {r['mode']}, every loss", r))
    if isinstance(res["jax"], list):
        lines += [line(f"JAX jit(vmap(scan)) {r['mode']}", r) for r in res["jax"]]
    else:
        lines.append(f"JAX skipped: {res['jax']['skipped']}")
    lines += [line(f"runner CPU kernel {r['mode']}, one core", r) for r in res["cpu_1core"]]
    for r in res["end_to_end"]:
        lines.append(line("sweep --backend cuda + Parquet", r) + f"  {r['rows_per_s']:.3g} rows/s")
    w = res["init_weights"]
    lines.append(
        f"initial weights on the host: {w['runs_per_s']:.3g} runs/s compiled, "
        f"{w['numpy_runs_per_s']:.3g} runs/s with NumPy (same: {w['same_as_numpy']})"
    )
    lines += [f"ratio {k}: {v:.3g}" for k, v in res["ratios"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scale", type=float, default=1.0, help="workload sizes x S (simulator: 1e-4)")
    p.add_argument("--json", type=Path, default=None, help="also write the JSON here")
    args = p.parse_args(argv)
    res = run(args.scale)
    res["dask_imported"] = "dask" in sys.modules  # GPU machines have no dask: must be False
    print(table(res))
    text = json.dumps(res, indent=1)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")
    ok = all(v is True or str(v).startswith("skipped") for v in res["identical"].values())
    ok = ok and res["init_weights"]["same_as_numpy"]
    return 0 if ok and not res["dask_imported"] else 1


if __name__ == "__main__":
    sys.exit(main())
