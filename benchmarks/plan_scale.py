"""Planning ten million runs: seconds and a few arrays, never one object per run.

Prints, for a grid and for sampled points crossed with seeds (and for a growth
of each), the time to validate and plan, the time to cut every chunk and build
one chunk's columns, and the process's peak memory. Run:
``python benchmarks/plan_scale.py``.
"""

from __future__ import annotations

import time

from runner.plan.chunks import Plan, stack
from runner.plan.spec import build_spec, layer_of
from runner.run.memory import peak_rss

GRID = {
    "name": "scale",
    "train": {"epochs": 1000},
    "grid": {
        "alpha": {"start": 1e-4, "stop": 1.0, "num": 500, "log": True},
        "hidden": [2, 4, 8, 16],
        "seed": {"start": 0, "stop": 5000},
    },
}
SAMPLED = {
    "name": "scale",
    "train": {"epochs": 1000},
    "grid": {"seed": {"start": 0, "stop": 1000}},
    "sample": {
        "points": 10_000,
        "alpha": {"loguniform": [1e-4, 1.0]},
        "hidden": {"choice": [2, 4, 8, 16]},
    },
}


def peak_mib() -> float:
    return peak_rss() / 1024**2


def measure(label: str, raw: dict, grown: dict) -> None:
    t0 = time.perf_counter()
    spec = build_spec(raw, label)
    t1 = time.perf_counter()
    sizes = Plan([spec.layer]).chunk_sizes()
    chunk = spec.layer.chunk(spec.n_chunks // 2)
    t2 = time.perf_counter()
    bigger = build_spec(grown, label)
    plan = Plan(stack([layer_of(spec.resolved(), label), layer_of(bigger.resolved(), label)]))
    last = plan.chunk(plan.n_chunks - 1)
    t3 = time.perf_counter()
    assert (
        sizes.sum() == spec.n_runs
        and len(chunk.columns["seed"]) == chunk.run_stop - chunk.run_start
    )
    assert last.run_stop == plan.n_runs
    print(
        f"{label}: {spec.n_runs:,} runs in {spec.n_chunks:,} chunks: plan {t1 - t0:.2f} s, "
        f"cut every chunk and build one {t2 - t1:.2f} s; grown to {plan.n_runs:,} runs: "
        f"{t3 - t2:.2f} s; peak memory {peak_mib():.0f} MiB"
    )


def main() -> None:
    print(f"start: peak memory {peak_mib():.0f} MiB (interpreter and imports)")
    grown = {**GRID, "grid": {**GRID["grid"], "seed": {"start": 0, "stop": 5500}}}
    measure("grid", GRID, grown)
    more = {**SAMPLED, "sample": {**SAMPLED["sample"], "points": 11_000}}
    measure("sample", SAMPLED, more)


if __name__ == "__main__":
    main()
