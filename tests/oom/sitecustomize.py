"""Test-only: the kernel's OOM killer, simulated. On PYTHONPATH with RUNNER_TEST_OOM=BYTES,
every process (loky's workers included) that trains a chunk whose kernel tile would touch
more than BYTES SIGKILLs itself, as Linux's OOM killer would; a narrower tile trains.
Nothing in runner/ knows of it: this wraps ``runner.run.worker.run_batch`` from outside."""

import os

if os.environ.get("RUNNER_TEST_OOM"):
    import signal

    import runner.run.worker as worker
    from runner.kernel import tiles

    _limit = int(os.environ["RUNNER_TEST_OOM"])
    _run_batch = worker.run_batch

    def run_batch(X, Y, Wh, Wz, *args, tile=None, dtype="float64", **kw):
        n, ni = X.shape
        nh, no = Wz.shape[0], Wz.shape[1]
        t = tile or tiles.choose_tile(n, ni, nh, no, dtype)
        if tiles.working_set_bytes(n, ni, nh, no, dtype, t) > _limit:
            os.kill(os.getpid(), signal.SIGKILL)
        return _run_batch(X, Y, Wh, Wz, *args, tile=tile, dtype=dtype, **kw)

    worker.run_batch = run_batch
