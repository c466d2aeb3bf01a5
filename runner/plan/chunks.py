"""The run plan: every run of a sweep as typed columns, cut into chunks.

A spec expands to a *layer*: the product of its factors, the last varying
fastest. A factor is a small table (one row per value): a grid axis, or the
sampled points of ``[sample]``. The order is the per-call grid axes (in
``params.PARAMS`` order), then the sampled points (sorted by their per-call
columns, stably), then the per-run grid axes; so the runs sharing one kernel
call's parameters form contiguous *blocks*. Columns that do not vary are held
once (``fixed``). Nothing is materialised per run until a chunk asks for it, so
planning ten million runs takes a few small arrays.

A sweep that grows (docs/growth.md) is a list of layers, one per invocation
that added runs; a later layer keeps only the runs of its product that no
earlier layer holds (``mask``), and numbers them after the earlier ones.
``run_id`` is the position in that order; chunk indices run on across layers
too, so earlier chunks keep their index and their files.

Each block is cut into chunks of at most ``chunk_runs`` runs, in even pieces of
whole kernel tiles (multiples of ``TILE``) when ``chunk_runs >= TILE``; only a
block's last chunk may be shorter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from runner.kernel.codes import TILE  # runs per kernel tile: a chunk is whole tiles
from runner.plan.params import BY_NAME, COLUMN_DTYPE, COLUMNS, NUMPY, OWNER, PER_CALL


def slots(epochs: int, every: int) -> int:
    """Number of recorded epochs: epoch 1 and every multiple of ``every`` (none if 0)."""
    if every == 0:
        return 0
    return epochs if every == 1 else epochs // every + 1


Factor = dict[str, np.ndarray]  # column -> values, one row per value of the factor


def cut(kept: np.ndarray, chunk_runs: int) -> tuple[np.ndarray, np.ndarray]:
    """Chunks per block and runs per chunk (all but a block's last) for blocks of ``kept`` runs."""
    kept = np.asarray(kept, dtype=np.int64)
    cap = chunk_runs // TILE * TILE if chunk_runs >= TILE else chunk_runs
    count = -(-kept // cap)
    size = -(-kept // np.maximum(count, 1))  # even pieces,
    if cap % TILE == 0:
        size = -(-size // TILE) * TILE  # of whole kernel tiles
    return count, np.minimum(size, cap)


@dataclass
class Chunk:
    """One chunk's runs: ids ``[run_start, run_stop)`` and every parameter column."""

    index: int
    run_start: int
    run_stop: int
    columns: dict[str, np.ndarray]  # plan dtypes, in params.COLUMNS order

    def call(self) -> dict[str, Any]:
        """The per-call parameters (one value for the whole chunk), normalised."""
        out = {}
        for name in PER_CALL:
            p = BY_NAME[name]
            out[name] = p.from_row(tuple(self.columns[c][0] for c, _ in p.columns))
        return out


@dataclass
class Layer:
    """The runs one spec adds: a product of factors, less the runs of earlier layers."""

    fixed: dict[str, Any]  # column -> plan value, for columns that do not vary
    factors: list[Factor]  # in product order, the last varying fastest
    calls: int  # the leading factors that hold per-call columns only
    sampled: bool  # factor ``calls`` is the sampled points (sorted by per-call columns)
    chunk_runs: int
    mask: np.ndarray | None = field(default=None, repr=False)  # product positions kept
    run_offset: int = 0
    chunk_offset: int = 0

    @cached_property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(next(iter(f.values()))) for f in self.factors)

    @property
    def size(self) -> int:
        """Runs in the product (before removing those of earlier layers)."""
        return math.prod(self.shape)

    @cached_property
    def _blocks(self) -> tuple[np.ndarray, np.ndarray]:
        """Start and length (in product positions) of each block."""
        shape = self.shape
        K = math.prod(shape[: self.calls])
        if self.sampled:
            S, R = shape[self.calls], math.prod(shape[self.calls + 1 :])
            starts = _group_starts(self.factors[self.calls])
        else:
            S, R = 1, math.prod(shape[self.calls :])
            starts = np.zeros(1, np.int64)
        sizes = np.diff(np.append(starts, S)) * R
        block_start = (np.arange(K, dtype=np.int64)[:, None] * S * R + starts[None, :] * R).ravel()
        return block_start, np.tile(sizes, K)

    @cached_property
    def _geometry(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per block: runs kept, chunks, chunk length; cumulative chunks and runs."""
        start, size = self._blocks
        if self.mask is None:
            kept = size
        else:
            kept = np.array(
                [np.count_nonzero(self.mask[a : a + n]) for a, n in zip(start, size, strict=True)],
                dtype=np.int64,
            )
        count, piece = cut(kept, self.chunk_runs)
        chunks = np.concatenate([[0], np.cumsum(count)])
        runs = np.concatenate([[0], np.cumsum(kept)])
        return kept, piece, chunks, runs

    @property
    def n_runs(self) -> int:
        return int(self._geometry[3][-1])

    @property
    def n_chunks(self) -> int:
        return int(self._geometry[2][-1])

    def _locate(self, c: int) -> tuple[int, int, int, int]:
        """Local chunk c -> (block, first kept run in the block, runs, first run_id)."""
        kept, piece, chunks, runs = self._geometry
        if not 0 <= c < self.n_chunks:
            raise IndexError(c)
        b = int(np.searchsorted(chunks, c, side="right")) - 1
        first = (c - int(chunks[b])) * int(piece[b])
        n = min(int(piece[b]), int(kept[b]) - first)
        return b, first, n, self.run_offset + int(runs[b]) + first

    def chunk_range(self, c: int) -> tuple[int, int]:
        _, _, n, start = self._locate(c)
        return start, start + n

    def positions(self, c: int) -> np.ndarray:
        """Product positions of local chunk c's runs."""
        b, first, n, _ = self._locate(c)
        block_start, block_size = self._blocks
        bs = int(block_start[b])
        if self.mask is None:
            return bs + first + np.arange(n, dtype=np.int64)
        return _kept_positions(self.mask, bs, bs + int(block_size[b]), first, n)

    def chunk(self, c: int) -> Chunk:
        """Local chunk c with its columns."""
        start, stop = self.chunk_range(c)
        return Chunk(self.chunk_offset + c, start, stop, self.columns(self.positions(c)))

    def within(self, other: Layer) -> np.ndarray:
        """For each position of this layer's product: is the run in ``other``'s product?"""
        inside = np.ones(self.shape, bool)
        if any(
            other.fixed[c] != v and not _both_nan(other.fixed[c], v) for c, v in self.fixed.items()
        ):
            return np.zeros(self.size, bool)
        for f, (mine, theirs) in enumerate(zip(self.factors, other.factors, strict=True)):
            m = rows_in(mine, theirs)
            shape = [1] * len(self.shape)
            shape[f] = len(m)
            inside &= m.reshape(shape)
        return inside.ravel()

    def columns(self, pos: np.ndarray) -> dict[str, np.ndarray]:
        """Every column at product positions ``pos``."""
        found: dict[str, np.ndarray] = {}
        index = np.unravel_index(pos, self.shape) if self.factors else ()
        for factor, rows in zip(self.factors, index, strict=True):
            for col, values in factor.items():
                found[col] = values[rows]
        for col, value in self.fixed.items():
            found[col] = np.full(len(pos), value, dtype=NUMPY[COLUMN_DTYPE[col]])
        return {c: found[c] for c in COLUMNS}

    @property
    def varying(self) -> list[str]:
        """Columns that vary across this layer's product."""
        return [c for c in COLUMNS if c not in self.fixed]


def _kept_positions(mask: np.ndarray, start: int, stop: int, skip: int, n: int) -> np.ndarray:
    """Positions of the kept runs number ``skip`` to ``skip + n`` in ``mask[start:stop]``,
    scanning a slice at a time (memory bounded by the slice, not the block)."""
    found: list[np.ndarray] = []
    step = 1 << 20
    for a in range(start, stop, step):
        piece = mask[a : min(a + step, stop)]
        count = int(np.count_nonzero(piece))
        if skip >= count:
            skip -= count
            continue
        where = np.flatnonzero(piece)[skip : skip + n] + a
        found.append(where)
        n -= len(where)
        skip = 0
        if n == 0:
            break
    return np.concatenate(found) if found else np.zeros(0, np.int64)


def _group_starts(points: Factor) -> np.ndarray:
    """Starts of the runs of equal per-call columns in (sorted) sampled points."""
    call = [v for c, v in points.items() if OWNER[c].per_call]
    n = len(next(iter(points.values())))
    if not call:
        return np.zeros(1, np.int64)
    change = np.zeros(n, bool)
    change[0] = True
    for v in call:
        change[1:] |= v[1:] != v[:-1]
    return np.flatnonzero(change).astype(np.int64)


def sort_points(points: Factor) -> Factor:
    """Sampled points ordered by their per-call columns (stably), so blocks are contiguous."""
    call = [v for c, v in points.items() if OWNER[c].per_call]
    if not call:
        return points
    order = np.lexsort(call[::-1])
    return {c: v[order] for c, v in points.items()}


def make_layer(fixed: dict[str, Any], grid: dict[str, Factor], points: Factor | None,
               chunk_runs: int) -> Layer:  # fmt: skip
    """A layer from fixed columns, grid factors (by parameter) and sampled points."""
    names = [n for n in BY_NAME if n in grid]
    call = [grid[n] for n in names if BY_NAME[n].per_call]
    run = [grid[n] for n in names if not BY_NAME[n].per_call]
    factors = call + ([sort_points(points)] if points else []) + run
    return Layer(dict(fixed), factors, len(call), bool(points), chunk_runs)


# ----- identity across layers -----
def _keys(factor: Factor, cols: list[str]) -> np.ndarray:
    """Rows as int64 bit patterns (exact identity, NaN included), shape (rows, columns)."""
    out = []
    for c in cols:
        v = factor[c]
        out.append(v.view(np.int64) if v.dtype == np.float64 else v.astype(np.int64))
    return np.stack(out, axis=1)


def rows_in(a: Factor, b: Factor) -> np.ndarray:
    """For each row of ``a``: is it a row of ``b``?"""
    cols = sorted(a)
    if sorted(b) != cols:
        raise ValueError("factors with different columns")
    ka, kb = _keys(a, cols), _keys(b, cols)
    if len(cols) == 1:
        return np.isin(ka[:, 0], kb[:, 0])
    seen = {r.tobytes() for r in kb}
    return np.fromiter((r.tobytes() in seen for r in ka), bool, len(ka))


def stack(layers: list[Layer]) -> list[Layer]:
    """Give each layer its mask (runs no earlier layer holds) and its offsets."""
    run_offset = chunk_offset = 0
    for k, layer in enumerate(layers):
        hit = np.zeros(layer.shape, bool) if k else None
        for earlier in layers[:k]:
            if earlier.fixed.keys() != layer.fixed.keys() or len(earlier.factors) != len(
                layer.factors
            ):
                raise ValueError("layers of different structure")
            if any(
                earlier.fixed[c] != layer.fixed[c]
                and not _both_nan(earlier.fixed[c], layer.fixed[c])
                for c in layer.fixed
            ):
                continue  # another fixed value: no run in common
            inside = np.ones(layer.shape, bool)
            for f, (mine, theirs) in enumerate(zip(layer.factors, earlier.factors, strict=True)):
                m = rows_in(mine, theirs)
                shape = [1] * len(layer.shape)
                shape[f] = len(m)
                inside &= m.reshape(shape)
            hit |= inside
        layer.mask = None if hit is None or not hit.any() else ~hit.ravel()
        layer.__dict__.pop("_geometry", None)
        layer.run_offset, layer.chunk_offset = run_offset, chunk_offset
        run_offset += layer.n_runs
        chunk_offset += layer.n_chunks
    return layers


def _both_nan(a: Any, b: Any) -> bool:
    return isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)


@dataclass
class Plan:
    """Every run of a sweep: its layers, one per invocation that added runs."""

    layers: list[Layer]

    @property
    def n_runs(self) -> int:
        return sum(layer.n_runs for layer in self.layers)

    @property
    def n_chunks(self) -> int:
        return sum(layer.n_chunks for layer in self.layers)

    def _layer(self, c: int) -> tuple[Layer, int]:
        for layer in self.layers:
            if c < layer.chunk_offset + layer.n_chunks:
                return layer, c - layer.chunk_offset
        raise IndexError(c)

    def chunk_range(self, c: int) -> tuple[int, int]:
        """run_id range [start, stop) of chunk c."""
        layer, local = self._layer(c)
        return layer.chunk_range(local)

    def chunk(self, c: int) -> Chunk:
        layer, local = self._layer(c)
        return layer.chunk(local)

    def chunk_sizes(self) -> np.ndarray:
        """Runs in each chunk, in chunk order."""
        out = [np.zeros(0, np.int64)]
        for layer in self.layers:
            kept, piece, chunks, _ = layer._geometry
            count = np.diff(chunks)
            sizes = np.repeat(piece, count)
            has = count > 0
            sizes[chunks[1:][has] - 1] = (kept - piece * (count - 1))[has]
            out.append(sizes)
        return np.concatenate(out)

    def latest_runs(self) -> np.ndarray:
        """Runs of the latest layer's spec in each chunk (all of a chunk's runs for the
        chunks of the latest layer; fewer, or none, where values were removed since)."""
        last = self.layers[-1]
        out = [np.zeros(0, np.int64)]
        for layer in self.layers[:-1]:
            inside = layer.within(last)
            counts = [int(inside[layer.positions(c)].sum()) for c in range(layer.n_chunks)]
            out.append(np.array(counts, dtype=np.int64))
        sizes = self.chunk_sizes()
        out.append(sizes[last.chunk_offset :])
        return np.concatenate(out)

    def per_chunk(self, column: str) -> np.ndarray:
        """A per-call column's value for each chunk, in chunk order."""
        out = []
        for layer in self.layers:
            count = np.diff(layer._geometry[2])
            out.append(np.repeat(layer.columns(layer._blocks[0])[column], count))
        return np.concatenate(out) if out else np.zeros(0)
