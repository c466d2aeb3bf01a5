"""``runner bench --compile``: how soon the first result comes, in fresh processes.

Every figure runs in a new interpreter with its own ``NUMBA_CACHE_DIR``: empty for a
cold start (what a new machine, container or CI runner pays), then the same folder
again for a warm one. Beside runner: a plain ``@njit`` port of the notebook, cold and
warm, and JAX's first ``jit(vmap(scan))`` call when JAX is importable. Each figure is
printed with its target and whether it holds; the CPU seconds beside the wall-clock
ones show how much of the wall a busy machine added.

A cold exact-mode ``runner.train`` trains in NumPy while a background process compiles
its variant (``runner.run.first``): the warm figure waits for those compiles, and one
more figure is the kernel's own compile, with that path turned off.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]  # the folder that holds runner/
# The notebook's problem: 4 samples, 2 inputs, 4 hidden units, 10,000 epochs.
PROBLEM = "X = [[1, 1], [1, 2], [2, 1], [2, 2]]; Y = [[0], [1], [2], [3]]"
TIMED = """
import json, time
t0, c0 = time.perf_counter(), time.process_time()
{setup}
t1, c1 = time.perf_counter(), time.process_time()
{call}
t2, c2 = time.perf_counter(), time.process_time()
print(json.dumps({{"import": t1 - t0, "call": t2 - t1, "total": t2 - t0,
                  "call_cpu": c2 - c1, "total_cpu": c2 - c0}}))
"""
RUNNER = "import runner\n" + PROBLEM
TRAIN = "runner.train(X, Y, alpha=0.1, hidden=4, epochs=10000{kw})"
NJIT = (
    PROBLEM
    + """
import numpy as np
from numba import njit

@njit(cache=True)
def train(X, Y, Wh, Wz, alpha, epochs):
    loss = np.empty(epochs)
    for e in range(epochs):
        H = 1.0 / (1.0 + np.exp(-(X @ Wh)))
        Z = H @ Wz
        E = Y - Z
        loss[e] = (E ** 2).mean()
        dZ = E * alpha
        Wz += H.T @ dZ
        Wh += X.T @ ((dZ @ Wz.T) * H * (1.0 - H))
    return loss

X, Y = np.array(X, float), np.array(Y, float)
rng = np.random.default_rng(0)
"""
)
NJIT_CALL = "train(X, Y, rng.uniform(size=(2, 4)), rng.uniform(size=(4, 1)), 0.1, 10000)"
JAX = (
    PROBLEM
    + """
import jax, jax.numpy as jnp

def epoch(w, _):
    wh, wz = w
    h = jax.nn.sigmoid(X @ wh)
    e = Y - h @ wz
    dz = e * 0.1
    wz2 = wz + h.T @ dz
    wh2 = wh + X.T @ ((dz @ wz2.T) * h * (1 - h))
    return (wh2, wz2), (e ** 2).mean()

@jax.jit
@jax.vmap
def train(wh, wz):
    return jax.lax.scan(epoch, (wh, wz), None, length=10000)[1]

X, Y = jnp.array(X, jnp.float32), jnp.array(Y, jnp.float32)
key = jax.random.PRNGKey(0)
"""
)
JAX_CALL = (
    "train(jax.random.uniform(key, (1, 2, 4)), jax.random.uniform(key, (1, 4, 1)))"
    ".block_until_ready()"
)
# Each further variant, after the first (float64, linear, sequential) is cached.
VARIANTS = {
    "float32": ', dtype="float32"',
    "sigmoid output": ', output="sigmoid"',
    "simultaneous update": ', update="simultaneous"',
    "fastmath": ", fastmath=True",
}
TARGETS = {"cold": 5.0, "variant": 5.0, "warm": 0.5, "sweep": 10.0, "jax_ratio": 3.0}


def _child(code: str, cache: Path, timeout: float = 900, numpy_first: bool = True
           ) -> dict[str, float]:  # fmt: skip
    """Run code in a new interpreter (from a file: Numba caches only functions in files)."""
    script = cache.parent / f"child-{abs(hash(code))}.py"
    script.write_text(code)
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    env["RUNNER_NUMPY_FIRST"] = "1" if numpy_first else "0"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    r = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=timeout
    )
    if r.returncode != 0:
        raise RuntimeError(" ".join(r.stderr.split()[-30:]))
    return json.loads(r.stdout.strip().splitlines()[-1])


def _wait(cache: Path, log: Callable[[str], None], limit: float = 1800) -> None:
    """Until the background compiles that the figures started have finished (each one is
    the kernel of a variant, written to ``cache``)."""
    from runner.run.first import pending

    start = time.monotonic()
    while pending(cache) and time.monotonic() - start < limit:
        time.sleep(0.5)
    log(f"background compiles done after {time.monotonic() - start:.0f} s more")


def _jax_importable() -> bool:
    code = "import importlib.util, sys; sys.exit(importlib.util.find_spec('jax') is None)"
    return subprocess.run([sys.executable, "-c", code]).returncode == 0


def _sweep_seconds(cache: Path, work: Path) -> float:
    """``runner sweep`` of ``make sweep``'s default spec (empty cache), as a whole process."""
    spec = ROOT / "experiments" / "seed-sweep.toml"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "runner", "sweep", str(spec), "--out", str(work), "--quiet"]
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        raise RuntimeError(r.stderr.strip()[-300:])
    return time.perf_counter() - t


