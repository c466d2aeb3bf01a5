"""Time limits and preemption: stop at a chunk boundary, then put the task back in the queue.

``runner slurm --requeue`` writes ``#SBATCH --signal=B:USR1@S`` and execs runner as the
batch shell, so S seconds before the time limit SLURM sends USR1 to runner itself. On
USR1, or on SIGTERM from a preemption, the sweep takes no new chunk and waits for the
chunks in flight while they fit in the grace (what is not written by then is abandoned:
files appear whole or not at all). Then the task requeues itself with
``scontrol requeue JOB_TASK`` while fewer than K requeues have happened
(``SLURM_RESTART_COUNT``); past K it exits 130 with the resume hint.

A SIGTERM without a preemption (``scancel``, a node going down) stops the task the same
way but never requeues it: a person cancelled it.
"""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from runner.run.slurm_env import JobEnvironment, config, config_number, scontrol

T = TypeVar("T")

DEFAULT_GRACE = 120  # seconds between USR1 and the time limit (#SBATCH --signal=B:USR1@S)
DEFAULT_MAX_REQUEUES = 3
STOP_SIGNALS = (signal.SIGUSR1, signal.SIGTERM)


@dataclass
class Graceful:
    """A stop request from a signal, and how long the chunks in flight may still take."""

    grace: float = DEFAULT_GRACE  # seconds from USR1 to the time limit
    term_grace: float | None = None  # seconds from SIGTERM to SIGKILL (SLURM's KillWait)
    signal: str | None = None  # the signal that asked to stop, e.g. "SIGUSR1"
    deadline: float = float("inf")  # time.monotonic() by which to give up on chunks in flight
    abandoned: bool = False  # chunks in flight were given up at the deadline
    event: threading.Event = field(default_factory=threading.Event)
    started: dict[int, float] = field(default_factory=dict)  # chunk -> start, in this process

    def request(self, signame: str) -> None:
        """Stop taking chunks; the first request sets the deadline."""
        if self.event.is_set():
            return
        self.signal = signame
        self.deadline = time.monotonic() + self.budget
        self.event.set()

    @property
    def budget(self) -> float:
        """Seconds the chunks in flight get: the grace less a reserve for requeue and exit."""
        grace = self.grace
        if self.signal == "SIGTERM" and self.term_grace is not None:
            grace = min(grace, self.term_grace)
        return grace - min(10.0, grace / 4)

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    def give_up(self, chunk_seconds: float | None) -> bool:
        """True once the chunks in flight cannot be finished in the grace.

        ``chunk_seconds`` is the mean time of a chunk in this run, if any finished yet.
        """
        if not self.requested:
            return False
        now = time.monotonic()
        if now >= self.deadline:
            return True
        if chunk_seconds is None:
            return False
        return any(t + chunk_seconds > self.deadline for t in list(self.started.values()))


def unless_stopped(stop: Graceful, func: Callable[[Any], T], task: Any) -> T | None:
    """``func(task)`` unless a stop was requested (then None); ``task.index`` names it."""
    if stop.requested:
        return None
    stop.started[task.index] = time.monotonic()
    try:
        return func(task)
    finally:
        stop.started.pop(task.index, None)


