"""The grid driver: chunks of runs, dispatched with joblib, written by whoever trains them."""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from runner import kernels, store
from runner.errors import RunnerError
from runner.spec import KERNEL_KEYS, MAX_RUNS, Spec, load_spec
from runner.train import init_weights, run_batch

BACKENDS = ("threading", "loky", "dask")
DEFAULT_BACKEND = "threading"  # measured: see the note in README "Performance"


@dataclass
class ChunkTask:
    """Everything one chunk needs: small, picklable, independent of the rest of the sweep."""

    index: int
    out: str
    run_start: int
    run_stop: int
    params: dict[str, Any]
    axis_names: list[str]
    X: np.ndarray
    Y: np.ndarray
    every: int
    loss_dtype: str


@dataclass
class ChunkDone:
    index: int
    runs: int
    diverged: int
    rows: int
    seconds: float


@dataclass
class SweepReport:
    out: Path
    runs: int
    chunks: int
    chunks_done_before: int
    chunks_run: int
    runs_trained: int
    diverged: int
    rows: int
    seconds: float

    @property
    def complete(self) -> bool:
        return self.chunks_done_before + self.chunks_run >= self.chunks


def tasks_for(spec: Spec, out: Path, chunks: list[int]) -> Iterator[ChunkTask]:
    for c in chunks:
        start, stop = spec.chunk_range(c)
        params = spec.params(np.arange(start, stop))
        yield ChunkTask(
            c,
            str(out),
            start,
            stop,
            params,
            spec.axis_names,
            spec.X,
            spec.Y,
            spec.every,
            spec.loss_dtype,
        )


