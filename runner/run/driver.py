"""The grid driver: chunks of runs, dispatched with joblib, written by whoever trains them."""

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
from runner.results import store
from runner.results.growth import open_sweep
from runner.run import requeue
from runner.run.train import compile_note
from runner.run.units import rate
from runner.run.worker import ChunkDone, ChunkFailed, run_chunk, tasks_for, warm_up

BACKENDS = ("threading", "loky", "dask", "cuda")
DEFAULT_BACKEND = "threading"  # measured: see the note in README "Performance"


@dataclass
class SweepReport:
    out: Path
    runs: int  # runs in the sweep (every invocation's, see docs/growth.md)
    chunks: int  # chunks of this invocation (its shard, if any)
    chunks_done_before: int
    chunks_run: int
    runs_trained: int  # trained now
    diverged: int
    rows: int
    seconds: float
    runs_before: int = 0  # already there when this invocation started (the whole sweep)

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
    for var in ("SLURM_CPUS_PER_TASK", "RUNNER_JOBS"):
        if os.environ.get(var, "").isdigit() and int(os.environ[var]) > 0:
            return int(os.environ[var])
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def parse_shard(text: str | None, where: str = "--shard") -> tuple[int, int] | None:
    """``I/N`` or ``auto`` (SLURM array task id and count) -> (i, n); None for no sharding."""
    if text is None:
        return None
    if text == "auto":
        tid = os.environ.get("SLURM_ARRAY_TASK_ID")
        if tid is None:
            raise RunnerError(
                "--shard auto needs SLURM_ARRAY_TASK_ID (run it in a job array)", key=where
            )
        count = os.environ.get("SLURM_ARRAY_TASK_COUNT")
        lo = int(os.environ.get("SLURM_ARRAY_TASK_MIN", "0"))
        if count is None:
            hi = os.environ.get("SLURM_ARRAY_TASK_MAX")
            if hi is None:
                raise RunnerError("--shard auto needs SLURM_ARRAY_TASK_COUNT", key=where)
            count = str(int(hi) - lo + 1)
        i, n = int(tid) - lo, int(count)
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
) -> SweepReport:
    """Run, resume or grow a sweep: train every run not yet on disk and write its files.

    ``spec`` is a TOML file, or a dict of the same structure. ``out`` is the
    results root (default ``results``); files go to ``out/<name>/``. A spec that
    adds grid values or sample points to an existing sweep trains only the new
    runs (docs/growth.md).
    ``stop`` (see ``runner.run.requeue``): once requested, no new chunk starts, the chunks in
    flight are waited for while they fit in its grace, then ``Interrupted`` is raised.
    """
    if isinstance(spec, dict):
        spec = spec_from_dict(spec, overrides)
    elif not isinstance(spec, Spec):
        spec = load_spec(spec, overrides)
    backend = backend or os.environ.get("RUNNER_BACKEND") or DEFAULT_BACKEND
    if backend not in BACKENDS:
        raise RunnerError(f"unknown backend {backend!r}; choose one of {BACKENDS}", key="--backend")
    if backend == "dask":
        from runner.run.cluster import require_dask

        require_dask()
    jobs = default_jobs() if jobs is None else jobs
    if not isinstance(jobs, int) or jobs < 1:
        raise RunnerError(f"must be an integer >= 1, got {jobs!r}", key="--jobs")
    if spec.n_runs > MAX_RUNS and not yes:
        raise RunnerError(
            f"the grid has {spec.n_runs:,} runs (over {MAX_RUNS:,}); pass --yes to run it",
            file=spec.file,
            key="grid",
        )
    if backend == "cuda":  # no device: one line, before anything is written
        from runner.run.cuda import device_count

        device_count()
    shard_ = parse_shard(shard) if isinstance(shard, str) or shard is None else shard
    root = Path(out) if out is not None else Path("results")
    folder = root / spec.name
    plan = open_sweep(folder, spec, fresh)
    store.clean_stale_tmp(folder)

    done = set()
    for c in store.done_chunks(folder):
        if c >= plan.n_chunks:
            continue
        problem = store.check_chunk(folder, c, plan.chunk_range(c))
        if problem is None:
            done.add(c)
        else:  # damaged (e.g. a crash on a filesystem without atomic rename): recompute
            sys.stderr.write(f"runner: {problem}; recomputing chunk {c}\n")
            store.remove_chunk(folder, c)
    sizes = plan.chunk_sizes()
    # chunks holding runs of this spec (a chunk of values removed since is kept, not needed)
    needed = np.flatnonzero(plan.latest_runs() > 0).tolist()
    mine = needed if shard_ is None else [c for c in needed if c % shard_[1] == shard_[0]]
    pending = [c for c in mine if c not in done]
    costs = _costs(plan)
    pending.sort(key=lambda c: -costs[c])  # longest first: no straggler at the end
    before = len(mine) - len(pending)
    t0 = time.perf_counter()
    report = SweepReport(folder, plan.n_runs, len(mine), before, 0, 0, 0, 0, 0.0)
    report.runs_before = int(sum(sizes[c] for c in done))
    if not pending:
        report.seconds = time.perf_counter() - t0
        return report
    if backend != "cuda":
        for mode in _modes(plan, pending):
            note = None if quiet or not progress else compile_note(*mode)
            if note:
                sys.stderr.write(f"runner: {note}\n")
            warm_up(spec.loss_dtype, *mode)
    pending_runs = int(sum(sizes[c] for c in pending))
    bar = Progress(pending_runs, _mean_epochs(plan), quiet, progress)
    results = dispatch(spec, folder, pending, jobs, backend, scheduler, plan, stop)
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
        if stop is not None and stop.requested and report.chunks_run < len(pending):
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        bar.close()
        finished = len(set(mine) & store.done_chunks(folder))
        raise Interrupted(finished, len(mine)) from None
    except ChunkFailed:
        raise
    except Exception as exc:  # a worker died: name the chunks it held
        lost = store.orphaned_claims(folder)
        which = f"chunk {', '.join(map(str, lost))}" if lost else "a chunk"
        raise ChunkFailed(
            f"{which} failed: worker lost ({type(exc).__name__}); "
            "finished chunks are kept, run the same command to resume"
        ) from exc
    finally:
        bar.close()
        report.seconds = time.perf_counter() - t0
    return report


