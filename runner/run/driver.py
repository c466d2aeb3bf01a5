"""The sweep: plan, resume, dispatch the pending chunks to a backend (runner.run.backends)
and count what the workers wrote."""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from runner.errors import RunnerError
from runner.plan import params
from runner.plan.chunks import Plan
from runner.plan.spec import MAX_RUNS, Spec, load_spec, spec_from_dict
from runner.results import claims, store
from runner.results.growth import open_sweep
from runner.run import budget, interrupts, memory, requeue
from runner.run.backends import Backend, get_backend
from runner.run.shared_cache import warming
from runner.run.slurm_env import JobEnvironment
from runner.run.units import rate
from runner.run.worker import ChunkDone, ChunkFailed, run_chunk, tasks_for


@dataclass
class SweepReport:
    out: Path
    runs: int  # runs in the sweep (every invocation's, see docs/growth.md)
    chunks: int  # chunks of this invocation (its shard, if any)
    chunks_done_before: int
    runs_before: int  # already there when this invocation started (the whole sweep)
    chunks_run: int = 0
    runs_trained: int = 0  # trained now
    diverged: int = 0
    rows: int = 0
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        return self.chunks_done_before + self.chunks_run >= self.chunks


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM: finished chunks are kept."""

    def __init__(self, done: int, total: int):
        self.done, self.total = done, total
        super().__init__(
            f"interrupted: {done} of {total} chunks done, run the same command to resume"
        )


def default_jobs() -> int:
    """Workers: SLURM's CPUs per task, else $RUNNER_JOBS, else the CPUs this process may use."""
    cpus = JobEnvironment.read().cpus_per_task
    if cpus:
        return cpus
    if os.environ.get("RUNNER_JOBS", "").isdigit() and int(os.environ["RUNNER_JOBS"]) > 0:
        return int(os.environ["RUNNER_JOBS"])
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def parse_shard(text: str | None, where: str = "--shard") -> tuple[int, int] | None:
    """``I/N`` or ``auto`` (SLURM array task id and count) -> (i, n); None for no sharding."""
    if text is None:
        return None
    if text == "auto":
        i, n = JobEnvironment.read().shard(where)
    else:
        left, sep, right = text.partition("/")
        if not sep or not left.isdigit() or not right.isdigit():
            raise RunnerError(f"expects I/N (like 0/4) or auto, got {text!r}", key=where)
        i, n = int(left), int(right)
    if n < 1 or not 0 <= i < n:
        raise RunnerError(f"needs 0 <= I < N, got {i}/{n}", key=where)
    return i, n


class Progress:
    """A tqdm bar on a terminal, otherwise a plain line now and then; nothing when quiet
    or not enabled."""

    def __init__(self, total_runs: int, epochs_per_run: float, quiet: bool, enabled: bool):
        self.total = total_runs
        self.epochs = epochs_per_run
        self.enabled = enabled and not quiet
        self.bar = None
        self.start = time.perf_counter()
        self.last = self.start
        self.done = 0
        if enabled and not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total_runs, unit="run", dynamic_ncols=True, smoothing=0.1)

    def update(self, runs: int) -> None:
        self.done += runs
        if self.bar is not None:
            elapsed = time.perf_counter() - self.start
            self.bar.set_postfix_str(rate(self.done * self.epochs, elapsed, "epoch-runs"), False)
            self.bar.update(runs)
            return
        now = time.perf_counter()
        if self.enabled and (now - self.last > 10 or self.done == self.total):
            self.last = now
            elapsed = now - self.start
            eta = elapsed / self.done * (self.total - self.done) if self.done else math.nan
            speed = rate(self.done * self.epochs, elapsed, "epoch-runs")
            sys.stderr.write(f"runner: {self.done}/{self.total} runs, {speed}, eta {eta:.0f}s\n")
            sys.stderr.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def check_backend(chosen: Backend, spec: Spec) -> None:
    """Refuse, before anything is written, what the backend cannot run here."""
    chosen.check()
    held = "data.validation" if spec.holdout is not None else None
    held = "data.kfold" if spec.folds is not None else held
    if (held or spec.metrics) and not chosen.held_out:
        raise RunnerError(
            f"held-out rows and metrics are not yet kept by the {chosen.name} backend; use "
            "the CPU's (--backend process)",
            file=spec.file,
            key=held or "record.metrics",
        )