def _scalar(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value[0].item()
    if isinstance(value, list):
        return value[0]
    return value


class ChunkFailed(RuntimeError):
    """A chunk could not be trained or written; names the chunk."""


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM: finished chunks are kept."""

    def __init__(self, done: int, total: int):
        self.done, self.total = done, total
        super().__init__(
            f"interrupted: {done} of {total} chunks done, run the same command to resume"
        )


def run_chunk(task: ChunkTask) -> ChunkDone:
    """Train one chunk in one kernel call and write its files. Top-level and picklable.

    While it runs, a claim file names the chunk and this process, so that a parent
    whose worker died can say which chunk was lost.
    """
    out = Path(task.out)
    claim = store.claim(out, task.index)
    try:
        return _train_and_write(task)
    except OSError as exc:
        raise ChunkFailed(f"chunk {task.index}: {store.describe_os_error(exc)}") from None
    except Exception as exc:
        raise ChunkFailed(f"chunk {task.index}: {type(exc).__name__}: {exc}") from exc
    finally:
        store.release(claim)


def _train_and_write(task: ChunkTask) -> ChunkDone:
    t0 = time.perf_counter()
    p = task.params
    n = task.run_stop - task.run_start
    kern = {k: _scalar(p[k]) for k in KERNEL_KEYS}
    seeds = np.broadcast_to(np.asarray(p["seed"], dtype=np.int64), (n,))
    if isinstance(p["init"], list) and isinstance(p["init"][0], list):
        Wh, Wz = _init_mixed(seeds, p["init"], task, kern["hidden"])
    else:
        Wh, Wz = init_weights(
            seeds, task.X.shape[1], kern["hidden"], task.Y.shape[1], tuple(p["init"])
        )
    alpha = np.broadcast_to(np.asarray(p["alpha"], dtype=np.float64), (n,)).copy()
    res = run_batch(
        task.X,
        task.Y,
        Wh,
        Wz,
        alpha,
        kern["epochs"],
        kern["output"],
        kern["update"],
        task.every,
        kern["stop_below"],
        kern["diverge_above"],
        np.dtype(task.loss_dtype).type,
    )
    run_ids = np.arange(task.run_start, task.run_stop)
    all_cols = store.param_columns(p, n, list(p))
    axis_cols = {k: all_cols[k] for k in all_cols if k in store.axis_columns(task.axis_names)}
    losses = store.losses_table(run_ids, axis_cols, res.loss, res.istats, res.fstats, task.every)
    runs = store.runs_table(run_ids, all_cols, res.istats, res.fstats)
    store.write_chunk(Path(task.out), task.index, losses, runs)
    diverged = int(np.count_nonzero(res.istats[:, kernels.STATUS] == kernels.DIVERGED))
    return ChunkDone(task.index, n, diverged, losses.num_rows, time.perf_counter() - t0)


def _init_mixed(seeds, inits, task, hidden):
    Wh = np.empty((task.X.shape[1], hidden, len(seeds)))
    Wz = np.empty((hidden, task.Y.shape[1], len(seeds)))
    for r, (seed, init) in enumerate(zip(seeds, inits, strict=True)):
        wh, wz = init_weights([seed], task.X.shape[1], hidden, task.Y.shape[1], tuple(init))
        Wh[:, :, r], Wz[:, :, r] = wh[:, :, 0], wz[:, :, 0]
    return Wh, Wz


def warm_up(loss_dtype: str) -> None:
    """Compile (or load from cache) the kernel in this process before dispatching."""
    X = np.zeros((1, 1))
    Wh, Wz = init_weights([0], 1, 1, 1)
    run_batch(X, X, Wh, Wz, np.ones(1), 1, loss_dtype=np.dtype(loss_dtype).type)


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
    """A tqdm bar on a terminal; otherwise (or when quiet) a plain line now and then."""

    def __init__(self, total_runs: int, epochs_per_run: float, quiet: bool, enabled: bool):
        self.total = total_runs
        self.epochs = epochs_per_run
        self.enabled = enabled
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
            rate = self.done * self.epochs / max(time.perf_counter() - self.start, 1e-9)
            self.bar.set_postfix_str(f"{rate / 1e6:.1f}M epoch-runs/s", refresh=False)
            self.bar.update(runs)
            return
        now = time.perf_counter()
        if self.enabled and (now - self.last > 10 or self.done == self.total):
            self.last = now
            elapsed = now - self.start
            eta = elapsed / self.done * (self.total - self.done) if self.done else math.nan
            rate = self.done * self.epochs / max(elapsed, 1e-9) / 1e6
            sys.stderr.write(
                f"runner: {self.done}/{self.total} runs, {rate:.1f}M epoch-runs/s, eta {eta:.0f}s\n"
            )
            sys.stderr.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def sweep(
    spec: str | Path | Spec,
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
) -> SweepReport:
    """Run (or resume) a sweep: train every chunk not yet done and write its files.

    ``out`` is the results root (default ``results``); files go to ``out/<name>/``.
    """
    if not isinstance(spec, Spec):
        spec = load_spec(spec, overrides)
    backend = backend or os.environ.get("RUNNER_BACKEND") or DEFAULT_BACKEND
    if backend not in BACKENDS:
        raise RunnerError(f"unknown backend {backend!r}; choose one of {BACKENDS}", key="--backend")
    if backend == "dask":
        from runner.cluster import require_dask

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
    shard_ = parse_shard(shard) if isinstance(shard, str) or shard is None else shard
    root = Path(out) if out is not None else Path("results")
    folder = root / spec.name
    meta = store.new_meta(spec.resolved(), spec.hash, spec.n_runs, spec.n_chunks)
    store.prepare(folder, meta, fresh)
    store.clean_stale_tmp(folder)

    done = set()
    for c in store.done_chunks(folder):
        if c >= spec.n_chunks:
            continue
        problem = store.check_chunk(folder, c, spec.chunk_range(c))
        if problem is None:
            done.add(c)
        else:  # damaged (e.g. a crash on a filesystem without atomic rename): recompute
            sys.stderr.write(f"runner: {problem}; recomputing chunk {c}\n")
            store.remove_chunk(folder, c)
    mine = range(spec.n_chunks)
    if shard_ is not None:
        mine = range(shard_[0], spec.n_chunks, shard_[1])
    pending = [c for c in mine if c not in done]
    pending.sort(key=lambda c: -_cost(spec, c))  # longest first: no straggler at the end
    before = len(mine) - len(pending)
    t0 = time.perf_counter()
    report = SweepReport(folder, spec.n_runs, len(mine), before, 0, 0, 0, 0, 0.0)
    if not pending:
        report.seconds = time.perf_counter() - t0
        return report
    warm_up(spec.loss_dtype)
    pending_runs = sum(spec.chunk_range(c)[1] - spec.chunk_range(c)[0] for c in pending)
    bar = Progress(pending_runs, _mean_epochs(spec), quiet, progress)
    try:
        for res in dispatch(spec, folder, pending, jobs, backend, scheduler):
            report.chunks_run += 1
            report.runs_trained += res.runs
            report.diverged += res.diverged
            report.rows += res.rows
            bar.update(res.runs)
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


def _cost(spec: Spec, c: int) -> float:
    """Rough work of chunk c: runs x epochs x (hidden + 1)."""
    start, stop = spec.chunk_range(c)
    p = spec.params(np.array([start]))
    return (stop - start) * float(np.ravel(p["epochs"])[0]) * (float(np.ravel(p["hidden"])[0]) + 1)


def _mean_epochs(spec: Spec) -> float:
    if "epochs" in spec.grid:
        return float(np.mean(spec.axes["epochs"]))
    return float(spec.train["epochs"])


def dispatch(
    spec: Spec, folder: Path, pending: list[int], jobs: int, backend: str, scheduler: str | None
) -> Iterator[ChunkDone]:
    """Yield each chunk's summary as it finishes (any order)."""
    tasks = tasks_for(spec, folder, pending)
    if backend != "dask" and (jobs == 1 or len(pending) == 1):
        for task in tasks:  # the sequential path: also the debugging path
            yield run_chunk(task)
        return
    from joblib import Parallel, delayed, parallel_config

    if backend == "dask":
        from runner.cluster import dask_backend

        with dask_backend(scheduler, jobs):
            yield from Parallel(return_as="generator_unordered")(
                delayed(run_chunk)(t) for t in tasks
            )
        return
    extra = {"inner_max_num_threads": 1} if backend == "loky" else {}
    with parallel_config(backend=backend, n_jobs=min(jobs, len(pending)), **extra):
        yield from Parallel(return_as="generator_unordered", pre_dispatch="2*n_jobs")(
            delayed(run_chunk)(t) for t in tasks
        )
