"""Memory and disk budgets, checked before anything is written (docs/guarantees.md).

The memory budget (``--max-memory``) defaults to a safe share of what this machine
allows: ``MemAvailable``, the cgroup's limit, or SLURM's ``--mem`` inside a job,
whichever is least. It may narrow only the kernel's tile, never the chunks (they depend
on the spec alone); every tile gives the same bytes. Free disk is checked against the
estimate: a warning under twice, exit 2 under it.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runner.errors import RunnerError
from runner.plan import cost
from runner.plan import params as P
from runner.plan.chunks import Plan
from runner.plan.cost import Cost, size
from runner.plan.spec import Spec
from runner.results import store
from runner.results.growth import open_sweep
from runner.run import calibrate
from runner.run.backends import get_backend
from runner.run.memory import memory_budget


@dataclass
class Sizing:
    """A sweep's plan of cost, made before anything is written."""

    cost: Cost
    tiles: dict[int, int]  # chunk -> runs per kernel tile under the budget
    flops: float = 0.0  # the kernel's arithmetic of these chunks, every epoch run
    modes: tuple[tuple[str, bool], ...] = ()  # their (dtype, fastmath)
    kernel_flops_per_s: float = 0.0  # the calibration's rate

    def tile(self, chunk: int) -> int | None:
        return self.tiles.get(chunk, min(self.tiles.values()) if self.tiles else None)


def modes(plan: Plan, chunks: list[int]) -> list[tuple[str, bool]]:
    """The (dtype, fastmath) pairs of these chunks."""
    d = plan.per_chunk("dtype")[chunks]
    f = plan.per_chunk("fastmath")[chunks]
    return sorted({(P.DTYPES[int(a)], bool(b)) for a, b in zip(d, f, strict=True)})


SMALL_SECONDS = 10.0  # a sweep estimated under this, pilot aside, runs without a pilot


def plan_cost(spec: Spec, folder: Path, *, fresh: bool = False, jobs: int = 1,
              backend: str = "threading", shard: tuple[int, int] | None = None,
              max_memory: str | int | None = None, small_pilot: bool = True) -> Sizing:  # fmt: skip
    """The cost of what ``runner sweep`` would train now (nothing written); RunnerError
    when even the narrowest tile does not fit the memory budget. Without ``small_pilot``,
    a small sweep (``_small``) skips the pilot, and the calibration when this machine has
    none yet and the sweep is small even at a cautious rate: they would cost more than
    they tell."""
    budget, source = memory_budget(max_memory)
    plan = open_sweep(folder, spec, fresh, write=False)
    done = set() if fresh else store.done_chunks(folder)
    needed = np.flatnonzero(plan.latest_runs() > 0).tolist()
    mine = needed if shard is None else [c for c in needed if c % shard[1] == shard[0]]
    pending = [c for c in mine if c not in done]
    kinds = modes(plan, pending or mine)
    kind = get_backend(backend)
    # device memory is the device's: no tile to narrow here
    limit = budget if kind.cpu_kernels else None
    if not small_pilot and not calibrate.calibrated(kinds):  # small even at a cautious rate?
        m = calibrate.cautious()
        est = cost.estimate(spec, plan, m, jobs=jobs, per_process=kind.processes,
                            chunks=pending, budget=limit, budget_source=source)  # fmt: skip
        if _small(est, m, folder, limit):
            work = cost.flops(spec, cost.Chunks.of(plan, spec.every, pending))
            tiles_of = dict(zip(pending, est.tiles.tolist(), strict=True))
            return Sizing(est, tiles_of, work, tuple(kinds), m.kernel_flops_per_s)
    m = calibrate.measured(spec, kinds)
    if limit is not None and m.base_rss >= limit:
        need = f"({size(m.base_rss)} with its kernels loaded)"
        given = size(limit) if source == "--max-memory" else f"{size(limit)} ({source})"
        raise RunnerError(f"{given} is less than a sweep process needs {need}",
                          key="--max-memory")  # fmt: skip
    est = cost.estimate(spec, plan, m, jobs=jobs, per_process=kind.processes, chunks=pending,
                        budget=limit, budget_source=source)  # fmt: skip
    if pending and not (not small_pilot and _small(est, m, folder, limit)):
        # the pilot (a few runs, in the narrowest tile) only once a worker fits
        calibrate.pilot(
            spec, m, est.tile, int(cost.Chunks.of(plan, spec.every, pending).runs.max())
        )
        est = cost.estimate(spec, plan, m, jobs=jobs, per_process=kind.processes, chunks=pending,
                            budget=limit, budget_source=source)  # fmt: skip
    work = cost.flops(spec, cost.Chunks.of(plan, spec.every, pending))
    tiles_of = dict(zip(pending, est.tiles.tolist(), strict=True))
    return Sizing(est, tiles_of, work, tuple(kinds), m.kernel_flops_per_s)


