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
        ("seed_results", {"curves", "final_loss", "divergence", "map"}),  # alpha x hidden
        ("one_axis_results", {"curves", "final_loss", "divergence"}),
        ("three_axis_results", {"curves", "final_loss", "divergence", "map"}),
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
    assert w3 >= w1 + 300 and h3 > 1.5 * h1  # a column of panels is 3.6 inches (360 px)
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


# ----- plots that survive diverging runs -----
def test_diverging_runs_leave_the_other_curves_readable(diverging_results):
    """The loss axis spans the bands of the runs that did not diverge (about 0.06 to 3.4
    here), not the diverged runs' losses up to 1e3 and beyond; each diverged run is an x
    at the top edge, at its divergence epoch."""
    from runner.results.plots import curves_figure

    res = runner.load(diverging_results)
    runs = res.runs
    assert runs["diverged"].any() and (runs.loc[runs["diverged"], "final_loss"] > 1e3).all()
    calm = res.curves()
    calm = calm[calm["runs"] > 0]
    low, high = calm["q25"].min(), calm["q75"].max()
    assert high < 10  # the runs that did not diverge stay small
    fig = curves_figure(res)
    panels = [ax for ax in fig.axes if ax.get_xlabel() == "epoch"]
    assert len(panels) == 2
    for ax in panels:
        bottom, top = ax.get_ylim()
        assert ax.get_yscale() == "log"  # 0.06 to 3.4: over a decade
        assert bottom <= low and high <= top <= 1.5 * high
    marks = [ln for ax in panels for ln in ax.lines if ln.get_label() == "_diverged"]
    epochs = sorted(x for ln in marks for x in ln.get_xdata())
    assert epochs == sorted(runs.loc[runs["diverged"], "diverged_epoch"].astype(float))
    assert all((ln.get_ydata() == 0.97).all() for ln in marks)  # top edge, in axes units


def test_legend_sits_outside_the_panels(diverging_results):
    from runner.results.plots import curves_figure

    fig = curves_figure(runner.load(diverging_results))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    (legend,) = fig.legends
    box = legend.get_window_extent(renderer)
    for ax in fig.axes:
        assert not box.overlaps(ax.get_window_extent(renderer))
    names = [t.get_text() for t in legend.get_texts()]
    assert names[:3] == ["alpha = 0.003", "alpha = 0.01", "alpha = 0.03"]
    assert names[3].startswith("alpha = 0.1 (") and names[3].endswith(" of 8 diverged)")
    assert names[-1] == "a run diverged (at its epoch)"
    colours = {tuple(h.get_color()) for h in legend.legend_handles[:7]}
    assert len(colours) == 7  # seven distinct categorical colours


def test_log_axis_only_when_the_losses_span_decades():
    import pandas as pd

    from runner.results.plots import y_axis

    def frame(low, high):
        return pd.DataFrame({"epoch": [1, 2], "median": [high, low], "q25": [high, low],
                             "q75": [high, low]})  # fmt: skip

    assert y_axis(frame(0.4, 1.0)) == ("linear", (0.37, 1.03))
    assert y_axis(frame(0.11, 1.0))[0] == "linear"
    assert y_axis(frame(0.1, 1.0))[0] == "log"
    scale, (bottom, top) = y_axis(frame(1e-6, 1.0))
    assert scale == "log" and bottom < 1e-6 and 1.0 < top < 2.0
    # a band that blows up without diverging: cut at 1000x the first epoch's loss
    blown = pd.DataFrame({"epoch": [1, 2], "median": [1.0, 1e50], "q25": [1.0, 0.5],
                          "q75": [1.0, 1e60]})  # fmt: skip
    assert y_axis(blown) == ("log", (0.5 / 1.5, 1e3 * 1.5))


def test_many_levels_get_a_labelled_colour_bar(tmp_path):
    """Over ten colour levels: one colour bar named by the axis, ticks in the one number
    format, instead of a legend entry per level."""
    from helpers import make_sweep

    from runner.results.plots import curves_figure

    grid = "alpha = { start = 1e-3, stop = 0.1, num = 12, log = true }\nseed = [0, 1]"
    folder = make_sweep(tmp_path, "many", grid, train="epochs = 50")
    fig = curves_figure(runner.load(folder))
    bars = [ax for ax in fig.axes if ax.get_ylabel() == "alpha"]
    assert len(bars) == 1
    ticks = [t.get_text() for t in bars[0].get_yticklabels()]
    assert ticks[0] == "0.001" and ticks[-1] == "0.1" and "0.00152" in ticks
    assert not fig.legends  # nothing diverged: no legend at all


def test_labels_use_the_one_number_format():
    import pandas as pd

    from runner.results.plots import labels

    values = np.geomspace(1e-5, 1e-3, 5)
    _, levels = labels(pd.DataFrame({"alpha": values}), "alpha")
    assert levels == ["1e-05", "3.16e-05", "0.0001", "0.000316", "0.001"]
    # two values that three digits would merge get more digits, so they stay apart
    _, levels = labels(pd.DataFrame({"alpha": [0.1, 0.10001]}), "alpha")
    assert levels == ["0.1", "0.10001"]
