"""Test-only conditions of the machine, simulated from outside runner/: loaded by
tests/hooks/sitecustomize.py in every interpreter the tests start (loky's workers included).

- RUNNER_TEST_OOM=BYTES: the kernel's OOM killer. A process that trains a chunk whose
  kernel tile would touch more than BYTES SIGKILLs itself, as Linux's OOM killer would; a
  narrower tile trains. It wraps ``runner.run.train.run_batch`` (the worker imports it per call)
  and, to know a chunk's training from the plan's pilot, ``runner.run.worker.run_chunk``.
- RUNNER_TEST_NO_DISK_CHECK=1: a disk whose free space the estimate cannot see (another
  writer fills it during the sweep): ``runner.run.budget.check_disk`` passes.
"""

import os

if os.environ.get("RUNNER_TEST_OOM"):
    import signal
    import threading

    import runner.run.train as train
    import runner.run.worker as worker
    from runner.kernel import tiles

    _limit = int(os.environ["RUNNER_TEST_OOM"])
    _run_batch, _run_chunk = train.run_batch, worker.run_chunk
    _in_chunk = threading.local()  # only a chunk's training is killed, not the plan's pilot

    def run_batch(X, Y, Wh, Wz, *args, tile=None, dtype="float64", **kw):
        n, ni = X.shape
        nh, no = Wz.shape[0], Wz.shape[1]
        t = tile or tiles.choose_tile(n, ni, nh, no, dtype)
        touched = tiles.working_set_bytes(n, ni, nh, no, dtype, t)
        if getattr(_in_chunk, "on", False) and touched > _limit:
            os.kill(os.getpid(), signal.SIGKILL)
        return _run_batch(X, Y, Wh, Wz, *args, tile=tile, dtype=dtype, **kw)

    def run_chunk(task):
        _in_chunk.on = True
        try:
            return _run_chunk(task)
        finally:
            _in_chunk.on = False

    train.run_batch = run_batch
    worker.run_chunk = run_chunk

if os.environ.get("RUNNER_TEST_NO_DISK_CHECK"):
    import runner.run.budget as budget

    budget.check_disk = lambda cost, folder: None