def drain(
    results: Iterator[T], stop: Graceful, fatal: tuple[type[BaseException], ...] = ()
) -> Iterator[T]:
    """``results`` drawn by a helper thread, so that this thread can act on a stop request
    and give up the work in flight once it no longer fits in the grace: then (and when
    the workers die after a stop, with an error not in ``fatal``) KeyboardInterrupt is
    raised with ``stop.abandoned`` set. Items with ``.seconds`` time the estimate."""
    # not SimpleQueue: its get(timeout) on 3.11 and 3.12, interrupted by a signal once its
    # timeout has passed, waits with no timeout at all (no stop is ever seen; CI hung so)
    box: queue.Queue = queue.Queue()
    end = object()

    def pump() -> None:
        try:
            for r in results:
                box.put((r, None))
            box.put((end, None))
        except BaseException as exc:  # handed to the main thread
            box.put((None, exc))

    threading.Thread(target=pump, name="runner-chunks", daemon=True).start()
    seconds: list[float] = []
    noticed = False
    while True:
        try:
            item, exc = box.get(timeout=0.1)
            timed_out = False
        except queue.Empty:
            item, exc, timed_out = None, None, True
        if stop.requested and not noticed:
            noticed = True
            say(f"{stop.signal}: stopping: no new chunk; chunks in flight get {stop.budget:.3g} s")
        if timed_out:
            if stop.give_up(sum(seconds) / len(seconds) if seconds else None):
                stop.abandoned = True
                raise KeyboardInterrupt
            continue
        if exc is not None:
            if stop.requested and not isinstance(exc, fatal):  # workers killed too
                stop.abandoned = True
                raise KeyboardInterrupt
            raise exc
        if item is end:
            return
        if getattr(item, "seconds", None) is not None:
            seconds.append(item.seconds)
        yield item


@contextmanager
def handling(stop: Graceful) -> Iterator[Graceful]:
    """USR1 and SIGTERM call ``stop.request`` (main thread only) until the block ends."""
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, frame):  # only sets flags: the sweep's loop logs and acts
        stop.request(signal.Signals(signum).name)

    old = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield stop
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def kill_wait() -> float | None:
    """SLURM's KillWait (seconds between SIGTERM and SIGKILL); None outside a SLURM job."""
    if not JobEnvironment.read().job_id:
        return None
    seconds = config_number(config().get("KillWait"))
    return None if seconds is None else float(seconds)


def job_fields(job: str) -> dict[str, str]:
    """``scontrol show job``'s KEY=VALUE words (``PreemptTime`` is shown only once the job
    was preempted)."""
    words = (w.partition("=") for w in scontrol("show", "job", job).split())
    return {k: v for k, sep, v in words if sep}


@contextmanager
def ignoring(sig: signal.Signals) -> Iterator[None]:
    """``sig`` is ignored until the block ends (main thread only), then handled as before."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(sig, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(sig, old)


def say(line: str) -> None:
    sys.stderr.write(f"runner: {line}\n")
    sys.stderr.flush()


def after_stop(stop: Graceful, done: int, total: int, max_requeues: int) -> int:
    """Requeue this task or explain why not; returns the exit code (0 requeued, 130 not).

    A requeue ends this run with SIGTERM: call it with SIGTERM ignored (``ignoring``) and
    exit once it returns 0."""
    what = "chunks in flight given up, not written" if stop.abandoned else "all started written"
    say(f"{stop.signal}: stopped ({what}): {done} of {total} chunks of this task done")
    hint = "run the same `runner slurm` command to resume (finished chunks are kept)"
    slurm = JobEnvironment.read()
    job, k = slurm.job_task, slurm.restart_count
    if job is None:
        say("not requeued: not a SLURM job; run the same command to resume")
        return 130
    if stop.signal == "SIGTERM":
        fields = job_fields(job)
        if fields.get("JobState", "").startswith(("PENDING", "REQUEUE")):
            say("preempted: SLURM requeues this task itself (PreemptMode=REQUEUE)")
            return 0
        if fields.get("PreemptTime", "None") == "None":
            say(f"not requeued: SIGTERM without a preemption (cancelled?); {hint}")
            return 130
    if k >= max_requeues:
        say(f"not requeued: {k} of {max_requeues} requeues used (--max-requeues); {hint}")
        return 130
    say(f"requeued ({k + 1} of {max_requeues}): scontrol requeue {job}")
    try:
        proc = subprocess.run(
            ["scontrol", "requeue", job], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.SubprocessError) as exc:
        say(f"requeue failed ({exc}); {hint}")
        return 130
    if proc.returncode != 0:
        say(f"requeue failed ({' '.join(proc.stderr.split())}); {hint}")
        return 130
    return 0
