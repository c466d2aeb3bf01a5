"""runner plot: PNG files for grids of 0, 1, 2 and 3 axes, string axes, init, diverged runs."""

import struct

import numpy as np
import pytest
from matplotlib.image import imread

import runner
from runner.cli import main
from runner.results.plots import Layout

PNG = b"\x89PNG\r\n\x1a\n"


def png_size(path) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, after checking the PNG signature."""
    head = path.read_bytes()[:24]
    assert head[:8] == PNG, f"{path} is not a PNG"
    assert head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def check_png(path) -> None:
    width, height = png_size(path)
    assert 300 <= width <= 8000 and 200 <= height <= 8000, (path, width, height)
    pixels = imread(path)
    assert pixels.shape[:2] == (height, width)
    assert pixels[..., :3].std() > 0.05  # not blank
    assert (pixels[..., :3] < 0.5).mean() > 0.001  # some ink: lines, text


@pytest.mark.parametrize(
    ("fixture", "names"),
    [
        ("seed_results", {"curves", "final_loss", "divergence"}),
        ("one_axis_results", {"curves", "final_loss", "divergence"}),
        ("three_axis_results", {"curves", "final_loss", "divergence"}),
        ("init_results", {"curves", "final_loss", "divergence"}),
        ("no_grid_results", {"curves"}),
    ],
)
def test_plot_writes_valid_pngs(fixture, names, request, capsys):
    folder = request.getfixturevalue(fixture)
    assert main(["plot", str(folder)]) == 0
    printed = capsys.readouterr().out.split()
    files = sorted((folder / "plots").glob("*.png"))
    assert {f.stem for f in files} == names
    assert sorted(printed) == sorted(str(f) for f in files)
    for f in files:
        check_png(f)


def test_layout_follows_the_grid(three_axis_results, init_results, one_axis_results):
    three = Layout.of(runner.load(three_axis_results))
    assert (three.colour, three.column, three.rows) == ("alpha", "hidden", ["output"])
    two = Layout.of(runner.load(init_results))
    assert (two.colour, two.column, two.rows) == ("init", "update", [])
    one = Layout.of(runner.load(one_axis_results))
    assert (one.colour, one.column, one.rows) == ("alpha", None, [])


def test_facets_grow_with_the_axes(three_axis_results, one_axis_results, tmp_path):
    """Three axes: 2 rows (output) x 2 columns (hidden) of panels; one axis: one panel."""
    assert main(["plot", str(three_axis_results), "--out", str(tmp_path / "a")]) == 0
    assert main(["plot", str(one_axis_results), "--out", str(tmp_path / "b")]) == 0
    w3, h3 = png_size(tmp_path / "a" / "curves.png")
    w1, h1 = png_size(tmp_path / "b" / "curves.png")
    assert w3 > 1.5 * w1 and h3 > 1.5 * h1
    # heatmap of three axes: one panel per output value
    _, hh3 = png_size(tmp_path / "a" / "final_loss.png")
    _, hh1 = png_size(tmp_path / "b" / "final_loss.png")
    assert hh3 > hh1


def test_diverged_points_are_drawn_and_marked(seed_results):
    """A diverging median ends with an x; points where all runs diverged are grey cells."""
    from runner.results.plots import curves_figure, heatmap_figure

    res = runner.load(seed_results)
    fig = curves_figure(res)
    markers = [ln for ax in fig.axes for ln in ax.lines if ln.get_marker() == "x"]
    assert markers
    heat = heatmap_figure(res, "final_loss")
    texts = [t.get_text() for ax in heat.axes for t in ax.texts]
    assert "all div." in texts
    share = res.summary()
    div = heatmap_figure(res, "divergence")
    shown = sorted(t.get_text() for ax in div.axes for t in ax.texts)
    assert shown == sorted(f"{100 * v:.0f}%" for v in share["diverged_share"])
    assert np.isfinite(share["final_loss_median"]).any()


def test_plot_of_a_missing_folder_is_bad_input(tmp_path, capsys):
    assert main(["plot", str(tmp_path / "none")]) == 2
    assert "no such results folder" in capsys.readouterr().err