def run(log: Callable[[str], None] = lambda m: None, sweep: bool = True) -> dict[str, Any]:
    """Measure every figure; {name: {"seconds", "cpu", "target", "holds"}} and notes."""
    out: dict[str, Any] = {"figures": {}, "notes": []}
    with tempfile.TemporaryDirectory(prefix="runner-compile-") as tmp:
        root = Path(tmp)
        cache = root / "cache"

        def fig(name: str, r: dict, key: str, target: float | None) -> None:
            sec, cpu = r[key], r[f"{key}_cpu"]
            holds = None if target is None else sec <= target
            out["figures"][name] = {"seconds": sec, "cpu": cpu, "target": target, "holds": holds}
            log(f"{name}: {sec:.2f} s (cpu {cpu:.2f} s)")

        def train(kw: str = "", where: Path = cache, numpy_first: bool = True) -> dict:
            code = TIMED.format(setup=RUNNER, call=TRAIN.format(kw=kw))
            return _child(code, where, numpy_first=numpy_first)

        fig("cold first runner.train (empty cache)", train(), "call", TARGETS["cold"])
        for name, kw in VARIANTS.items():
            fig(f"further variant: {name}", train(kw), "call", TARGETS["variant"])
        _wait(cache, log)
        fig("warm runner.train, new process, import included", train(), "total", TARGETS["warm"])
        fig(
            "kernel compile + train, RUNNER_NUMPY_FIRST=0",
            train(where=root / "kernel-cache", numpy_first=False),
            "call",
            TARGETS["cold"],
        )
        out["notes"].append(
            "runner.train trains in NumPy (the kernel's numbers) while a variant compiles in "
            "the background (runner.run.first); fastmath and sweeps compile at once"
        )  # fmt: skip
        njit_cache = root / "njit"
        njit = TIMED.format(setup=NJIT, call=NJIT_CALL)
        fig("plain @njit notebook port, cold", _child(njit, njit_cache), "call", None)
        fig("plain @njit notebook port, warm, import included", _child(njit, njit_cache),
            "total", None)  # fmt: skip
        cold = out["figures"]["cold first runner.train (empty cache)"]["seconds"]
        if _jax_importable():
            jax = _child(TIMED.format(setup=JAX, call=JAX_CALL), root / "jax")
            fig("JAX first jit(vmap(scan)) call", jax, "call", None)
            ratio = cold / jax["call"]
            out["figures"]["cold runner.train / JAX first call"] = {
                "seconds": ratio, "cpu": None, "target": TARGETS["jax_ratio"],
                "holds": ratio <= TARGETS["jax_ratio"], "unit": "x",
            }  # fmt: skip
        else:
            out["notes"].append("JAX is not importable here: no JAX figure and no ratio "
                                "(make bench installs it)")  # fmt: skip
        if sweep:
            sec = _sweep_seconds(root / "sweep-cache", root / "out")
            out["figures"]["first `make sweep` sweep, empty cache"] = {
                "seconds": sec, "cpu": None, "target": TARGETS["sweep"],
                "holds": sec <= TARGETS["sweep"],
            }  # fmt: skip
            log(f"sweep: {sec:.1f} s")
    return out


def table(result: dict[str, Any]) -> str:
    """One line per figure: seconds, CPU seconds, target, holds."""
    lines = [f"{'figure':<52} {'wall':>9} {'cpu':>8} {'target':>9}  holds"]
    for name, f in result["figures"].items():
        unit = f.get("unit", "s")
        cpu = "" if f["cpu"] is None else f"{f['cpu']:.2f} s"
        target = "" if f["target"] is None else f"<= {f['target']:g} {unit}"
        holds = "" if f["holds"] is None else ("yes" if f["holds"] else "no")
        lines.append(f"{name:<52} {f['seconds']:>7.2f} {unit} {cpu:>8} {target:>9}  {holds}")
    return "\n".join(lines + [f"note: {n}" for n in result["notes"]])
