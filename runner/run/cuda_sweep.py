"""The sweep on CUDA devices: chunks batched into launches, written by CPU threads.

Chunks stay what the spec makes them (the same files as any other backend); chunks
with the same kernel keys are trained together in launches of about
``launch_runs`` runs, enough threads to fill the device. One worker thread per
visible device takes launches from a shared queue (as shards share chunks, but
balanced at run time); each keeps ``DEPTH`` launches in flight on their own
streams, so the next launch trains while the last one's losses copy back and the
writer threads turn them into Parquet files (double buffering).
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from runner.kernel import seeding
from runner.results import claims as claiming
from runner.results.durable import describe_os_error
from runner.run.cuda import Launch, _simulator, device_count
from runner.run.train import BatchResult, slots, start_weights
from runner.run.worker import (
    ChunkDone,
    ChunkFailed,
    ChunkTask,
    kernel_keys,
    rate_of,
    write_results,
)

DEPTH = 2  # launches in flight per device: one trains while the last one is written
MAX_LOSS_VALUES = 1 << 26  # host buffer per launch: 256 MiB of float32 losses at most


@dataclass
class Group:
    """Chunks trained in one launch (same kernel keys), in run order within the launch."""

    tasks: list[ChunkTask]
    kern: dict[str, Any]
    runs: int = 0
    parts: list[tuple[ChunkTask, int, int]] = field(default_factory=list)


def launch_runs(device=None) -> int:
    """Runs per launch: two waves of the device's resident threads (no device: 2**17)."""
    if device is None:
        return 1 << 17
    sms = getattr(device, "MULTIPROCESSOR_COUNT", 0) or 0
    per_sm = getattr(device, "MAX_THREADS_PER_MULTI_PROCESSOR", 0) or 0
    return max(1 << 12, 2 * sms * per_sm)


def plan_launches(tasks: list[ChunkTask], kerns: list[dict], target: int) -> list[Group]:
    """Group chunks with equal kernel keys into launches of about ``target`` runs,
    keeping each launch's loss buffer under MAX_LOSS_VALUES; the order of ``tasks``
    (longest first) is kept between groups."""
    open_: dict[tuple, Group] = {}
    out: list[Group] = []
    for task, kern in zip(tasks, kerns, strict=True):
        key = tuple(sorted(kern.items(), key=lambda kv: kv[0]))
        n = task.run_stop - task.run_start
        rows = slots(int(kern["epochs"]), task.every)
        g = open_.get(key)
        if g is not None and (g.runs + n > target or (g.runs + n) * rows > MAX_LOSS_VALUES):
            g = None
        if g is None:
            g = open_[key] = Group([], kern)
            out.append(g)
        g.parts.append((task, g.runs, g.runs + n))
        g.tasks.append(task)
        g.runs += n
    return out


def dispatch(tasks: list[ChunkTask], writers: int) -> Iterator[ChunkDone]:
    """Train and write every task on the visible devices; yield each chunk as written."""
    from numba import cuda

    n_dev = device_count()
    kerns = [kernel_keys(t) for t in tasks]
    target = launch_runs(None if _simulator() else cuda.gpus[0])  # device 0 speaks for all
    groups = plan_launches(tasks, kerns, target)
    work: queue.Queue[Group] = queue.Queue()
    for g in groups:
        work.put(g)
    results: queue.Queue[ChunkDone | BaseException] = queue.Queue()
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=max(1, writers), thread_name_prefix="runner-writer")
    workers = [
        threading.Thread(
            target=_device_worker, args=(d, work, results, pool, stop), daemon=True,
            name=f"runner-cuda-{d}",
        )
        for d in range(n_dev)
    ]  # fmt: skip
    for w in workers:
        w.start()
    try:
        for _ in range(len(tasks)):
            item = results.get()
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)


def _device_worker(d, work, results, pool, stop) -> None:
    """Launch groups on device d, DEPTH in flight, and hand finished ones to the writers."""
    try:
        with _device(d):
            room = threading.Semaphore(DEPTH + 1)  # launches started but not yet written
            inflight: deque[tuple[Group, Launch, list, float]] = deque()
            while not stop.is_set():
                try:
                    g = work.get_nowait()
                except queue.Empty:
                    break
                room.acquire()
                inflight.append(_start(g, room))
                while len(inflight) >= DEPTH:
                    _finish(*inflight.popleft(), pool, results)
            while inflight and not stop.is_set():
                _finish(*inflight.popleft(), pool, results)
    except BaseException as exc:  # handed to the main thread
        results.put(_failed(exc))