def _modes(plan: Plan, chunks: list[int]) -> list[tuple[str, bool, str, str]]:
    """The (dtype, fastmath, output, update) of these chunks: each a kernel variant."""
    cols = [plan.per_chunk(k)[chunks] for k in ("dtype", "fastmath", "output", "update")]
    return sorted({(params.DTYPES[int(d)], bool(f), params.OUTPUTS[int(o)], params.UPDATES[int(u)])
                   for d, f, o, u in zip(*cols, strict=True)})  # fmt: skip


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
    backend: str,
    scheduler: str | None,
    plan: Plan | None = None,
    stop: requeue.Graceful | None = None,
) -> Iterator[ChunkDone | None]:
    """Yield each chunk's summary as it finishes (any order); None for a chunk not started
    because ``stop`` was requested (sequential and threading; loky and Dask workers run
    what they were handed)."""
    tasks = tasks_for(spec, folder, pending, plan)
    chunk = run_chunk if stop is None else partial(requeue.unless_stopped, stop, run_chunk)
    if backend == "cuda":
        from runner.run.cuda_sweep import dispatch as cuda_dispatch

        yield from cuda_dispatch(list(tasks), writers=jobs)
        return
    if backend != "dask" and (jobs == 1 or len(pending) == 1):
        for task in tasks:  # the sequential path: also the debugging path
            yield chunk(task)
        return
    from joblib import Parallel, delayed, parallel_config

    if backend == "dask":
        from runner.run.cluster import dask_backend

        with dask_backend(scheduler, jobs):
            yield from Parallel(return_as="generator_unordered")(
                delayed(run_chunk)(t) for t in tasks
            )
        return
    extra = {"inner_max_num_threads": 1} if backend == "loky" else {}
    func = chunk if backend == "threading" else run_chunk
    with parallel_config(backend=backend, n_jobs=min(jobs, len(pending)), **extra):
        yield from Parallel(return_as="generator_unordered", pre_dispatch="2*n_jobs")(
            delayed(func)(t) for t in tasks
        )
