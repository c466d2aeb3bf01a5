"""runner.results.boundary: box-counting dimension of a map's class boundary, on rasters of 1024²
whose dimension is known."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image, ImageDraw

from runner.results.boundary import boundary_dimension, edges

N = 1024
Y, X = np.mgrid[0:N, 0:N]


def koch_snowflake(levels: int) -> np.ndarray:
    """The vertices of a Koch snowflake, scaled into the raster."""
    pts = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, -np.sqrt(3) / 2], [0.0, 0.0]])
    turn = np.array([[0.5, -np.sqrt(3) / 2], [np.sqrt(3) / 2, 0.5]])
    for _ in range(levels):
        a, b = pts[:-1], pts[1:]
        d = (b - a) / 3
        peak = a + d + d @ turn.T
        pts = np.vstack([np.stack([a, a + d, peak, a + 2 * d], axis=1).reshape(-1, 2), pts[-1:]])
    pts -= pts.min(axis=0)
    return pts / pts.max() * 0.9 * N + 0.05 * N


def filled(polygon: np.ndarray) -> np.ndarray:
    image = Image.new("1", (N, N), 0)
    ImageDraw.Draw(image).polygon([tuple(p) for p in polygon], fill=1)
    return np.array(image, dtype=bool)


def test_a_straight_edge_has_dimension_one():
    assert boundary_dimension(X < 0.37 * N + 0.2 * Y).dimension == pytest.approx(1.0, abs=0.05)


def test_a_circles_edge_has_dimension_one():
    disc = (X - 511.3) ** 2 + (Y - 498.7) ** 2 < 380**2
    assert boundary_dimension(disc).dimension == pytest.approx(1.0, abs=0.1)


def test_a_koch_curve_has_dimension_log4_over_log3():
    result = boundary_dimension(filled(koch_snowflake(6)))
    assert result.dimension == pytest.approx(np.log(4) / np.log(3), abs=0.1)  # 1.26
    assert list(result.sizes[:3]) == [1, 2, 4] and (np.diff(result.counts) < 0).all()


def test_a_random_map_fills_the_plane():
    rng = np.random.default_rng(0)
    assert boundary_dimension(rng.random((N, N)) < 0.5).dimension >= 1.8


def test_a_map_of_one_class_has_no_boundary():
    result = boundary_dimension(np.ones((64, 64), dtype=bool))
    assert result.dimension == 0.0 and result.counts[0] == 0


@given(arrays(bool, st.tuples(st.integers(2, 40), st.integers(2, 40))))
def test_edges_are_exactly_the_mixed_2x2_neighbourhoods(classes):
    e = edges(classes)
    h, w = classes.shape
    want = np.array(
        [[len(set(classes[i:i + 2, j:j + 2].ravel())) == 2 for j in range(w - 1)]
         for i in range(h - 1)]
    ).reshape(h - 1, w - 1)  # fmt: skip
    assert (e == want).all()
    result = boundary_dimension(classes)
    assert result.counts[0] == int(want.sum())
    assert 0.0 <= result.dimension <= 2.0 + 1e-9


def test_a_map_that_is_not_2d_is_refused():
    with pytest.raises(ValueError, match="2-D map"):
        boundary_dimension(np.zeros(10, dtype=bool))
