"""Test hooks for every Python process the tests start: tests/helpers.env() puts this
folder on PYTHONPATH, so sweeps, loky and Dask workers and SLURM tasks all load it.
With RUNNER_TEST_KILL or RUNNER_TEST_HOLD set it wraps runner's chunk-writing steps
(runner_faults.py); with RUNNER_TEST_OOM or RUNNER_TEST_NO_DISK_CHECK it simulates the
machine (runner_simulate.py); otherwise it does nothing. None of this is in runner/."""

import importlib.machinery
import importlib.util
import os
import sys


def _run_the_shadowed_one() -> None:
    """This file hides any other sitecustomize further along the path: run that one too."""
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is not None and spec.loader is not None and spec.origin != __file__:
        spec.loader.exec_module(importlib.util.module_from_spec(spec))


_run_the_shadowed_one()
if os.environ.get("RUNNER_TEST_KILL") or os.environ.get("RUNNER_TEST_HOLD"):
    import runner_faults

    runner_faults.install()
if os.environ.get("RUNNER_TEST_OOM") or os.environ.get("RUNNER_TEST_NO_DISK_CHECK"):
    import runner_simulate  # noqa: F401  (it acts on import)
