"""Test hooks for every Python process the tests start: tests/helpers.env() puts this
folder on PYTHONPATH, so sweeps, loky and Dask workers and SLURM tasks all load it.
With RUNNER_TEST_KILL or RUNNER_TEST_HOLD set it wraps runner's chunk-writing steps
(runner_faults.py); otherwise it does nothing. None of this is in runner/."""

import os

if os.environ.get("RUNNER_TEST_KILL") or os.environ.get("RUNNER_TEST_HOLD"):
    import runner_faults

    runner_faults.install()
