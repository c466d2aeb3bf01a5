"""``runner bench --workload trainability``: a learning-rate map, runner against JAX.

Both draw the map of experiments/trainability.toml (tanh, mean-field, the gradient
step, simultaneous updates, float64) over the same log grid, as whole processes on all
cores: ``runner sweep`` of the spec, and runner.bench.jax_trainability's
``jit(vmap(lax.scan))``. A point converged when ``tail_mean / first_loss < 1``. Near the
boundary training is chaotic (one ulp of the data flips 2-3% of such a grid in JAX
itself), so the two must agree on at least AGREE of the points; then the speed ratio
is printed against its target.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from runner.errors import RunnerError

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "experiments" / "trainability.toml"
AGREE = 0.95  # the share of points both must classify alike
TARGET = 3.0  # runner at least 3x JAX's speed (a stretch)
WINDOW = {"alpha_hidden": (10.0, 1e5), "alpha_output": (30.0, 1000.0)}  # across the boundary


def _log_grid(key: str, num: int) -> str:
    lo, hi = WINDOW[key]
    return f"grid.{key}={{start={lo!r},stop={hi!r},num={num},log=true}}"


def _timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        raise RunnerError(f"{' '.join(cmd[:4])}...: {lines[-1] if lines else proc.returncode}",
                          key="--workload trainability")  # fmt: skip
    return seconds


def run(grid: int = 64, steps: int = 500, log: Callable[[str], None] | None = None
        ) -> dict[str, Any]:  # fmt: skip
    """Time both maps (runner twice: its first process, then a warm one) and compare them."""
    from runner.bench.harness import has_jax
    from runner.results.analysis import load

    say = log or (lambda _m: None)
    if not SPEC.is_file():
        raise RunnerError("needs experiments/trainability.toml (a checkout of runner)",
                          key="--workload trainability")  # fmt: skip
    if not has_jax():
        raise RunnerError("needs JAX (make bench installs it)", key="--workload trainability")
    with tempfile.TemporaryDirectory(prefix="runner-bench-") as tmp:
        sets = [_log_grid("alpha_hidden", grid), _log_grid("alpha_output", grid),
                f"train.epochs={steps}"]  # fmt: skip
        args = [a for s in sets for a in ("--set", s)]
        times = []
        for i in range(2):
            which = "first" if i == 0 else "warm"
            say(f"runner sweep, {grid} x {grid} points, {steps} steps ({which})")
            out = Path(tmp) / f"runner{i}"
            times.append(_timed([sys.executable, "-m", "runner", "sweep", str(SPEC), "--out",
                                 str(out), "--quiet", *args]))  # fmt: skip
        m = load(out / "trainability").map("alpha_hidden", "alpha_output")
        say("JAX jit(vmap(lax.scan)), the same grid")
        npz = Path(tmp) / "jax.npz"
        lo_h, hi_h = WINDOW["alpha_hidden"]
        lo_o, hi_o = WINDOW["alpha_output"]
        jax_s = _timed([sys.executable, "-m", "runner.bench.jax_trainability", str(npz),
                        "--grid", str(grid), "--steps", str(steps), "--alpha-hidden", str(lo_h),
                        str(hi_h), "--alpha-output", str(lo_o), str(hi_o)])  # fmt: skip
        peer = np.load(npz)
        same_grid = np.array_equal(peer["alpha_hidden"], m.xs) and np.array_equal(
            peer["alpha_output"], m.ys
        )
        with np.errstate(invalid="ignore"):
            jax_conv = peer["ratio"] < 1.0
    agree = float(np.mean(jax_conv == m.converged))
    return {
        "grid": grid, "steps": steps, "points": grid * grid, "same_grid": same_grid,
        "runner_first_s": times[0], "runner_s": times[1], "jax_s": jax_s,
        "ratio": jax_s / times[1], "target": TARGET, "agreement": agree, "agree_min": AGREE,
        "converged_runner": float(m.converged.mean()), "converged_jax": float(jax_conv.mean()),
        "holds": agree >= AGREE and jax_s / times[1] >= TARGET,
    }  # fmt: skip


def table(r: dict[str, Any]) -> str:
    """The comparison in a few lines: times, ratio against target, agreement."""
    ok = "holds" if r["ratio"] >= r["target"] else "not met"
    agreed = "ok" if r["agreement"] >= r["agree_min"] else "TOO LOW"
    return "\n".join([
        f"trainability map: {r['grid']} x {r['grid']} points, {r['steps']} steps, float64, "
        "whole processes on all cores",
        f"  runner sweep   {r['runner_s']:8.2f} s  (first process {r['runner_first_s']:.2f} s)",
        f"  JAX            {r['jax_s']:8.2f} s",
        f"  speed ratio    {r['ratio']:8.2f}x JAX  (target >= {r['target']:.0f}x: {ok})",
        f"  agreement      {100 * r['agreement']:7.1f}%   (needs >= {100 * r['agree_min']:.0f}%: "
        f"{agreed}; converged: runner {100 * r['converged_runner']:.1f}%, "
        f"JAX {100 * r['converged_jax']:.1f}%)",
    ])  # fmt: skip