def sweep(
    spec: str | Path | dict | Spec,
    *,
    out: str | Path | None = None,
    jobs: int | None = None,
    backend: str | None = None,
    scheduler: str | None = None,
    shard: str | tuple[int, int] | None = None,
    overrides: list[str] | None = None,
    fresh: bool = False,
    quiet: bool = False,
    progress: bool = True,
    yes: bool = False,
    stop: requeue.Graceful | None = None,
    max_memory: str | int | None = None,
) -> SweepReport:
    """Run, resume or grow a sweep: train every run not yet on disk and write its files.

    ``spec`` is a TOML file, or a dict of the same structure. ``out`` is the
    results root (default ``results``); files go to ``out/<name>/``. A spec that
    adds grid values or sample points to an existing sweep trains only the new
    runs (docs/growth.md). ``backend`` is a name of ``runner.run.backends``.
    ``stop`` (see ``runner.run.requeue``): once requested, no new chunk starts, the chunks in
    flight are waited for while they fit in its grace, then ``Interrupted`` is raised.
    ``max_memory`` (bytes, or like "400M"): the memory budget (runner.run.budget); by default
    a safe share of what the machine allows.
    """
    if isinstance(spec, dict):
        spec = spec_from_dict(spec, overrides)
    elif not isinstance(spec, Spec):
        spec = load_spec(spec, overrides)
    chosen = get_backend(backend or os.environ.get("RUNNER_BACKEND"), scheduler)
    jobs = default_jobs() if jobs is None else jobs
    if not isinstance(jobs, int) or jobs < 1:
        raise RunnerError(f"must be an integer >= 1, got {jobs!r}", key="--jobs")
    if spec.n_runs > MAX_RUNS and not yes:
        raise RunnerError(
            f"the grid has {spec.n_runs:,} runs (over {MAX_RUNS:,}); pass --yes to run it",
            file=spec.file,
            key="grid",
        )
    check_backend(chosen, spec)
    shard_ = parse_shard(shard) if isinstance(shard, str) or shard is None else shard
    folder = (Path(out) if out is not None else Path("results")) / spec.name
    if chosen.cpu_kernels:  # the kernels' settings from the environment (Numba loads here)
        from runner.kernel import numba_ext, tiles

        tiles.env_tile()
        numba_ext.vector_width()
    with warming():  # its calibration and pilot are the first to use the kernels
        sizing = budget.before_sweep(spec, folder, fresh=fresh, jobs=jobs, backend=chosen.name,
                                     shard=shard_, max_memory=max_memory, quiet=quiet)  # fmt: skip
    plan = open_sweep(folder, spec, fresh)
    store.clean_stale_tmp(folder)
    done = _done_chunks(folder, plan, spec.every, spec.weights != "none")
    sizes = plan.chunk_sizes()
    # chunks holding runs of this spec (a chunk of values removed since is kept, not needed)
    mine = np.flatnonzero(plan.latest_runs() > 0).tolist()
    if shard_ is not None:
        mine = [c for c in mine if c % shard_[1] == shard_[0]]
    costs = _costs(plan)
    pending = sorted((c for c in mine if c not in done), key=lambda c: -costs[c])
    # longest first: no straggler at the end
    report = SweepReport(folder, runs=plan.n_runs, chunks=len(mine),
                         chunks_done_before=len(mine) - len(pending),
                         runs_before=int(sum(sizes[c] for c in done)))  # fmt: skip
    t0 = time.perf_counter()
    try:
        if pending:
            chosen = chosen.for_work(jobs, len(pending))
            chosen.warm_up(spec.loss_dtype, _modes(plan, pending, spec), quiet or not progress)
            bar = Progress(int(sum(sizes[c] for c in pending)), _mean_epochs(plan), quiet,
                           progress)  # fmt: skip
            results = dispatch(spec, folder, pending, jobs, chosen, plan, stop, sizing)
            _collect(results, report, bar, stop, folder, mine, len(pending), sizing)
    finally:
        report.seconds = time.perf_counter() - t0
    if pending:
        budget.after_sweep(spec, sizing, report.rows, report.seconds)
    return report


