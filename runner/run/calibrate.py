"""Figures measured on this machine, for the plan's estimates (runner.plan.cost.Measured).

- The kernel's rate of a variant (dtype, fastmath): the last sweep's measured rate of the
  same variant and data shape on this machine if there is one, else a calibration of
  about a second in a fresh interpreter (which also measures such a process's memory
  once its kernels are loaded); both cached per variant and machine in
  ``$XDG_CACHE_HOME/runner/plan.json``.
- A pilot of a few of the spec's own runs, spread over its grid, trained in this process
  within about a second and written to memory only: the share of recorded rows and
  epochs that runs stopping early leave, and the bytes per loss row and per run of the
  files at the spec's ``loss_dtype`` and encodings.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from runner.kernel import tiles
from runner.kernel.codes import EPOCHS_RUN
from runner.plan import params as P
from runner.plan.chunks import Chunk, Layer, slots
from runner.plan.cost import Measured, rows_at_most
from runner.plan.folds import rows_of
from runner.plan.spec import Spec
from runner.run.memory import rss

PILOT_RUNS = 32  # runs of the pilot, at most
PILOT_SECONDS = 1.0  # the pilot's arithmetic, at most, at the calibrated rate
CALIBRATION_SECONDS = 0.5  # the timed part of a calibration
LAST_RANGE = (0.05, 2.0)  # a last sweep's rate is kept within these shares of the calibration
CAL_SHAPE = (4, 2, 8, 1, 64)  # samples, inputs, hidden, outputs, runs
WRITE_NS_PER_ROW = 150.0  # building and writing a loss row, when the pilot is too small to say


def cache_file() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "runner" / "plan.json"


def machine() -> str:
    """This machine: host, CPU model and logical CPUs."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    return f"{platform.node()}|{model or platform.machine()}|{os.cpu_count()}"


def _read_cache() -> dict[str, Any]:
    try:
        return json.loads(cache_file().read_text())
    except (OSError, ValueError):
        return {}


def _write_cache(update: dict[str, dict[str, Any]]) -> None:
    """Merge ``update`` (section -> key -> record) into the cache file, atomically."""
    path = cache_file()
    with contextlib.suppress(OSError):
        data = _read_cache()
        for section, records in update.items():
            data.setdefault(section, {}).update(records)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, path)


def variant_key(dtype: str, fastmath: bool) -> str:
    return f"{machine()}|{dtype}|{'fastmath' if fastmath else 'exact'}"


def shape_key(dtype: str, fastmath: bool, spec: Spec) -> str:
    n, ni, no = spec.X.shape[0], spec.X.shape[1], spec.Y.shape[1]
    return f"{variant_key(dtype, fastmath)}|{n}x{ni}x{no}"


def calibration(dtype: str, fastmath: bool) -> dict[str, Any]:
    """The cached calibration of a variant on this machine, made (about a second) if none."""
    key = variant_key(dtype, fastmath)
    found = _read_cache().get("calibration", {}).get(key)
    if found is not None:
        return found
    cmd = [sys.executable, "-m", "runner.run.calibrate", dtype, str(bool(fastmath))]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH")])
        ),
    }
    try:
        for _ in range(2):  # a calibration that compiled measured LLVM's memory: once more
            t0 = time.perf_counter()
            out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600,
                                 check=True)  # fmt: skip
            found = json.loads(out.stdout.strip().splitlines()[-1])
            found["startup_s"] = time.perf_counter() - t0 - found.pop("timing_s")
            if not found.pop("compiled", False):
                break
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        found = _calibrate_here(dtype, fastmath)  # here: this process's memory, an upper bound
        found.pop("timing_s")
        found.pop("compiled")
    _write_cache({"calibration": {key: found}})
    return found


