"""A Numba cache shared by many processes (``NUMBA_CACHE_DIR``, e.g. the tasks of a
``runner slurm`` array): the first process on each CPU target compiles the kernels
under a file lock, the others wait and then load its entries (docs/hpc.md).

The lock is ``fcntl.flock`` on ``runner-compile-<target>.lock`` in the cache folder,
one per CPU target as Numba's index keys entries (``numba_ext.compile_target``): nodes
of one model compile once between them, a node of another model compiles its own. The
kernel releases a flock when its process dies, however it dies.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import platform
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

LOCK_PREFIX = "runner-compile-"
NOTE_EVERY = 60.0  # seconds between "still waiting" lines
WAIT_LIMIT = 1800.0  # then compile without the lock (a holder stuck on a hung file system)
POLL = 0.2


def cache_dir() -> Path | None:
    """``NUMBA_CACHE_DIR`` (Numba reads it once, at import); None when unset."""
    text = os.environ.get("NUMBA_CACHE_DIR", "").strip()
    return Path(text) if text else None


def lock_path(folder: Path, target: str) -> Path:
    return folder / f"{LOCK_PREFIX}{re.sub(r'[^A-Za-z0-9._-]', '_', target)}.lock"


def _holder() -> str:
    job = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    task = f", job {job[0]}_{job[1]}" if all(job) else ""
    return f"{platform.node()} pid {os.getpid()}{task}"


@contextlib.contextmanager
def compile_lock(
    folder: Path,
    target: str,
    *,
    say: Callable[[str], object] = sys.stderr.write,
    note_every: float = NOTE_EVERY,
    limit: float = WAIT_LIMIT,
) -> Iterator[bool]:
    """Hold the compile lock of ``target`` in ``folder`` for the block; yields whether it
    is held. Waiting, it says so at once and every ``note_every`` s; after ``limit`` s, or
    where the file system cannot lock, it says why and runs the block without the lock
    (then two processes may compile the same entry: slower, never wrong)."""
    path = lock_path(folder, target)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        say(f"runner: cannot open the compile lock {path} ({exc.strerror}): compiling unlocked\n")
        yield False
        return
    try:
        held = _acquire(fd, path, target, say, note_every, limit)
        if held:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{_holder()}\n".encode(), 0)
        yield held
    finally:
        os.close(fd)  # releases the flock


def _acquire(fd: int, path: Path, target: str, say: Callable[[str], object],
             note_every: float, limit: float) -> bool:  # fmt: skip
    start = time.monotonic()
    next_note = 0.0
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            pass
        except OSError as exc:  # ENOLCK, EOPNOTSUPP: a file system without flock
            if exc.errno in (errno.EINTR,):
                continue
            say(f"runner: cannot lock {path} ({exc.strerror}): compiling unlocked\n")
            return False
        waited = time.monotonic() - start
        if waited >= limit:
            say(f"runner: waited {waited:.0f} s for {path}: compiling unlocked\n")
            return False
        if waited >= next_note:
            who = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            still = f"still waiting ({waited:.0f} s): " if next_note else "waiting: "
            say(f"runner: {still}{who} compiles the kernels for {target} ({path})\n")
            next_note += note_every
        time.sleep(POLL)


_HELD: list[Path] = []  # the compile lock this process holds now (warming is re-entrant)


@contextlib.contextmanager
def warming(say: Callable[[str], object] = sys.stderr.write) -> Iterator[None]:
    """Around the first use of the kernels in a process: with ``NUMBA_CACHE_DIR`` set,
    hold the compile lock of this CPU target, then say how many kernel variants this
    process loaded from the cache and compiled in the block (when it did either);
    without it, or inside another ``warming``, nothing."""
    folder = cache_dir()
    if folder is None or _HELD:
        yield
        return
    from runner.kernel.cpu import cache_stats
    from runner.kernel.numba_ext import compile_target

    target = compile_target()
    before = cache_stats()
    with compile_lock(folder, target, say=say):
        _HELD.append(folder)
        try:
            yield
        finally:
            _HELD.pop()
    after = cache_stats()
    hits, misses = (after[k] - before[k] for k in ("hits", "misses"))
    if hits or misses:
        say(f"runner: Numba cache {folder} ({target}): {hits} loaded, {misses} compiled\n")
