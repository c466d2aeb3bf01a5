"""What blocking over samples could gain, and what recomputing H would cost (issue 23).

    PYTHONPATH=. python benchmarks/recompute_cost.py [--shapes 256x8x64,...] [--rounds 5]

The sequential update (the notebook's, runner's default) needs every sample's hidden
layer H after Wz's update, so blocking over samples means computing H a second time in
the backward pass. That second pass is the forward pass over the same rows, which the
kernel already runs for held-out rows: so an epoch with the training rows also given as
held-out rows, against an epoch without, is what the recompute would add. Against it,
what the memory traffic costs: the same epoch with narrower tiles (a smaller working
set, the same arithmetic). Float64 exact, one core, median ns per epoch-run over
alternating rounds; prints both as ratios to the default run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runner.kernel import tiles
from runner.run.train import run_batch

RUNS = 64
ALPHA = 1e-4  # stable on these rows (the notebook step sums over samples): no overflow


def _setup(shape: tuple[int, int, int], seed: int = 0):
    n, inputs, hidden = shape
    rng = np.random.default_rng(seed)
    X = np.hstack([rng.standard_normal((n, inputs - 1)), np.ones((n, 1))])
    Y = rng.random((n, 1))
    Wh = rng.standard_normal((inputs, hidden, RUNS)) * 0.1
    Wz = rng.standard_normal((hidden, 1, RUNS)) * 0.1
    return X, Y, Wh, Wz


def _time(shape, epochs: int, tile: int | None, held_out: bool) -> float:
    """ns per epoch-run of one kernel call (after a warm-up call)."""
    X, Y, Wh, Wz = _setup(shape)
    val = (X, Y) if held_out else None
    alpha = np.full(RUNS, ALPHA)

    def call() -> float:
        wh, wz = Wh.copy(), Wz.copy()
        t0 = time.perf_counter()
        run_batch(X, Y, wh, wz, alpha, epochs, tile=tile, validation=val, every=0)
        return time.perf_counter() - t0

    call()
    return call() / (epochs * RUNS) * 1e9


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default="64x8x32,256x8x64,1024x8x256")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    print("shape | tile | ns/epoch-run | + recompute (held-out pass) | tile / 2 | tile / 4")
    for text in args.shapes.split(","):
        shape = tuple(int(v) for v in text.split("x"))
        n, inputs, hidden = shape
        tile = tiles.choose_tile(n, inputs, hidden, 1, "float64")
        epochs = max(5, int(4e8 // (n * inputs * hidden * RUNS)))  # about 0.3 s a call
        cases = {"base": (tile, False), "recompute": (tile, True)}
        for k in (2, 4):
            if tile // k >= min(tiles.TILES):
                cases[f"/{k}"] = (tile // k, False)
        times: dict[str, list[float]] = {k: [] for k in cases}
        for r in range(args.rounds):
            order = list(cases) if r % 2 == 0 else list(reversed(cases))
            for k in order:
                times[k].append(_time(shape, epochs, *cases[k]))
        med = {k: statistics.median(v) for k, v in times.items()}
        cells = [f"{med[k] / med['base']:.2f}x" if k in med else "-"
                 for k in ("recompute", "/2", "/4")]  # fmt: skip
        print(f"{text} | {tile} | {med['base']:.0f} | " + " | ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
