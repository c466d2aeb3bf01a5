"""The fractal dimension of the boundary between two classes of a 2-D map (box counting)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BoundaryDimension:
    """The median local slope of log(count) against log(1/size), with what it was read from."""

    dimension: float
    sizes: np.ndarray  # box sides, in pixels: 1, 2, 4, ...
    counts: np.ndarray  # boxes holding at least one edge, per size
    slopes: np.ndarray  # local slopes between neighbouring sizes

    def __float__(self) -> float:
        return self.dimension


def edges(classes: np.ndarray) -> np.ndarray:
    """The 2x2 neighbourhoods that hold both classes: an (h-1, w-1) boolean array."""
    c = np.asarray(classes, dtype=bool)
    if c.ndim != 2 or min(c.shape) < 2:
        raise ValueError(f"a 2-D map of at least 2x2 is needed, got shape {c.shape}")
    quad = c[:-1, :-1].astype(np.int8) + c[1:, :-1] + c[:-1, 1:] + c[1:, 1:]
    return (quad > 0) & (quad < 4)


def box_counts(edge: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """How many boxes of each side hold an edge; the map is tiled from its corner."""
    counts = []
    for s in sizes:
        h, w = -(-edge.shape[0] // s) * s, -(-edge.shape[1] // s) * s
        padded = np.zeros((h, w), dtype=bool)
        padded[: edge.shape[0], : edge.shape[1]] = edge
        boxes = padded.reshape(h // s, s, w // s, s).any(axis=(1, 3))
        counts.append(int(np.count_nonzero(boxes)))
    return np.array(counts, dtype=np.int64)


def boundary_dimension(converged: np.ndarray, min_boxes: int = 4) -> BoundaryDimension:
    """Box-counting dimension of the boundary in a boolean map (True = converged).

    Edges are the 2x2 neighbourhoods holding both classes; they are counted in boxes
    of side 2**k, from 1 pixel up to the largest side that still leaves ``min_boxes``
    boxes along the shorter axis. The dimension is the median of the local slopes of
    log count against log(1/side). A map with no edge has dimension 0.
    """
    edge = edges(converged)
    top = max(int(np.log2(max(min(edge.shape) // min_boxes, 1))), 1)
    sizes = 2 ** np.arange(top + 1)
    counts = box_counts(edge, sizes)
    if counts[0] == 0:
        return BoundaryDimension(0.0, sizes, counts, np.zeros(0))
    logs = np.log(np.maximum(counts, 1))
    slopes = -np.diff(logs) / np.diff(np.log(sizes))
    return BoundaryDimension(float(np.median(slopes)), sizes, counts, slopes)
