"""How a sweep's chunks are dispatched: one class per backend behind one protocol, and
the registry that names them (joblib's ParallelBackendBase and
register_parallel_backend are the model).

A backend is made from its options (``scheduler``), checked before anything is
written, asked which backend runs a given amount of work (a pool of one worker runs
sequentially), warmed up, and then dispatches the chunk tasks, yielding each chunk's
summary as it finishes, in any order. Only this module knows the backends' names:
everything else asks the registry and the capability flags.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, ClassVar

from runner.errors import RunnerError

if TYPE_CHECKING:
    from runner.run.worker import ChunkDone, ChunkTask

    Chunk = Callable[[ChunkTask], ChunkDone | None]

DEFAULT_BACKEND = "threading"  # measured: see the note in README "Performance"


class Backend:
    """The protocol. Subclasses set ``name`` and the flags, and define ``dispatch``."""

    name: ClassVar[str] = ""
    help: ClassVar[str] = ""
    # chunks not yet started when a stop is requested are skipped (the chunk function
    # given to dispatch may return None); the others run what they were handed
    supports_stop: ClassVar[bool] = False
    # trains with the CPU kernels: compile them in this process before dispatching
    cpu_kernels: ClassVar[bool] = True
    # each worker is a process of its own (its memory counts apart from this one's)
    processes: ClassVar[bool] = False
    # trains with held-out rows ([data] validation) and patience
    held_out: ClassVar[bool] = True

    def __init__(self, scheduler: str | None = None):
        self.scheduler = scheduler

    def check(self) -> None:
        """Refuse what cannot run here (a missing extra, no device) with a RunnerError,
        before anything is written."""

    def for_work(self, jobs: int, chunks: int) -> Backend:
        """The backend that runs ``chunks`` chunks on ``jobs`` workers: this one."""
        return self

    def warm_up(self, loss_dtype: str, modes: Iterable[tuple[str, bool, str, str, str]],
                quiet: bool = True) -> None:  # fmt: skip
        """Compile (or load from cache) the kernels of these (dtype, fastmath, output,
        update, activation) variants; unless ``quiet``, say so when one is not cached yet."""
        if self.cpu_kernels:
            from runner.run.shared_cache import warming
            from runner.run.train import compile_note
            from runner.run.worker import warm_up

            with warming():  # a shared cache: compile once per CPU model, under a lock
                for mode in modes:
                    note = None if quiet else compile_note(*mode)
                    if note:
                        sys.stderr.write(f"runner: {note}\n")
                    warm_up(loss_dtype, *mode)

    def dispatch(self, tasks: Iterable[ChunkTask], chunks: int, jobs: int, chunk: Chunk
                 ) -> Iterator[ChunkDone | None]:  # fmt: skip
        """``chunk(task)`` for each of the ``chunks`` tasks on ``jobs`` workers; each
        result as it finishes."""
        raise NotImplementedError


# this process's warm-ups by warm_once: (loss_dtype, dtype, fastmath, output, update) -> when
WARMED: dict[tuple, float] = {}


def warm_once(loss_dtype: str, modes: list[tuple[str, bool, str, str]]) -> int:
    """Warm the variants this process has not warmed yet (a Dask worker, through
    ``client.run``); how many it warmed now."""
    todo = [m for m in modes if (loss_dtype, *m) not in WARMED]
    if todo:
        Backend().warm_up(loss_dtype, todo)
        WARMED.update({(loss_dtype, *m): time.time() for m in todo})
    return len(todo)


def warmed() -> dict[tuple, float]:
    """This process's warm-ups by warm_once (read on each worker by ``client.run``)."""
    return dict(WARMED)


BACKENDS: dict[str, type[Backend]] = {}


def register_backend(cls: type[Backend]) -> type[Backend]:
    """Add a backend class to the registry (and so to ``--backend``'s choices)."""
    BACKENDS[cls.name] = cls
    return cls


def names() -> list[str]:
    return list(BACKENDS)


def get_backend(name: str | None, scheduler: str | None = None) -> Backend:
    """The backend called ``name`` (None: the default), made with its options."""
    cls = BACKENDS.get(name or DEFAULT_BACKEND)
    if cls is None:
        raise RunnerError(
            f"unknown backend {name!r}; choose one of {tuple(BACKENDS)}", key="--backend"
        )
    return cls(scheduler)


@register_backend
class Sequential(Backend):
    """One chunk after another in this process: also the debugging path."""

    name = "sequential"
    help = "one chunk after another in this process"
    supports_stop = True

    def dispatch(self, tasks, chunks, jobs, chunk):
        for task in tasks:
            yield chunk(task)


class _Pool(Backend):
    """A joblib backend of local workers; one worker, or one chunk, runs sequentially."""

    joblib_options: ClassVar[dict] = {}

    def for_work(self, jobs: int, chunks: int) -> Backend:
        return Sequential(self.scheduler) if jobs == 1 or chunks == 1 else self

    def dispatch(self, tasks, chunks, jobs, chunk):
        from joblib import Parallel, delayed, parallel_config

        n_jobs = min(jobs, chunks)
        with parallel_config(backend=self.name, n_jobs=n_jobs, **self.joblib_options):
            yield from Parallel(return_as="generator_unordered", pre_dispatch="2*n_jobs")(
                delayed(chunk)(t) for t in tasks
            )


@register_backend
class Threading(_Pool):
    name = "threading"
    help = "threads of this process (the kernel releases the GIL)"
    supports_stop = True


@register_backend
class Loky(_Pool):
    name = "loky"
    help = "worker processes"
    processes = True
    joblib_options: ClassVar[dict] = {"inner_max_num_threads": 1}


@register_backend
class Dask(Backend):
    """A ``distributed`` cluster (``scheduler``, $DASK_SCHEDULER_ADDRESS or a local one)."""

    name = "dask"
    help = "a Dask cluster (--scheduler; runner[dask])"
    processes = True
    variants: tuple[str, list] | None = None  # (loss_dtype, modes) of warm_up, for the workers

    def check(self) -> None:
        from runner.run.cluster import require_dask

        require_dask()

    def warm_up(self, loss_dtype, modes, quiet=True):
        """Here (filling the cache the workers load), and each worker once in dispatch."""
        self.variants = (loss_dtype, list(modes))
        super().warm_up(loss_dtype, self.variants[1], quiet)

    def dispatch(self, tasks, chunks, jobs, chunk):
        from joblib import Parallel, delayed

        from runner.run.cluster import dask_backend

        with dask_backend(self.scheduler, jobs) as client:
            if self.variants:  # every worker at once, each once
                client.run(warm_once, *self.variants)
            yield from Parallel(return_as="generator_unordered")(delayed(chunk)(t) for t in tasks)


@register_backend
class Cuda(Backend):
    """The visible CUDA devices; ``jobs`` threads write the files (runner.run.cuda_sweep)."""

    name = "cuda"
    help = "the visible GPUs (runner[cuda])"
    cpu_kernels = False
    held_out = False  # not yet in the CUDA kernel

    def check(self) -> None:
        from runner.run import cuda

        cuda.device_count()  # no device: one line, before anything is written

    def dispatch(self, tasks, chunks, jobs, chunk):
        from runner.run.cuda_sweep import dispatch

        yield from dispatch(list(tasks), writers=jobs)
