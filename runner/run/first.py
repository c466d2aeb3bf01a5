"""The first result in seconds: NumPy trains while the kernel compiles.

A variant's kernel compiles once per machine (about 20 s on 2 cores, Numba's cost for a
kernel of this size: docs/architecture.md, "First result"). Until then, a small problem
trains with ``runner.kernel.numpy_batch``, the kernel's numbers bit for bit in NumPy,
and one background process compiles the variant into Numba's cache, under the shared
compile lock (``runner.run.shared_cache``); the calls after it load the kernel.

``RUNNER_NUMPY_FIRST=0`` turns this off (every call compiles, or loads, the kernel). Only
``runner.train`` and ``runner.train_many`` use it; sweeps always run the kernel.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from runner.kernel import cpu as kernels
from runner.run import shared_cache

# The most seconds the NumPy path may take, by ``numpy_seconds``' estimate; above it, the
# kernel compiles at once (a compile is about 20 s, the target is a result in 5).
NUMPY_SECONDS = 4.0
# Its cost on the development machine: seconds per epoch, and per epoch and element.
EPOCH_SECONDS, ELEMENT_SECONDS = 3.5e-4, 3e-7

MARKER = "runner-compiling-"  # a background compile's marker file, with its pid
_started: set[tuple] = set()  # variants this process started compiling in the background


def enabled() -> bool:
    return os.environ.get("RUNNER_NUMPY_FIRST", "1").strip() not in ("0", "false", "no")


def numpy_seconds(epochs: int, rows: int, ni: int, nh: int, no: int, R: int) -> float:
    """The NumPy path's time for a batch, estimated: ``rows`` counts held-out rows too."""
    elements = R * rows * (nh + 1) * max(1.0, (ni + 2 * no) / 3)
    return epochs * (EPOCH_SECONDS + ELEMENT_SECONDS * elements)


def compiled(key: tuple) -> bool:
    """Whether the variant's kernel is compiled in this process or in Numba's cache."""
    fn = kernels.kernel(*key)
    return bool(fn.overloads) or kernels.has_cache_index(fn)


def use_numpy(key: tuple, fastmath: bool, epochs: int, rows: int, shape: tuple) -> bool:
    """Whether this batch trains with NumPy: exact mode, the variant not compiled here
    yet, and a small problem; ``key`` is ``kernels.kernel``'s (output, update, fastmath,
    activation, held out), ``shape`` (inputs, hidden, outputs, runs)."""
    return (enabled() and not fastmath and numpy_seconds(epochs, rows, *shape) <= NUMPY_SECONDS
            and not compiled(key))  # fmt: skip


def compile_later(variant: dict) -> None:
    """Start one background process that compiles ``variant`` (``run_batch``'s keywords
    that choose the kernel and its argument types) into Numba's cache; once per variant
    and process. It runs on after this process ends; its output is discarded."""
    key = tuple(sorted(variant.items()))
    if key in _started:
        return
    _started.add(key)
    env = {**os.environ, "RUNNER_NUMPY_FIRST": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner.run.warm", json.dumps(variant)], env=env,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    with contextlib.suppress(OSError):  # a marker only: ``pending`` then misses it
        folder().mkdir(parents=True, exist_ok=True)
        marker(folder(), proc.pid).touch()


def folder() -> Path:
    """Where the compile lock and the markers of background compiles are."""
    return shared_cache.cache_dir() or Path(tempfile.gettempdir())


def marker(where: Path, pid: int) -> Path:
    return where / f"{MARKER}{pid}"


def pending(where: Path | None = None) -> list[int]:
    """The background compiles still running (their pids), by their markers in ``where``
    (by default ``folder()``: that of ``NUMBA_CACHE_DIR``, else the temporary folder)."""
    live = []
    for path in (where or folder()).glob(f"{MARKER}*"):
        pid = int(path.name[len(MARKER) :])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            path.unlink(missing_ok=True)  # it died without removing its marker
            continue
        except PermissionError:
            pass
        live.append(pid)
    return live
