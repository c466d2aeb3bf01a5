"""Runs per kernel tile, chosen from the shape, the dtype and the machine's caches.

A tile trains T runs side by side (T lanes). Its working set, the scratch arrays
of ``kernels.scratch`` plus X and Y, grows with samples x hidden x T; past the core's
L2 cache the kernel streams it from L3 or memory every epoch. ``choose_tile`` picks
the largest T whose working set fits L2, so big problems train in narrower tiles.
The tile changes only which runs share a kernel pass, never the arithmetic of a run:
every tile gives the same bytes. Pure Python (no Numba): the chunk planner and
``runner bench`` use it too.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from runner.errors import RunnerError

TILES = (4, 8, 16, 32, 64)  # powers of two: a chunk of a multiple of 64 runs is whole tiles
MIN_AUTO = 16  # narrower tiles lose more to loop overheads than they gain in cache
DEFAULT_CACHES = {"L1d": 32 << 10, "L2": 1 << 20, "L3": 8 << 20}  # when /sys says nothing
_SYS = Path("/sys/devices/system/cpu/cpu0/cache")


def cache_sizes(root: Path = _SYS) -> dict[str, int]:
    """Data cache sizes in bytes of the first CPU: ``{"L1d", "L2", "L3"}``, read from
    Linux's /sys (index*/level, type, size); a missing value keeps its default."""
    sizes = dict(DEFAULT_CACHES)
    for index in sorted(root.glob("index*")):
        try:
            level = int((index / "level").read_text())
            kind = (index / "type").read_text().strip()
            size = _parse_size((index / "size").read_text())
        except (OSError, ValueError):
            continue
        if kind in ("Data", "Unified") and level in (1, 2, 3):
            sizes["L1d" if level == 1 else f"L{level}"] = size
    return sizes


def _parse_size(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    return int(text.rstrip("KMG")) * scale


def working_set_bytes(
    n: int, inputs: int, hidden: int, outputs: int, dtype: str = "float64", tile: int = 64
) -> int:
    """Bytes a tile of ``tile`` runs touches every epoch: its weights, activations,
    deltas and accumulators (``kernels.scratch``), and the data X, Y."""
    f = np.dtype(dtype).itemsize
    per_lane = (
        2 * inputs * hidden + hidden * outputs  # wh and its update, wz
        + 2 * n * hidden + n * outputs  # h, dh, dz
        + hidden + 5  # accw; a, acc, zs, sq and the lane flags
    )  # fmt: skip
    return tile * (per_lane * f + 5 * 8) + n * (inputs + outputs) * f


def choose_tile(
    n: int,
    inputs: int,
    hidden: int,
    outputs: int,
    dtype: str = "float64",
    caches: dict[str, int] | None = None,
) -> int:
    """Runs per tile for this shape: the largest tile whose working set fits the L2
    cache, at least ``MIN_AUTO``. ``RUNNER_TILE`` in the environment overrides it."""
    told = env_tile()
    if told is not None:
        return told
    budget = (caches or cache_sizes())["L2"]
    for tile in sorted(TILES, reverse=True):
        if (
            tile >= MIN_AUTO
            and working_set_bytes(n, inputs, hidden, outputs, dtype, tile) <= budget
        ):
            return tile
    return MIN_AUTO


def env_tile() -> int | None:
    """``RUNNER_TILE``, checked (a RunnerError names it); None when unset."""
    text = os.environ.get("RUNNER_TILE", "").strip()
    if not text:
        return None
    try:
        tile = int(text)
    except ValueError:
        tile = -1
    if tile not in TILES:
        raise RunnerError(f"must be one of {TILES}, got {text!r}", key="RUNNER_TILE")
    return tile


# The sigmoid per mode as the CPU kernel computes it: (vector operations, divisions).
# Exact: two clamps; the reduction (a multiply, rint, two multiplies and adds); the
# polynomial by Estrin (25 operations in float64, 14 in float32); the scale by 2**k
# (two multiplies); 1 + exp; a division. Fastmath: a negation and a clamp, the same
# reduction with FMAs, Horner in FMAs (degree 9, 5), the scale, 1 + exp, and the
# reciprocal by a bit trick and Newton steps (4, 3) of two FMAs, no division.
SIGMOID = {
    ("float64", False): (36, 1),
    ("float64", True): (29, 0),
    ("float32", False): (25, 1),
    ("float32", True): (23, 0),
}


def epoch_ops(
    n: int,
    inputs: int,
    hidden: int,
    outputs: int = 1,
    output: str = "linear",
    dtype: str = "float64",
    fastmath: bool = False,
) -> dict[str, int]:
    """Arithmetic of one epoch of one run, as the kernel does it: ``ops`` (vector adds,
    multiplies and compares, the sigmoids included; an FMA counts as one in fastmath),
    ``divisions`` (the sigmoids' in the exact modes, and the loss's mean) and ``exps``
    (sigmoids). A floor: ops over the core's vector operations per second, or divisions
    over its divisions per second, whichever takes longer (runner.bench.peak)."""
    sig, sig_div = SIGMOID[dtype, fastmath]
    exps = n * hidden + (n * outputs if output == "sigmoid" else 0)

    def mac(terms: int) -> int:  # a sum of products: a multiply and an add, or an FMA
        return terms if fastmath else 2 * terms

    forward = n * (hidden * mac(inputs) + outputs * mac(hidden))
    # e = y - z, sq += e * e, dz = e * alpha (times z * (1 - z) for a sigmoid output)
    error = n * outputs * (2 + mac(1) + (3 if output == "sigmoid" else 0))
    bookkeeping = 6  # the loss's minimum, divergence and finiteness checks
    wz = hidden * outputs * (mac(n) + 1)
    delta = n * hidden * (mac(outputs) + 3)  # dz @ wz.T, then * h * (1 - h)
    wh = inputs * hidden * (mac(n) + 1)
    ops = forward + error + bookkeeping + wz + delta + wh + exps * sig
    return {"ops": ops, "divisions": exps * sig_div + 1, "exps": exps}


def epoch_work(n: int, inputs: int, hidden: int, outputs: int = 1, output: str = "linear",
               dtype: str = "float64", fastmath: bool = False) -> int:  # fmt: skip
    """One number for the arithmetic of an epoch-run, for rates and estimates
    (runner.plan.cost): epoch_ops' operations plus its divisions."""
    c = epoch_ops(n, inputs, hidden, outputs, output, dtype, fastmath)
    return c["ops"] + c["divisions"]