def _small(c: Cost, m: cost.Measured, folder: Path, budget: int | None) -> bool:
    """Whether a sweep is too small for a pilot to pay: under SMALL_SECONDS of training and
    writing (at typical rates), under a quarter of the free disk at typical bytes, and
    under half the memory budget."""
    writing = c.loss_rows * calibrate.WRITE_NS_PER_ROW * 1e-9 / c.workers
    roomy = budget is None or 2 * c.peak_bytes < budget
    fast = c.seconds - m.startup_s + writing < SMALL_SECONDS
    return fast and roomy and 4 * c.disk_bytes < _free(folder)[1]


def _free(folder: Path) -> tuple[Path, int]:
    """The nearest existing folder at or above ``folder``, and its disk's free bytes."""
    where = folder
    while not where.exists() and where != where.parent:
        where = where.parent
    return where, shutil.disk_usage(where).free


def check_disk(c: Cost, folder: Path) -> None:
    """Exit 2 (RunnerError) when the results' disk has less free room than the estimate;
    warn when it has less than twice."""
    where, free = _free(folder)
    need = c.disk_bytes
    if free < need:
        raise RunnerError(
            f"needs about {size(need)} for losses/ and runs/, but {where} has "
            f"{size(free)} free", key="disk")  # fmt: skip
    if free < 2 * need:
        sys.stderr.write(f"runner: warning: {where} has {size(free)} free, less than twice "
                         f"the {size(need)} this sweep is estimated to write\n")  # fmt: skip


def before_sweep(spec: Spec, folder: Path, *, fresh: bool, jobs: int, backend: str,
                 shard: tuple[int, int] | None, max_memory: str | int | None,
                 quiet: bool) -> Sizing:  # fmt: skip
    """The budget checks of ``runner sweep``, before anything is written; a large sweep's
    one-line summary (past an hour or 10 GiB of disk)."""
    sizing = plan_cost(spec, folder, fresh=fresh, jobs=jobs, backend=backend, shard=shard,
                       max_memory=max_memory, small_pilot=False)  # fmt: skip
    check_disk(sizing.cost, folder)
    if sizing.cost.big and not quiet:
        sys.stderr.write(f"runner: plan: {sizing.cost.summary()}\n")
    return sizing


def with_tiles(tasks: Iterable, sizing: Sizing | None) -> Iterator:
    """Each chunk's task with its tile under the budget."""
    for task in tasks:
        if sizing is not None:
            task.tile = sizing.tile(task.index)
        yield task


MIN_SECONDS = 2.0  # a sweep of less kernel work (at the calibrated rate) keeps no rate


def after_sweep(spec: Spec, sizing: Sizing, rows: int, seconds: float) -> None:
    """Keep this sweep's measured rate, one worker's, for the next plan of its variant:
    its arithmetic (scaled by the share of loss rows written) over its time and workers."""
    c = sizing.cost
    if not (rows and seconds >= MIN_SECONDS and c.loss_rows and sizing.flops):
        return
    work = sizing.flops * min(1.0, rows / c.loss_rows)
    if work < MIN_SECONDS * sizing.kernel_flops_per_s:  # mostly start-up, writing or waiting
        return
    rate = work / (seconds * c.workers)
    for dtype, fastmath in sizing.modes:
        calibrate.record_sweep(spec, dtype, fastmath, rate)
