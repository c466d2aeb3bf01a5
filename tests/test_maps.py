"""Trainability maps: Results.map against plain pandas on real and synthetic folders,
runner plot --map, the map in the report, the colours, bad axis names."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import make_sweep
from test_plots import check_png

import runner
from runner.cli import main
from runner.errors import RunnerError
from runner.results.analysis import boundary_dimension
from runner.results.mapplot import CONVERGED, OTHER, _colours, log_spaced, map_figure
from runner.results.maps import default_axes

INIT = "[" + ", ".join(f"[0.0, {h}]" for h in (0.25, 0.5, 1.0, 2.0, 4.0)) + "]"


@pytest.fixture(scope="module")
def alpha_init(tmp_path_factory):
    """12 log-spaced alphas x 5 init widths x 3 seeds on the seed data: the small alphas
    converge, the large ones diverge; 7 runs a chunk, so points straddle files."""
    grid = (
        "alpha = { start = 0.01, stop = 1.0, num = 12, log = true }\n"
        f"init = {INIT}\nseed = [0, 1, 2]"
    )
    root = tmp_path_factory.mktemp("alpha-init")
    return make_sweep(root, "alpha-init", grid, train="epochs = 200\nhidden = 8",
                      extra="[sweep]\nchunk_runs = 7")  # fmt: skip


def pandas_map(folder, x, y):
    """The map computed plainly from the Parquet files: log10 of tail_mean / first_loss
    (+inf if diverged), or, in a folder without those columns (written before runner kept
    them), of final / epoch-1 loss; the median per (y, x), pivoted."""
    runs = pd.read_parquet(folder / "runs")
    if "tail_mean" in runs:
        ratio = runs["tail_mean"].to_numpy() / runs["first_loss"].to_numpy()
    else:
        losses = pd.read_parquet(folder / "losses")
        first = losses[losses["epoch"] == 1].set_index("run_id")["loss"].astype("float64")
        ratio = runs["final_loss"].to_numpy() / first.loc[runs["run_id"]].to_numpy()
    runs["v"] = np.where(runs["diverged"], np.inf, np.log10(ratio))
    return runs.pivot_table(index=y, columns=x, values="v", aggfunc="median", dropna=False)


def test_a_map_is_the_median_of_the_log_ratio_per_point(alpha_init):
    m = runner.load(alpha_init).map("alpha", "init_hi")
    want = pandas_map(alpha_init, "alpha", "init_hi")
    assert m.array.shape == (5, 12) and m.x == "alpha" and m.y == "init_hi"
    np.testing.assert_array_equal(m.xs, want.columns.to_numpy())
    np.testing.assert_array_equal(m.ys, want.index.to_numpy())
    np.testing.assert_array_equal(m.array, want.to_numpy())  # exact, inf where inf
    np.testing.assert_array_equal(m.converged, want.to_numpy() < 0)
    np.testing.assert_array_equal(m.diverged, np.isposinf(want.to_numpy()))
    assert (m.runs == 3).all()
    assert m.converged.any() and m.diverged.any()  # the fixture crosses the boundary
    assert m.label == "log10(tail_mean / first_loss)"


def test_a_map_of_a_folder_written_before_the_tail_columns(tmp_path):
    """tests/golden/v2 (the second round's files): the ratio is final / epoch-1 loss."""
    import shutil

    shutil.copytree(Path(__file__).parent / "golden" / "v2", tmp_path / "v2")
    m = runner.load(tmp_path / "v2").map("alpha", "hidden")
    want = pandas_map(tmp_path / "v2", "alpha", "hidden")
    np.testing.assert_array_equal(m.array, want.to_numpy())
    assert m.label == "log10(final_loss / loss at epoch 1)"


def test_a_map_of_a_runs_column_and_over_other_axes(alpha_init):
    res = runner.load(alpha_init)
    m = res.map("init_hi", "alpha", value="min_loss")  # x, y swapped: the transpose
    runs = pd.read_parquet(alpha_init / "runs")
    want = runs.pivot_table(index="alpha", columns="init_hi", values="min_loss", aggfunc="median")
    np.testing.assert_array_equal(m.array, want.to_numpy())
    np.testing.assert_array_equal(m.converged, res.map("alpha", "init_hi").converged.T)
    # one axis and seed: the median runs over the init widths as well (15 runs a pixel)
    by_seed = res.map("alpha", "seed")
    assert (by_seed.runs == 5).all() and by_seed.array.shape == (3, 12)


def write_synthetic(template, folder, runs: pd.DataFrame) -> None:
    """A results folder holding ``runs`` as its one runs file (sweep.json from ``template``)."""
    (folder / "runs").mkdir(parents=True)
    (folder / "losses").mkdir()
    meta = json.loads((template / "sweep.json").read_text())
    (folder / "sweep.json").write_text(json.dumps(meta))
    runs.to_parquet(folder / "runs" / "chunk-000000.parquet", index=False)


def test_a_synthetic_folder_with_tail_mean_and_first_loss(seed_results, tmp_path):
    """With the columns first_loss and tail_mean the ratio is theirs; a diverged run counts
    as +inf; an even count takes the mean of the middle two; a missing point is NaN."""
    rows = [  # alpha, hidden, seed, first_loss, tail_mean, diverged
        (0.03, 4, 0, 1.0, 0.1, False), (0.03, 4, 1, 1.0, 0.01, False),  # -1, -2, -1, inf: median -1
        (0.03, 4, 2, 2.0, 0.2, False), (0.03, 4, 3, 1.0, 1e3, True),
        (0.2, 4, 0, 1.0, 5.0, True), (0.2, 4, 1, 1.0, 0.5, False),  # 2 of 4 diverged: inf
        (0.2, 4, 2, 1.0, 3.0, True), (0.2, 4, 3, 1.0, 0.5, False),
        (0.03, 8, 0, 4.0, 8.0, False), (0.03, 8, 1, 4.0, 40.0, False),  # ratio 2 and 10
        (0.03, 8, 2, 1.0, np.nan, False),  # no value: left out
    ]  # (0.2, 8): no run finished  # fmt: skip
    runs = pd.DataFrame(rows, columns=["alpha", "hidden", "seed", "first_loss", "tail_mean",
                                       "diverged"])  # fmt: skip
    runs.insert(0, "run_id", np.arange(len(runs), dtype=np.int32))
    runs["hidden"] = runs["hidden"].astype(np.int32)
    runs["final_loss"] = runs["tail_mean"]
    write_synthetic(seed_results, tmp_path / "syn", runs)
    m = runner.load(tmp_path / "syn").map("alpha", "hidden")
    assert m.label == "log10(tail_mean / first_loss)"
    np.testing.assert_array_equal(m.xs, [0.03, 0.2])
    np.testing.assert_array_equal(m.ys, [4, 8])
    expect = np.array(
        [[(np.log10(0.1) + np.log10(0.1)) / 2, np.inf],
         [(np.log10(2.0) + np.log10(10.0)) / 2, np.nan]]
    )  # fmt: skip
    np.testing.assert_array_equal(m.array, expect)
    np.testing.assert_array_equal(m.converged, [[True, False], [False, False]])
    np.testing.assert_array_equal(m.diverged, [[False, True], [False, False]])
    np.testing.assert_array_equal(m.runs, [[4, 4], [3, 0]])
    table = m.frame()
    assert len(table) == 4 and list(table.columns[:3]) == ["alpha", "hidden", "log_ratio"]
    # the colours: converged blue, diverged at the red ramp's end, missing grey
    rgba, good, bad = _colours(m)
    assert np.allclose(rgba[1, 1, :3], 0.88)
    assert tuple(rgba[0, 1]) == tuple(OTHER.get_over())
    assert rgba[0, 0, 2] > rgba[0, 0, 0] and rgba[1, 0, 0] > rgba[1, 0, 2]
    assert good.vmax == 0.0 and bad.vmin == 0.0


def test_bad_axis_and_value_names_are_runner_errors(alpha_init, init_results):
    res = runner.load(alpha_init)
    valid = "choose from init_lo, init_hi, alpha, seed"
    with pytest.raises(RunnerError, match=rf"x: 'alfa' is no numeric grid axis.*{valid}"):
        res.map("alfa", "init_hi")
    with pytest.raises(RunnerError, match=r"y: 'hidden'.*choose from init_lo, init_hi, alpha"):
        res.map("alpha", "hidden")  # a fixed parameter, no axis
    with pytest.raises(RunnerError, match="both 'alpha'"):
        res.map("alpha", "alpha")
    with pytest.raises(RunnerError, match=r"unknown value 'loss'.*log_ratio.*final_loss"):
        res.map("alpha", "init_hi", value="loss")
    with pytest.raises(RunnerError, match="'update' is no numeric grid axis"):
        runner.load(init_results).map("update", "init_lo")  # a string axis


def test_boundary_dimension_of_a_map(alpha_init):
    m = runner.load(alpha_init).map("alpha", "init_hi")
    got = m.boundary_dimension(min_boxes=1)
    want = boundary_dimension(m.converged, min_boxes=1)
    assert got.dimension == want.dimension and (got.counts == want.counts).all()
    assert got.counts[0] > 0  # the map has a boundary


def test_log_axes_where_the_values_are_log_spaced():
    assert log_spaced(np.geomspace(0.01, 1, 12))
    assert log_spaced(np.array([1, 2, 4, 8, 16]))
    assert not log_spaced(np.array([1, 2, 3, 4, 5]))
    assert not log_spaced(np.array([-1.0, 0.0, 1.0, 2.0]))
    assert log_spaced(np.array([0.1, 1.0])) and not log_spaced(np.array([1.0, 2.0]))


def test_plot_map_writes_only_the_map(alpha_init, tmp_path, capsys):
    out = tmp_path / "figs"
    assert main(["plot", str(alpha_init), "--map", "alpha,init_hi", "--out", str(out)]) == 0
    assert capsys.readouterr().out.split() == [str(out / "map.png")]
    assert [p.name for p in out.iterdir()] == ["map.png"]
    check_png(out / "map.png")
    fig = map_figure(runner.load(alpha_init), "alpha", "init_hi")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "alpha (log scale)" and ax.get_ylabel() == "init_hi (log scale)"
    bars = [a.get_ylabel() for a in fig.axes[1:]]
    assert any(b.startswith("not converged: log10(tail_mean") for b in bars)
    assert any(b.startswith("converged: log10(tail_mean") for b in bars)
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert ticks == ["0.25", "0.5", "1", "2", "4"]  # the one number format
    assert CONVERGED.N == OTHER.N == 256


@pytest.mark.parametrize(
    ("arg", "message"),
    [("alpha", "--map: needs two axes X,Y"), ("alpha,hidden", "'hidden' is no numeric grid axis"),
     ("alpha,,", "needs two axes")],
)  # fmt: skip
def test_plot_map_bad_axes_exit_2_and_write_nothing(alpha_init, tmp_path, capsys, arg, message):
    out = tmp_path / "figs"
    assert main(["plot", str(alpha_init), "--map", arg, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_the_report_shows_a_map_with_two_numeric_axes(alpha_init, one_axis_results, tmp_path):
    from runner.results.report import report_html

    assert default_axes(runner.load(alpha_init)) == ("alpha", "init_hi")
    assert 'id="fig-map"' in report_html(runner.load(alpha_init))
    assert default_axes(runner.load(one_axis_results)) is None
    assert 'id="fig-map"' not in report_html(runner.load(one_axis_results))
    with pytest.raises(RunnerError, match="needs two numeric axes that vary"):
        map_figure(runner.load(one_axis_results))


def test_a_map_needs_the_loss_at_epoch_1_or_the_new_columns(seed_results, tmp_path):
    runs = runner.load(seed_results).runs.drop(columns=["first_loss", "tail_mean"])
    folder = tmp_path / "syn"
    write_synthetic(seed_results, folder, runs)
    with pytest.raises(RunnerError, match=r"chunk-000000.parquet: unreadable Parquet file"):
        runner.load(folder).map("alpha", "hidden")  # the loss file is missing
    later = pd.DataFrame({"run_id": runs["run_id"], "epoch": np.int32(2), "loss": np.float32(1)})
    later.to_parquet(folder / "losses" / "chunk-000000.parquet", index=False)
    with pytest.raises(RunnerError, match=r"no loss at epoch 1 for 16 runs \(first: run 0\)"):
        runner.load(folder).map("alpha", "hidden")


def test_a_map_refuses_more_points_than_it_holds(alpha_init, monkeypatch):
    from runner.results import maps

    monkeypatch.setattr(maps, "MAX_POINTS", 59)
    with pytest.raises(RunnerError, match="alpha has 12 values and init_hi 5: 60 points, over"):
        runner.load(alpha_init).map("alpha", "init_hi")
