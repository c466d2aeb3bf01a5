"""What a sweep will cost, before it runs: runs, chunks, epoch-runs, loss rows, memory,
disk and time. Pure arithmetic on the plan (no Numba, nothing written); the figures
measured on this machine come in as ``Measured`` (``runner.run.budget`` measures them).

Memory of one worker, for its largest chunk: the kernel's working set of one tile
(``runner.kernel.tiles.working_set_bytes``, kept beside the kernel), the chunk's own
buffers (weights, recorded losses, statistics) and the writer's (the losses table and
its temporaries; the weights table, where the sweep stores weights). A budget may shrink
only the tile: chunks depend on the spec alone, and every tile gives the same bytes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from runner.errors import RunnerError
from runner.kernel import tiles
from runner.plan import params as P
from runner.plan.chunks import Plan, slots
from runner.plan.spec import Spec

# measured (seed sweep, 1.9M rows a chunk): the losses table's temporaries and Arrow's
# pool, besides two copies of the loss
WRITER_BYTES_PER_ROW = 33
# a weights file (runner.results.tables.weights_table): a float64 barely compresses
# (zstd: 8 B a value measured, +1.5 kB a file); its writer holds the flattened table and
# the encoded column (two copies)
WEIGHT_BYTES_PER_VALUE, WEIGHT_BYTES_PER_FILE, WEIGHT_WRITER_COPIES = 8, 1500, 2
HOUR, BIG_DISK = 3600.0, 10 << 30  # past either, a sweep prints its plan's summary first
FIT = 0.95  # tiles are narrowed until the estimate is within this share of the budget:
# estimates of peak memory came within a few percent of the measured peak, either way


@dataclass
class Measured:
    """Figures measured on this machine that an estimate scales."""

    base_rss: int  # bytes of a sweep process once its kernels are loaded
    flops_per_s: float  # one worker's kernel rate for this variant (runner.kernel.tiles.epoch_work)
    rate_source: str  # "last sweep" or "calibration"
    kernel_flops_per_s: float = 0.0  # the calibration's (the pilot's yardstick)
    startup_s: float = 0.0  # a sweep process's start: imports, kernels loaded
    write_ns_per_row: float = 0.0  # building and writing the losses (0: in flops_per_s)
    row_fraction: float = 1.0  # recorded rows written / at most (runs stopping early)
    epoch_fraction: float = 1.0  # epochs trained / at most
    loss_bytes_per_row: float = 2.0
    loss_bytes_per_file: float = 2000.0
    run_bytes_per_run: float = 40.0
    run_bytes_per_file: float = 6000.0


@dataclass
class Cost:
    """A sweep's (or a shard's) estimated cost. Bytes are bytes, seconds are seconds."""

    runs: int
    chunks: int
    epoch_runs: int  # at most: runs that converge or diverge stop early
    loss_rows: int  # at most
    workers: int
    kernel_bytes: int  # one tile's working set, in the chunk needing most
    buffer_bytes: int  # that chunk's weights, losses and statistics
    writer_bytes: int  # that chunk's losses table being built and written
    base_bytes: int  # a process with its kernels loaded
    worker_bytes: int  # kernel + buffers + writer
    peak_bytes: int  # the whole sweep: base and every worker at once
    losses_bytes: int
    runs_bytes: int
    seconds: float
    rate_source: str
    tile: int  # the narrowest tile of the sweep's chunks
    budget: int | None = None
    budget_source: str = ""
    weights_bytes: int = 0  # [record] weights = "final": the weights/ files
    tiles: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]

    @property
    def disk_bytes(self) -> int:
        return self.losses_bytes + self.runs_bytes + self.weights_bytes

    @property
    def big(self) -> bool:
        return self.seconds > HOUR or self.disk_bytes > BIG_DISK

    def summary(self) -> str:
        """The one-line summary."""
        return (
            f"{self.runs:,} runs in {self.chunks:,} chunks, {self.epoch_runs:,} epoch-runs; "
            f"memory {size(self.peak_bytes)} ({self.workers} x {size(self.worker_bytes)} a "
            f"worker); disk {size(self.disk_bytes)}; about {duration(self.seconds)}"
        )

    def lines(self) -> list[str]:
        budget = "" if self.budget is None else (
            f"; budget {size(self.budget)} ({self.budget_source})")  # fmt: skip
        return [
            f"runs          {self.runs:,} in {self.chunks:,} chunks",
            f"epoch-runs    {self.epoch_runs:,} at most",
            f"loss rows     {self.loss_rows:,} at most",
            f"memory        {size(self.peak_bytes)} peak: {size(self.base_bytes)} process + "
            f"{self.workers} worker(s) x {size(self.worker_bytes)}",
            f"  a worker    kernel tile of {self.tile} runs {size(self.kernel_bytes)}, chunk "
            f"buffers {size(self.buffer_bytes)}, writer {size(self.writer_bytes)}{budget}",
            f"disk          {size(self.disk_bytes)}: losses/ {size(self.losses_bytes)}, "
            f"runs/ {size(self.runs_bytes)}"
            + (f", weights/ {size(self.weights_bytes)}" if self.weights_bytes else ""),
            f"time          about {duration(self.seconds)} ({self.rate_source})",
        ]

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("tiles")
        out["disk_bytes"] = self.disk_bytes
        return out


def size(n: float) -> str:
    """Bytes in binary units: 512 B, 3.2 MiB, 18 GiB."""
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            v = n / scale
            return f"{v:.0f} {unit}" if v >= 100 else f"{v:.3g} {unit}"
    return f"{int(n)} B"


def duration(s: float) -> str:
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def rows_at_most(epochs: int, every: int) -> int:
    """Loss rows of one run that trains every epoch: the recorded epochs, and its last
    epoch when that is off the record grid."""
    return slots(epochs, every) + (1 if every > 1 else 0) if every else 0


@dataclass
class Chunks:
    """Per chunk (of those costed): runs, hidden, epochs, dtype, recorded rows."""

    index: np.ndarray
    runs: np.ndarray
    hidden: np.ndarray
    epochs: np.ndarray
    dtype: np.ndarray  # index into params.DTYPES
    slots: np.ndarray

    @classmethod
    def of(cls, plan: Plan, every: int, chunks: list[int] | None = None) -> Chunks:
        idx = np.arange(plan.n_chunks) if chunks is None else np.asarray(chunks, np.int64)
        epochs = plan.per_chunk("epochs").astype(np.int64)[idx]
        rows = np.array([rows_at_most(int(e), every) for e in epochs], dtype=np.int64)
        return cls(idx, plan.chunk_sizes()[idx], plan.per_chunk("hidden").astype(np.int64)[idx],
                   epochs, plan.per_chunk("dtype").astype(np.int64)[idx], rows)  # fmt: skip


def buffer_bytes(R: int, shape: tuple[int, int, int], hidden: int, rows: int, loss_dtype: str,
                 dtype: str) -> int:  # fmt: skip
    """A chunk's own arrays: float64 weights (and their copy in the training dtype), the
    recorded losses, per-run statistics and parameter columns."""
    _, ni, no = shape
    weights = R * hidden * (ni + no)
    f = np.dtype(dtype).itemsize
    copy = 0 if f == 8 else weights * f
    return weights * 8 + copy + rows * R * np.dtype(loss_dtype).itemsize + R * 160


def writer_bytes(R: int, rows: int, loss_dtype: str, weight_values: int = 0) -> int:
    """The losses table of a chunk being built (run_id, axes, epoch, loss) and written;
    and its weights table (``weight_values``: the chunk's, 0 where none are stored)."""
    weights = weight_values * 8 * WEIGHT_WRITER_COPIES
    return R * rows * (2 * np.dtype(loss_dtype).itemsize + WRITER_BYTES_PER_ROW) + weights


def weight_values(spec: Spec, R: int, hidden: int, bias: bool = True) -> int:
    """The values of R runs' stored weights (0 where the spec stores none)."""
    if spec.weights == "none":
        return 0
    ni, no = spec.X.shape[1], spec.Y.shape[1]
    return R * ((ni + bias) * hidden + (hidden + bias) * no)


def kernel_bytes(shape: tuple[int, int, int], hidden: int, dtype: str, tile: int) -> int:
    n, ni, no = shape
    return tiles.working_set_bytes(n, ni, hidden, no, dtype, tile)


def fit_tiles(spec: Spec, ch: Chunks, share: int | None, base: int, budget: int | None,
              budget_source: str = "--max-memory") -> np.ndarray:  # fmt: skip
    """Each chunk's tile: the kernel's own choice, narrowed until the worker fits ``share``
    bytes. Raises RunnerError (before anything is written) when even the narrowest does
    not fit: naming the hidden size when one tile alone is too much for the machine,
    else ``[sweep] chunk_runs``."""
    shape = (spec.X.shape[0], spec.X.shape[1], spec.Y.shape[1])
    kinds, which = _kinds(ch)
    out = np.zeros(len(kinds), np.int64)
    caches = tiles.cache_sizes()
    for k, (R, h, rows, d) in enumerate(kinds.tolist()):
        dtype = P.DTYPES[d]
        auto = tiles.choose_tile(shape[0], shape[1], h, shape[2], dtype, caches)
        own = buffer_bytes(R, shape, h, rows, spec.loss_dtype, dtype) + writer_bytes(
            R, rows, spec.loss_dtype, weight_values(spec, R, h)
        )
        fits = [t for t in tiles.TILES if t <= auto
                and (share is None or own + kernel_bytes(shape, h, dtype, t) <= share)]  # fmt: skip
        if not fits:
            _too_big(spec, shape, h, dtype, R, own, base, budget or 0, budget_source, share or 0)
        out[k] = max(fits)
    return out[which]


def _kinds(ch: Chunks) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (runs, hidden, rows, dtype) of the chunks, and each chunk's."""
    table = np.stack([ch.runs, ch.hidden, ch.slots, ch.dtype], axis=1).reshape(-1, 4)
    kinds, which = np.unique(table, axis=0, return_inverse=True)
    return kinds, which.ravel()


def one_tile_reason(shape: tuple[int, int, int], hidden: int, dtype: str, base: int,
                    budget: int, source: str) -> str:  # fmt: skip
    """Why not even the narrowest tile fits: what one tile of ``hidden`` needs, and of what."""
    n, ni, no = shape
    t = tiles.TILES[0]
    f = np.dtype(dtype).itemsize
    parts = (f"weights and updates {size(t * hidden * (2 * ni + no) * f)}, hidden activations "
             f"and deltas of {n} samples {size(2 * t * n * hidden * f)}")  # fmt: skip
    besides = f" besides the process's {size(base)}" if base else ""
    return (
        f"{hidden:,} hidden units: the smallest kernel tile ({t} runs) needs "
        f"{size(kernel_bytes(shape, hidden, dtype, t))} ({parts}){besides}; this machine "
        f"allows {size(budget)} ({source})"
    )


def _too_big(spec: Spec, shape, hidden: int, dtype: str, R: int, own: int, base: int,
             budget: int, source: str, share: int) -> None:  # fmt: skip
    one = kernel_bytes(shape, hidden, dtype, tiles.TILES[0])
    if base + one + buffer_bytes(1, shape, hidden, 1, spec.loss_dtype, dtype) > budget:
        key = "grid.hidden" if "hidden" in spec.grid else "train.hidden"
        raise RunnerError(one_tile_reason(shape, hidden, dtype, base, budget, source),
                          file=spec.file, key=key)  # fmt: skip
    raise RunnerError(
        f"a chunk of {R:,} runs needs {size(own)} for its weights, losses and writer, "
        f"{size(own + one)} with the narrowest tile; a worker's share of {size(budget)} "
        f"({source}) is {size(max(share, 0))}: set a smaller chunk_runs (or fewer --jobs)",
        file=spec.file, key="[sweep] chunk_runs")  # fmt: skip


def estimate(spec: Spec, plan: Plan, m: Measured, *, jobs: int, per_process: bool,
             chunks: list[int] | None = None, budget: int | None = None,
             budget_source: str = "") -> Cost:  # fmt: skip
    """The cost of training ``chunks`` of ``plan`` (all by default) with ``jobs`` workers;
    under ``budget`` bytes, each chunk's tile is narrowed to fit (RunnerError if none)."""
    ch = Chunks.of(plan, spec.every, chunks)
    workers = max(1, min(jobs, len(ch.runs)))
    base = m.base_rss
    share = None
    if budget is not None:
        share = (int(budget * FIT) - base) // workers - (base if per_process else 0)
    tile_of = fit_tiles(spec, ch, share, base, budget, budget_source or "--max-memory")
    shape = (spec.X.shape[0], spec.X.shape[1], spec.Y.shape[1])
    worst = (0, 0, 0, 0)
    kinds, which = _kinds(ch)
    for k, (R, h, rows, d) in enumerate(kinds.tolist()):
        dtype = P.DTYPES[d]
        tile = int(tile_of[np.flatnonzero(which == k)[0]])
        parts = (kernel_bytes(shape, h, dtype, tile),
                 buffer_bytes(R, shape, h, rows, spec.loss_dtype, dtype),
                 writer_bytes(R, rows, spec.loss_dtype, weight_values(spec, R, h)))  # fmt: skip
        # the tile's scratch is freed before the chunk is written: a worker holds its
        # buffers with either the scratch or the writer's copies, never both
        need = parts[1] + max(parts[0], parts[2])
        if need > worst[0]:
            worst = (need, *parts)
    worker = worst[0] + (base if per_process else 0)
    rows = int((ch.runs * ch.slots).sum())
    n_files = len(ch.runs)
    seconds = _seconds(spec, ch, m, workers)
    return Cost(
        runs=int(ch.runs.sum()), chunks=n_files, epoch_runs=int((ch.runs * ch.epochs).sum()),
        loss_rows=rows, workers=workers, kernel_bytes=worst[1], buffer_bytes=worst[2],
        writer_bytes=worst[3], base_bytes=base, worker_bytes=worker,
        peak_bytes=base + workers * worker,
        losses_bytes=int(rows * m.row_fraction * m.loss_bytes_per_row
                         + n_files * m.loss_bytes_per_file),
        runs_bytes=int(ch.runs.sum() * m.run_bytes_per_run + n_files * m.run_bytes_per_file),
        weights_bytes=weights_bytes(spec, plan, ch),
        seconds=seconds, rate_source=m.rate_source,
        tile=int(tile_of.min()) if len(tile_of) else tiles.TILES[-1],
        budget=budget, budget_source=budget_source, tiles=tile_of,
    )  # fmt: skip


def weights_bytes(spec: Spec, plan: Plan, ch: Chunks) -> int:
    """Bytes of these chunks' weights files (0 where the spec stores none)."""
    if spec.weights == "none" or not len(ch.runs):
        return 0
    bias = plan.per_chunk("bias").astype(bool)[ch.index]
    values = sum(weight_values(spec, int(R), int(h), bool(b))
                 for R, h, b in zip(ch.runs, ch.hidden, bias, strict=True))  # fmt: skip
    return int(values * WEIGHT_BYTES_PER_VALUE + len(ch.runs) * WEIGHT_BYTES_PER_FILE)


def flops(spec: Spec, ch: Chunks) -> float:
    """The kernel's arithmetic for these chunks, every epoch run (tiles.epoch_work)."""
    n, ni, no = spec.X.shape[0], spec.X.shape[1], spec.Y.shape[1]
    out = spec.train["output"]
    total = 0.0
    work = ch.runs.astype(np.float64) * ch.epochs
    for h, d in {(int(h), int(d)) for h, d in zip(ch.hidden, ch.dtype, strict=True)}:
        ops = tiles.epoch_work(n, ni, h, no, out, P.DTYPES[d])
        total += float(work[(ch.hidden == h) & (ch.dtype == d)].sum()) * ops
    return total


def _seconds(spec: Spec, ch: Chunks, m: Measured, workers: int) -> float:
    """Start-up, then the kernel's arithmetic and the writing, shared by the workers."""
    work = flops(spec, ch) * m.epoch_fraction
    if not math.isfinite(work):
        return math.inf
    rows = float((ch.runs * ch.slots).sum()) * m.row_fraction
    busy = work / max(m.flops_per_s, 1.0) + rows * max(m.write_ns_per_row, 0.0) * 1e-9
    return m.startup_s + busy / workers
