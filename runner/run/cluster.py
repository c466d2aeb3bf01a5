"""Dask: the sweep's chunks on a ``distributed`` cluster through joblib's "dask" backend.

Workers run ``worker.run_chunk`` and write the chunk files themselves, so the results
folder must be shared by every worker (and ``runner`` importable there).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from runner.errors import RunnerError


def require_dask() -> None:
    """dask is an extra: without it, ``--backend dask`` is bad input, not a crash."""
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
    except ImportError:
        raise RunnerError(
            "needs dask, which is not installed here: pip install 'runner[dask]'",
            key="--backend dask",
        ) from None


@contextmanager
def dask_backend(scheduler: str | None, jobs: int) -> Iterator[Any]:
    """A ``distributed.Client`` (to ``scheduler``, else $DASK_SCHEDULER_ADDRESS, else a
    LocalCluster of ``jobs`` single-threaded worker processes) with joblib's dask backend
    in force; closed on exit. Yields the client."""
    import joblib
    from distributed import Client, LocalCluster

    address = scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS")
    with ExitStack() as stack:
        if address:
            try:
                client = stack.enter_context(Client(address, timeout="30s"))
            except OSError as exc:
                raise RunnerError(f"cannot reach {address} ({exc})", key="--scheduler") from None
        else:
            # dashboard (and the scheduler's HTTP server) on a free port, never a fixed one
            cluster = LocalCluster(
                n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=":0"
            )
            stack.enter_context(cluster)
            client = stack.enter_context(Client(cluster))
        stack.enter_context(joblib.parallel_config("dask"))
        yield client
