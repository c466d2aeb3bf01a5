"""Faults at named moments of a chunk's writing, for the fault tests.

``RUNNER_TEST_KILL="C:POINT"`` SIGKILLs the whole sweep (its process group, when the
sweep leads its own session) as chunk C reaches POINT, one of ``FAULT_POINTS``;
``"C:POINT:self"`` kills only the process (a worker) writing chunk C.
``RUNNER_TEST_HOLD=FILE``: while FILE exists, a trained chunk is held unwritten, so that
a signal or a kill lands mid-chunk deterministically.

The moments are runner's own steps, wrapped as their modules are imported:
``store.write_chunk`` (entered: "trained"), ``durable.write_tmp`` (returned: the bytes
are durable under the temporary name, "losses-tmp" or "runs-tmp") and
``durable.write_atomic`` (returned: the file is in place, "losses" or "runs"); a sweep
that stores weights has "weights-tmp" and "weights" between them (not in FAULT_POINTS).
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import os
import re
import signal
import sys
import time

FAULT_POINTS = ("trained", "losses-tmp", "losses", "runs-tmp", "runs")
CHUNK = re.compile(r"chunk-(\d+)\.parquet")


def fault(c: int, point: str) -> None:
    """SIGKILL here if RUNNER_TEST_KILL names chunk c and this point."""
    target = os.environ.get("RUNNER_TEST_KILL")
    if target is None:
        return
    chunk, _, rest = target.partition(":")
    where, _, who = rest.partition(":")
    if chunk == str(c) and where == point:
        group = os.getpgid(0)
        if who != "self" and group == os.getsid(0):
            os.killpg(group, signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)


def hold() -> None:
    """Wait while the file named by RUNNER_TEST_HOLD exists."""
    path = os.environ.get("RUNNER_TEST_HOLD")
    while path and os.path.exists(path):
        time.sleep(0.05)


def _chunk_file(path) -> tuple[int, str] | None:
    """(chunk, "losses", "weights" or "runs") of a chunk file or its temporary name."""
    found = CHUNK.search(os.path.basename(path))
    part = os.path.basename(os.path.dirname(path))
    return (int(found.group(1)), part) if found and part in ("losses", "weights", "runs") else None


def _after(func, suffix: str):
    @functools.wraps(func)
    def wrapped(table, path, *args, **kw):
        func(table, path, *args, **kw)
        where = _chunk_file(path)
        if where is not None:
            fault(where[0], where[1] + suffix)

    return wrapped


def patch_store(module) -> None:
    write_chunk = module.write_chunk

    @functools.wraps(write_chunk)
    def wrapped(out, c, losses, runs, weights=None):
        hold()
        fault(c, "trained")
        write_chunk(out, c, losses, runs, weights)

    module.write_chunk = wrapped


def patch_durable(module) -> None:
    module.write_tmp = _after(module.write_tmp, "-tmp")
    module.write_atomic = _after(module.write_atomic, "")


PATCHES = {"runner.results.store": patch_store, "runner.results.durable": patch_durable}


class _Finder(importlib.abc.MetaPathFinder):
    """Patches a module of PATCHES right after it is first executed."""

    def find_spec(self, name, path, target=None):
        patch = PATCHES.get(name)
        if patch is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            patch(module)

        spec.loader.exec_module = exec_module
        return spec


def install() -> None:
    """Patch the modules now if imported, else as they are imported."""
    for name, patch in PATCHES.items():
        if name in sys.modules:
            patch(sys.modules[name])
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