def _done_chunks(folder: Path, plan: Plan, every: int = 1, weights: bool = False) -> set[int]:
    """The chunks of the plan whose files are whole; damaged ones are removed."""
    done = set()
    for c in store.done_chunks(folder):
        if c >= plan.n_chunks:
            continue
        problem = store.check_chunk(folder, c, plan.chunk_range(c), every, weights)
        if problem is None:
            done.add(c)
        else:  # damaged (e.g. a crash on a filesystem without atomic rename): recompute
            sys.stderr.write(f"runner: {problem}; recomputing chunk {c}\n")
            store.remove_chunk(folder, c)
    return done


def _collect(results: Iterator[ChunkDone | None], report: SweepReport, bar: Progress,
             stop: requeue.Graceful | None, folder: Path, mine: list[int], pending: int,
             sizing: budget.Sizing | None = None
             ) -> None:  # fmt: skip
    """Count each chunk's summary into the report as it comes; a stop or a lost worker
    ends the sweep with ``Interrupted`` or ``ChunkFailed``."""
    if stop is not None:  # a helper thread draws the results; this one watches the clock
        results = requeue.drain(results, stop, fatal=(ChunkFailed,))
    try:
        for res in results:
            if res is None:  # not started: a stop was requested
                continue
            report.chunks_run += 1
            report.runs_trained += res.runs
            report.diverged += res.diverged
            report.rows += res.rows
            bar.update(res.runs)
            if interrupts.seen():  # one raised in a __del__ was dropped
                raise KeyboardInterrupt
        if stop is not None and stop.requested and report.chunks_run < pending:
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        bar.close()
        finished = len(set(mine) & store.done_chunks(folder))
        raise Interrupted(finished, len(mine)) from None
    except ChunkFailed:
        raise
    except Exception as exc:  # a worker died: name the chunks it held
        how = f"worker lost ({type(exc).__name__}{memory.killed(exc)})"
        lost = claims.orphaned_claims(folder)
        needs = sizing.cost.worker_bytes if sizing is not None else None
        raise ChunkFailed(memory.out_of_memory(lost, needs, how)) from exc
    finally:
        bar.close()


def _modes(plan: Plan, chunks: list[int], spec: Spec) -> list[tuple]:
    """The (dtype, fastmath, output, update, activation, held_out) of these chunks: each a
    kernel variant."""
    keys = ("dtype", "fastmath", "output", "update", "activation")
    cols = [plan.per_chunk(k)[chunks] for k in keys]
    held = spec.holdout is not None or spec.folds is not None
    return sorted({(params.DTYPES[int(d)], bool(f), params.OUTPUTS[int(o)], params.UPDATES[int(u)],
                    params.ACTIVATIONS[int(a)], held)
                   for d, f, o, u, a in zip(*cols, strict=True)})  # fmt: skip


def _costs(plan: Plan) -> np.ndarray:
    """Rough work of each chunk: runs x epochs x (hidden + 1)."""
    epochs = plan.per_chunk("epochs").astype(np.float64)
    hidden = plan.per_chunk("hidden").astype(np.float64)
    return plan.chunk_sizes() * epochs * (hidden + 1)


def _mean_epochs(plan: Plan) -> float:
    total = runs = 0.0
    for layer in plan.layers:
        if "epochs" in layer.fixed:
            total += layer.n_runs * float(layer.fixed["epochs"])
        else:
            for f in layer.factors:
                if "epochs" in f:
                    total += layer.n_runs * float(f["epochs"].mean())
        runs += layer.n_runs
    return total / runs if runs else 0.0


def dispatch(
    spec: Spec,
    folder: Path,
    pending: list[int],
    jobs: int,
    backend: Backend,
    plan: Plan | None = None,
    stop: requeue.Graceful | None = None,
    sizing: budget.Sizing | None = None,
) -> Iterator[ChunkDone | None]:
    """Yield each chunk's summary as it finishes (any order); None for a chunk not started
    because ``stop`` was requested (backends that support it; the others run what they
    were handed)."""
    tasks = budget.with_tiles(tasks_for(spec, folder, pending, plan), sizing)
    chunk = run_chunk
    if stop is not None and backend.supports_stop:
        chunk = partial(requeue.unless_stopped, stop, run_chunk)
    yield from backend.dispatch(tasks, len(pending), jobs, chunk)
