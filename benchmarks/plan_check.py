"""The plan's estimates against what the sweep then uses: peak RSS, disk and time.

Runs ``runner plan --json`` and then ``runner sweep`` (each in a fresh interpreter) for
the seed sweep, a 100k-run sweep and a wide problem (64 inputs x 1,024 hidden), and
prints estimate, actual and their ratio. Run: ``python benchmarks/plan_check.py
[--quick] [--jobs N]`` (``--quick``: the seed sweep only).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "experiments" / "seed-sweep.toml"
MEASURE = (
    "import sys; from runner.cli import main; from runner.run.memory import peak_rss; "
    "rc = main(sys.argv[1:]); print(peak_rss()); sys.exit(rc)"
)


def _env() -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


def wide(folder: Path) -> Path:
    rng = np.random.default_rng(1)
    X = rng.uniform(-1, 1, (256, 64))
    np.savez(folder / "wide.npz", X=X, Y=X[:, :1] * 0.5)
    spec = folder / "wide.toml"
    spec.write_text(
        'name = "wide"\n[data]\npath = "wide.npz"\n[train]\nhidden = 1024\nepochs = 30\n'
        "[grid]\nalpha = [1e-6]\nseed = { start = 0, stop = 128 }\n"
    )
    return spec


def check(name: str, spec: Path, out: Path, args: list[str]) -> dict[str, tuple[float, float]]:
    cmd = [sys.executable, "-m", "runner", "plan", str(spec), "--out", str(out), "--json", *args]
    plan = subprocess.run(cmd, env=_env(), capture_output=True, text=True, check=True)
    est = json.loads(plan.stdout)["cost"]
    t0 = time.perf_counter()
    cmd = [sys.executable, "-c", MEASURE, "sweep", str(spec), "--out", str(out), "--quiet", *args]
    run = subprocess.run(cmd, env=_env(), capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - t0
    folder = next(out.iterdir())
    disk = sum(p.stat().st_size for sub in ("losses", "runs") for p in (folder / sub).iterdir())
    peak = int(run.stdout.strip().splitlines()[-1])
    found = {"peak RSS": (est["peak_bytes"], peak), "disk": (est["disk_bytes"], disk),
             "time": (est["seconds"], seconds)}  # fmt: skip
    for what, (e, a) in found.items():
        unit = "s" if what == "time" else "MiB"
        scale = 1 if what == "time" else 1 << 20
        sys.stdout.write(f"{name:10} {what:9} estimate {e / scale:9.1f} {unit:3} actual "
                         f"{a / scale:9.1f} {unit:3} ratio {e / a:5.2f}\n")  # fmt: skip
    return found


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--jobs", default="2")
    a = p.parse_args()
    jobs = ["--jobs", a.jobs]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        check("seed", SEED, root / "seed", jobs)
        if a.quick:
            return
        big = ["--set", "grid.seed={start=0,stop=5000}", "--set", "train.epochs=300"]
        check("100k runs", SEED, root / "100k", jobs + big)
        check("wide", wide(root), root / "wide", jobs)


if __name__ == "__main__":
    main()
