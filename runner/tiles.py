"""Runs per kernel tile, chosen from the shape, the dtype and the machine's caches.

Pure Python (no Numba): the chunk planner and ``runner bench`` use it too.
"""

from __future__ import annotations

import os

import numpy as np

TILES = (4, 8, 16, 32, 64)  # powers of two: a chunk of a multiple of 64 runs is whole tiles


def choose_tile(n: int, inputs: int, hidden: int, outputs: int, dtype: str = "float64") -> int:
    """Runs per tile for this shape (``RUNNER_TILE`` in the environment overrides it)."""
    env = os.environ.get("RUNNER_TILE", "")
    if env:
        return _env_tile(env)
    return 64


def _env_tile(text: str) -> int:
    try:
        tile = int(text)
    except ValueError:
        tile = -1
    if tile not in TILES:
        raise ValueError(f"RUNNER_TILE must be one of {TILES}, got {text!r}")
    return tile


def itemsize(dtype: str) -> int:
    return np.dtype(dtype).itemsize