def _calibrate_here(dtype: str, fastmath: bool) -> dict[str, Any]:
    """Run in a fresh interpreter: a sweep process's memory with its kernels loaded, and
    the kernel's rate on a small problem, timed for about CALIBRATION_SECONDS."""
    from runner.results import store  # noqa: F401  (a sweep process has it loaded)
    from runner.run.train import compile_note, init_weights, run_batch
    from runner.run.worker import warm_up

    compiled = compile_note(dtype, fastmath) is not None  # a cold cache: not a sweep's memory
    warm_up("float32", dtype, fastmath)
    warm_up("float64", dtype, fastmath)  # the timed calls' signature: no compiling below
    base = rss()
    n, ni, nh, no, R = CAL_SHAPE
    rng = np.random.default_rng(0)
    X, Y = rng.uniform(0, 1, (n, ni)), rng.uniform(0, 1, (n, no))
    epochs, took, t_all = 25, 0.0, time.perf_counter()
    while took < CALIBRATION_SECONDS:
        epochs *= 4 if took < CALIBRATION_SECONDS / 8 else 2
        Wh, Wz = init_weights(range(R), ni, nh, no)
        t0 = time.perf_counter()
        run_batch(X, Y, Wh, Wz, np.full(R, 1e-3), epochs, dtype=dtype, fastmath=fastmath)
        took = time.perf_counter() - t0
    ops = tiles.epoch_work(n, ni, nh, no, "linear", dtype, fastmath)
    return {"flops_per_s": R * epochs * ops / took, "base_rss": base, "seconds": took,
            "timing_s": time.perf_counter() - t_all, "startup_s": 0.0,
            "compiled": compiled}  # fmt: skip


def record_sweep(spec: Spec, dtype: str, fastmath: bool, flops_per_s: float) -> None:
    """Keep a finished sweep's measured rate (one worker's) for the next plan of its variant."""
    if flops_per_s > 0 and np.isfinite(flops_per_s):
        _write_cache(
            {
                "sweeps": {
                    shape_key(dtype, fastmath, spec): {
                        "flops_per_s": flops_per_s,
                        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
                    }
                }
            }
        )


CAUTIOUS_FLOPS = 1e9  # one worker's kernel rate that any machine beats
LOADED_BYTES = 320 << 20  # a sweep process's growth once its kernels and writers load


def calibrated(modes: list[tuple[str, bool]]) -> bool:
    """Whether this machine has a calibration of each of these variants."""
    cal = _read_cache().get("calibration", {})
    return all(variant_key(d, f) in cal for d, f in modes)


def cautious() -> Measured:
    """Figures without a calibration: a rate any machine beats, this process's memory
    and what loading the kernels adds."""
    return Measured(base_rss=rss() + LOADED_BYTES, flops_per_s=CAUTIOUS_FLOPS,
                    rate_source="from a cautious rate (no calibration on this machine yet)",
                    kernel_flops_per_s=CAUTIOUS_FLOPS)  # fmt: skip


def measured(spec: Spec, modes: list[tuple[str, bool]]) -> Measured:
    """Figures for ``spec``'s estimate: its slowest variant's rate, a process's memory."""
    cache = _read_cache().get("sweeps", {})
    rate, source, base, kernel, startup = np.inf, "", 0, np.inf, 0.0
    written = True  # the last sweep's rate includes its writing
    for dtype, fastmath in modes:
        cal = calibration(dtype, fastmath)
        base = max(base, int(cal["base_rss"]))
        kernel = min(kernel, float(cal["flops_per_s"]))
        startup = max(startup, float(cal.get("startup_s", 0.0)))
        last = cache.get(shape_key(dtype, fastmath, spec))
        if last and not LAST_RANGE[0] <= last["flops_per_s"] / cal["flops_per_s"] <= LAST_RANGE[1]:
            last = None  # not this machine's kernel as calibrated (a busy or odd sweep)
        r = float(last["flops_per_s"] if last else cal["flops_per_s"])
        if r < rate:
            rate = r
            source = "the last sweep's rate" if last else "a calibration"
            written = bool(last)
    m = Measured(base_rss=base, flops_per_s=float(rate), rate_source=f"from {source} of "
                 f"this variant on this machine", kernel_flops_per_s=kernel,
                 startup_s=startup, write_ns_per_row=0.0 if written else -1.0)  # fmt: skip
    return m


def _sample(layer: Layer, k: int) -> np.ndarray:
    size = layer.size
    return np.unique(np.linspace(0, size - 1, min(k, size)).round().astype(np.int64))


