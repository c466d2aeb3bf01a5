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
    env = os.environ.get("RUNNER_TILE", "")
    if env:
        return _env_tile(env)
    budget = (caches or cache_sizes())["L2"]
    for tile in sorted(TILES, reverse=True):
        if (
            tile >= MIN_AUTO
            and working_set_bytes(n, inputs, hidden, outputs, dtype, tile) <= budget
        ):
            return tile
    return MIN_AUTO


def _env_tile(text: str) -> int:
    try:
        tile = int(text)
    except ValueError:
        tile = -1
    if tile not in TILES:
        raise ValueError(f"RUNNER_TILE must be one of {TILES}, got {text!r}")
    return tile


def epoch_ops(
    n: int,
    inputs: int,
    hidden: int,
    outputs: int,
    output: str = "linear",
    dtype: str = "float64",
    fastmath: bool = False,
) -> dict[str, int]:
    """Arithmetic of one epoch of one run, as the kernel does it: ``flops`` (adds,
    multiplies, compares of everything, the exponentials included; an FMA counts as
    one in fastmath), ``exps`` (sigmoids) and ``divisions`` (0 in fastmath: Newton's
    reciprocal is in flops). For a floor: flops over the core's vector adds and
    multiplies per second, plus divisions over its vector divisions per second."""
    exps = n * hidden + (n * outputs if output == "sigmoid" else 0)
    f32 = np.dtype(dtype) == np.float32
    if fastmath:  # clamp 2, reduce 3, Horner (9 or 5), scale 1, add 1, Newton 3-4 x 2
        per_exp = 2 + 3 + (5 if f32 else 9) + 1 + 1 + (6 if f32 else 8)
    else:  # clamp 2, reduce 4, Estrin (26 or 11) + 3, scale 1, add 1
        per_exp = 2 + 4 + (11 if f32 else 26) + 3 + 1 + 1
    dot = 2 * n * (inputs * hidden + hidden * outputs)  # forward
    dot += 2 * n * hidden * outputs + hidden * outputs  # Wz update
    dot += n * hidden * (2 * outputs + 3)  # hidden delta
    dot += 2 * n * inputs * hidden + inputs * hidden  # Wh update
    err = n * outputs * (4 if output == "linear" else 7) + 12  # error, loss, dZ; bookkeeping
    if fastmath:
        dot //= 2  # multiply-adds fused
    return {"flops": dot + err + exps * per_exp, "exps": exps,
            "divisions": 0 if fastmath else exps}  # fmt: skip