def _device(d: int):
    """Device d's context for the calling thread."""
    from numba import cuda

    return cuda.gpus[d]


def _start(g: Group, room: threading.Semaphore):
    """Claim the group's chunks, build their inputs on the host and queue the launch."""
    t0 = time.perf_counter()
    claims = [claiming.claim(Path(t.out), t.index) for t in g.tasks]
    try:
        t = g.tasks[0]
        k = g.kern
        bias = bool(k.get("bias", False))
        Wh, Wz, alpha = _inputs(g.tasks, t.X.shape[1], int(k["hidden"]), t.Y.shape[1], bias)
        model = {m: k[m] for m in ("activation", "scaling", "step") if m in k}
        for key in ("alpha_hidden", "alpha_output"):
            model[key] = np.concatenate([rate_of(task.columns, key) for task in g.tasks])
        launch = Launch(
            t.X, t.Y, Wh, Wz, alpha, int(k["epochs"]), k["output"], k["update"], t.every,
            k["stop_below"], k["diverge_above"], np.dtype(t.loss_dtype),
            k.get("dtype", "float64"), bool(k.get("fastmath", False)), {**model, "bias": bias},
            t.tail or 1, k["diverge_factor"],
        )  # fmt: skip
    except BaseException:
        for c in claims:
            claiming.release(c)
        raise
    return g, launch, [claims, room], t0


def _inputs(tasks: list[ChunkTask], inputs: int, hidden: int, outputs: int, bias: bool):
    """Initial Wh, Wz (runner.kernel.seeding: train.init_weights' bits, compiled) and alpha of
    the tasks' runs, in order; a normal init or a file's: each task's (train.start_weights)."""
    if np.isnan(tasks[0].columns["init_lo"][0]):
        shape = (inputs, hidden, outputs, bias)
        ws = [start_weights(t.columns, *shape, t.init_weights) for t in tasks]
        alpha = np.concatenate([np.asarray(t.columns["alpha"], dtype=np.float64) for t in tasks])
        return np.concatenate([w[0] for w in ws], 2), np.concatenate([w[1] for w in ws], 2), alpha
    seeds, lo, hi, alpha = [], [], [], []
    for t in tasks:
        cols = t.columns
        seeds.append(np.asarray(cols["seed"], dtype=np.int64))
        alpha.append(np.asarray(cols["alpha"], dtype=np.float64))
        lo.append(np.asarray(cols["init_lo"], dtype=np.float64))
        hi.append(np.asarray(cols["init_hi"], dtype=np.float64))
    Wh, Wz = seeding.init_weights(np.concatenate(seeds), inputs, hidden, outputs,
                                  np.concatenate(lo), np.concatenate(hi), bias)  # fmt: skip
    return Wh, Wz, np.concatenate(alpha)


def _finish(g: Group, launch: Launch, held: list, t0: float, pool, results) -> None:
    """Wait for a launch, then queue one write per chunk; the last write frees its room."""
    res = launch.result()
    claims, room = held
    left = [len(g.parts)]
    lock = threading.Lock()

    def write(part, claim):
        task, a, b = part
        try:
            sub = BatchResult(
                res.loss[:, a:b], res.istats[a:b], res.fstats[a:b], res.Wh[:, :, a:b],
                res.Wz[:, :, a:b],
            )  # fmt: skip
            results.put(write_results(task, sub, t0))
        except BaseException as exc:
            results.put(_failed(exc, task.index))
        finally:
            claiming.release(claim)
            with lock:
                left[0] -= 1
                if left[0] == 0:
                    room.release()

    for part, claim in zip(g.parts, claims, strict=True):
        pool.submit(write, part, claim)


def _failed(exc: BaseException, index: int | None = None) -> ChunkFailed:
    what = f"chunk {index}" if index is not None else "cuda worker"
    if isinstance(exc, OSError):
        err = ChunkFailed(f"{what}: {describe_os_error(exc)}")
    else:
        err = ChunkFailed(f"{what}: {type(exc).__name__}: {exc}")
    err.__cause__ = exc
    return err