def pilot(spec: Spec, m: Measured, tile: int, most: int) -> None:
    """Train a few of the spec's runs (at most ``most``, in tiles of ``tile``; their epochs
    cut to fit PILOT_SECONDS) and measure; then this process's memory, as it will start
    training."""
    t0 = time.perf_counter()
    with _sigint_deferred():  # a Ctrl-C in a pyarrow writer's __del__ would be lost
        _pilot(spec, m, tile, min(PILOT_RUNS, most))
    m.base_rss = max(m.base_rss, rss())
    m.startup_s += time.perf_counter() - t0  # a sweep runs its pilot too


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold SIGINT until the block ends, then hand it to the handler it was meant for
    (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    old = signal.signal(signal.SIGINT, lambda sig, frame: got.append(sig))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
    if got and callable(old):  # Python's own handler raises KeyboardInterrupt
        old(signal.SIGINT, None)
    elif got and old == signal.SIG_DFL:
        raise KeyboardInterrupt


def _pilot(spec: Spec, m: Measured, tile: int, runs: int) -> None:
    from runner.results import store
    from runner.run.train import run_batch, start_weights
    from runner.run.worker import model_keys, split_rows

    cols = spec.layer.columns(_sample(spec.layer, runs))
    per_call = [c for name in P.PER_CALL for c, _ in P.BY_NAME[name].columns]
    keys = np.stack([np.asarray(cols[c], np.float64).view(np.int64) for c in per_call], axis=1)
    _, group = np.unique(keys, axis=0, return_inverse=True)
    ni, no = spec.X.shape[1], spec.Y.shape[1]
    scaling = spec.data.get("scaling") if spec.folds is not None else None
    groups = np.unique(group)
    rows = most = epochs_run = epochs_most = 0
    tables, byte_tables, runs_tables, building = [], [], [], 0.0
    for g in groups:
        idx = np.flatnonzero(group.ravel() == g)
        sub = {c: v[idx] for c, v in cols.items()}
        call = Chunk(0, 0, len(idx), sub).call()
        held_rows = rows_of(spec.X, spec.Y, spec.holdout, spec.folds, scaling, call["fold"])
        X, Y, held = split_rows(*held_rows)  # its fold's rows, under kfold
        n = X.shape[0]
        ops = tiles.epoch_work(n, ni, call["hidden"], no, call["output"], call["dtype"])
        lane_epochs = PILOT_SECONDS * m.kernel_flops_per_s / len(groups) / ops
        if lane_epochs / _lanes(len(idx), tile) < call["epochs"] and len(idx) > tile:
            idx = idx[:tile]  # cut short: one tile of runs, for more of each one's curve
            sub = {c: v[idx] for c, v in cols.items()}
        epochs = int(min(call["epochs"], max(1, lane_epochs / _lanes(len(idx), tile))))
        Wh, Wz = start_weights(sub, ni, call["hidden"], no, call["bias"], spec.init_weights)
        res = run_batch(X, Y, Wh, Wz, sub["alpha"].copy(), epochs, call["output"],
                        call["update"], spec.every, call["stop_below"], call["diverge_above"],
                        np.dtype(spec.loss_dtype).type, dtype=call["dtype"],
                        fastmath=call["fastmath"], tile=tile, tail=spec.tail or 1,
                        diverge_factor=call["diverge_factor"], validation=held,
                        patience=int(spec.train.get("patience", 0)),
                        **model_keys(call, sub))  # fmt: skip
        ids, t0 = np.arange(len(idx)), time.perf_counter()
        params = store.param_columns(sub, spec.model_params)
        axes = {k: params[k] for k in store.axis_columns(spec.axis_names) if k in params}
        table = store.losses_table(ids, axes, res.loss, res.istats, res.fstats, spec.every,
                                   res.val_loss, res.vstats)  # fmt: skip
        tables.append(table)
        runs_tables.append(store.runs_table(ids, params, res.istats, res.fstats,
                                            spec.tail is not None, res.vstats))  # fmt: skip
        building += time.perf_counter() - t0
        full = len(idx) * rows_at_most(call["epochs"], spec.every)
        whole = epochs == call["epochs"]  # else: a cut pilot says nothing of stopping early
        if whole or spec.every == 0:
            byte_tables.append(table)
        else:  # its runs' curves, continued to full length: their files' bytes
            loss, istats = _continued(res.loss, res.istats, epochs, call["epochs"], spec.every)
            val = None if held is None else _continued(res.val_loss, res.istats, epochs,
                                                       call["epochs"], spec.every)[0]  # fmt: skip
            part = ids[: loss.shape[1]]
            byte_tables.append(store.losses_table(part, axes, loss, istats, res.fstats,
                                                  spec.every, val, res.vstats))  # fmt: skip
        rows += table.num_rows if whole else full
        most += full
        epochs_run += int(res.istats[:, 0].sum()) if whole else len(idx) * call["epochs"]
        epochs_most += len(idx) * call["epochs"]
    m.row_fraction = min(1.0, rows / max(most, 1))
    m.epoch_fraction = min(1.0, epochs_run / max(epochs_most, 1))
    t0 = time.perf_counter()
    m.loss_bytes_per_row, m.loss_bytes_per_file = _bytes(byte_tables, store.loss_options)
    n_rows = sum(t.num_rows for t in tables)
    if m.write_ns_per_row < 0:  # the calibration's rate is the kernel's alone: add the writing
        took = building + (time.perf_counter() - t0) / 1.5
        m.write_ns_per_row = took / n_rows * 1e9 if n_rows >= 100_000 else WRITE_NS_PER_ROW
    m.run_bytes_per_run, m.run_bytes_per_file = _bytes(
        runs_tables, lambda t: store.RUN_OPTIONS, "runs"
    )


def _lanes(runs: int, tile: int) -> int:
    """Kernel lanes that ``runs`` runs occupy in tiles of ``tile`` (idle ones included)."""
    return -(-runs // tile) * tile


STAND_IN_ROWS = 200_000  # at most, of a cut pilot's continued curves


def _continued(loss: np.ndarray, istats: np.ndarray, epochs: int, full: int, every: int
               ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """A cut pilot's recorded losses (slots x runs), each run's curve continued to the
    ``full`` epochs' slots as a power law through its last two points (l ~ t**-a, a
    learning curve's usual shape; ``a`` within -1..3), for at most STAND_IN_ROWS rows: a
    stand-in with a curve's smoothness, which is what the losses' encodings compress.
    Runs that stopped in the pilot keep their stop."""
    n = min(slots(full, every), STAND_IN_ROWS)
    runs = max(1, min(loss.shape[1], STAND_IN_ROWS // n))
    have = min(loss.shape[0], n)
    epoch = np.maximum(np.arange(n, dtype=np.float64) * every, 1.0) if every > 1 else (
        np.arange(1, n + 1, dtype=np.float64))  # fmt: skip
    last = loss[have - 1, :runs].astype(np.float64)
    prev = loss[max(have - 2, 0), :runs].astype(np.float64)
    with np.errstate(all="ignore"):
        span = np.log(epoch[have - 1] / epoch[max(have - 2, 0)])
        a = np.clip(-np.log(last / prev) / span, -1.0, 3.0) if span > 0 else np.zeros(runs)
        a = np.where(np.isfinite(a), a, 0.0)
        tail = last * (epoch[have:, None] / epoch[have - 1]) ** -a
    out = np.concatenate([loss[:have, :runs], tail.astype(loss.dtype)])
    st = istats[:runs].copy()
    ran = st[:, EPOCHS_RUN] == epochs
    st[ran, EPOCHS_RUN] = int(epoch[-1])  # a recorded epoch: no extra last row
    return out, st


def _bytes(tables: list, options, what: str = "rows") -> tuple[float, float]:
    """Bytes per row and per file of Parquet files of these tables: the slope and
    intercept of writing all of them and half of their rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.concat_tables(tables).combine_chunks()
    sizes = []
    for part in (table, table.slice(0, 1)):  # one row: the file's own overhead
        buf = io.BytesIO()
        pq.write_table(part, buf, **options(part))
        sizes.append((part.num_rows, buf.tell()))
    (r1, b1), (r2, b2) = sizes
    per = (b1 - b2) / (r1 - r2) if r1 > r2 else 0.0
    return max(per, 0.0), float(b2)


if __name__ == "__main__":  # a calibration, in a fresh interpreter
    sys.stdout.write(json.dumps(_calibrate_here(sys.argv[1], sys.argv[2] == "True")) + "\n")
