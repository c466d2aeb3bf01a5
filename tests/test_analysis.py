"""runner.load: tables, summaries and curves checked against plain pandas on the raw files."""

import io

import numpy as np
import pandas as pd
import pytest

import runner
from runner.cli import main
from runner.results.analysis import Results

SUMMARY_STATS = [
    "runs",
    "diverged_share",
    "final_loss_median",
    "final_loss_q25",
    "final_loss_q75",
    "best_loss",
    "converged_share",
    "converged_epoch_median",
]


def expected_summary(runs: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """The summary written out by hand: one loop over grid points, numpy statistics."""
    rows = []
    for key, g in runs.groupby(by, observed=True):
        ok = g.loc[~g["diverged"], "final_loss"].to_numpy()
        conv = g["converged_epoch"].dropna().to_numpy()
        q = np.percentile(ok, [50, 25, 75]) if len(ok) else [np.nan] * 3
        rows.append(
            [
                *key,
                len(g),
                g["diverged"].mean(),
                *q,
                np.nanmin(g["min_loss"]),
                len(conv) / len(g),
                np.median(conv) if len(conv) else np.nan,
            ]
        )
    return pd.DataFrame(rows, columns=[*by, *SUMMARY_STATS])


def assert_same(got: pd.DataFrame, want: pd.DataFrame, keys: list[str]) -> None:
    got = got.sort_values(keys, ignore_index=True)
    want = want.sort_values(keys, ignore_index=True)
    assert list(got.columns) == list(want.columns)
    for c in keys:
        assert got[c].astype(object).tolist() == want[c].astype(object).tolist()
    np.testing.assert_allclose(
        got[SUMMARY_STATS].to_numpy(float), want[SUMMARY_STATS].to_numpy(float), rtol=1e-12
    )


def test_runs_and_losses_are_the_raw_parquet_tables(seed_results):
    res = runner.load(seed_results)
    raw_runs = pd.read_parquet(seed_results / "runs").sort_values("run_id", ignore_index=True)
    pd.testing.assert_frame_equal(res.runs, raw_runs, check_exact=True)
    assert res.spec["name"] == "seed-sweep" and res.axes == ["hidden", "alpha", "seed"]
    raw = pd.read_parquet(seed_results / "losses")
    want = raw[(raw["alpha"] == 0.2) & (raw["epoch"] <= 10)][["run_id", "epoch", "loss"]]
    got = res.losses(
        columns=["run_id", "epoch", "loss"], filters=[("alpha", "==", 0.2), ("epoch", "<=", 10)]
    )
    key = ["run_id", "epoch"]
    got, want = got.sort_values(key, ignore_index=True), want.sort_values(key, ignore_index=True)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert len(res.losses()) == len(raw)


@pytest.mark.parametrize("fixture", ["seed_results", "three_axis_results", "init_results"])
def test_summary_equals_a_groupby_of_the_runs(fixture, request):
    folder = request.getfixturevalue(fixture)
    res = runner.load(folder)
    runs = pd.read_parquet(folder / "runs")
    keys = [c for c in res.axes if c != "seed"]
    keys = [k for a in keys for k in (("init_lo", "init_hi") if a == "init" else (a,))]
    assert_same(res.summary(), expected_summary(runs, keys), keys)
    assert res.summary()["runs"].sum() == len(runs)


def test_summary_by_one_axis_and_sorted(seed_results):
    res = runner.load(seed_results)
    runs = pd.read_parquet(seed_results / "runs")
    got = res.summary(by="alpha", sort="final_loss_median")
    assert_same(got, expected_summary(runs, ["alpha"]), ["alpha"])
    med = got["final_loss_median"].dropna().to_numpy()
    assert (np.diff(med) >= 0).all()
    # a point where every run diverged has no final-loss median
    all_div = res.summary().query("diverged_share == 1")
    assert len(all_div) and all_div["final_loss_median"].isna().all()


def test_best_runs_are_the_smallest_final_losses(seed_results):
    res = runner.load(seed_results)
    runs = pd.read_parquet(seed_results / "runs")
    ok = runs[~runs["diverged"]].nsmallest(3, "final_loss")
    assert res.best(3)["run_id"].tolist() == ok["run_id"].tolist()
    assert res.best(3, key="min_loss")["min_loss"].is_monotonic_increasing


def test_curves_match_the_raw_losses(seed_results):
    """Median and quartiles over the seeds that did not diverge, at each sampled epoch, with
    the point's diverged share beside them; chunk_runs = 3 makes grid points straddle loss
    files. No run of this sweep converges early, so every sampled epoch is recorded."""
    res = runner.load(seed_results)
    curves = res.curves()
    raw = pd.read_parquet(seed_results / "losses")
    runs = pd.read_parquet(seed_results / "runs")
    assert runs["converged_epoch"].isna().all()
    assert runs["diverged"].any() and not runs["diverged"].all()
    calm = raw[raw["run_id"].isin(runs.loc[~runs["diverged"], "run_id"])]
    share = runs.groupby(["hidden", "alpha"])["diverged"].mean()
    checked = 0
    for (hidden, alpha), want_share in share.items():
        c = curves[(curves["hidden"] == hidden) & (curves["alpha"] == alpha)].set_index("epoch")
        assert (c["diverged_share"] == want_share).all()
        sub = calm[(calm["hidden"] == hidden) & (calm["alpha"] == alpha)]
        assert (c["runs"] == sub["run_id"].nunique()).all()
        if sub.empty:  # every run diverged: no quantiles
            assert c[["median", "q25", "q75"]].isna().all().all()
            continue
        if not np.isfinite(sub["loss"]).all():
            continue  # blown up past float32 without diverging (issue 21's diverge_factor)
        g = sub.groupby("epoch")["loss"]
        for stat, q in (("median", 0.5), ("q25", 0.25), ("q75", 0.75)):
            want = g.quantile(q).loc[c.index].to_numpy()
            np.testing.assert_allclose(c[stat].to_numpy(), want, rtol=1e-6)
        checked += 1
    assert (share > 0).any() and (share < 1).any() and checked >= 2


def test_sample_epochs_lie_on_the_record_grid():
    spec = {"grid": {}, "train": {"epochs": 10000}, "record": {"every": 7}, "axis_order": []}
    res = Results(None, {"spec": spec})
    e = res.sample_epochs(200)
    assert e[0] == 1 and e[-1] == 10000 and (np.diff(e) > 0).all()
    assert len(e) <= 210
    assert all(x == 1 or x % 7 == 0 or x == 10000 for x in e)


def test_curves_of_a_sweep_recorded_every_7th_epoch(init_results):
    res = runner.load(init_results)
    curves = res.curves()
    recorded = set(pd.read_parquet(init_results / "losses", columns=["epoch"])["epoch"])
    assert set(curves["epoch"]) <= recorded
    assert {"init_lo", "init_hi", "update"} <= set(curves.columns)


def test_bad_input_is_a_runner_error(seed_results, tmp_path):
    res = runner.load(seed_results)
    with pytest.raises(runner.RunnerError, match="no such results folder"):
        runner.load(tmp_path / "nope")
    with pytest.raises(runner.RunnerError, match=r"sweep\.json"):
        runner.load(tmp_path)
    with pytest.raises(runner.RunnerError, match="did you mean 'alpha'"):
        res.summary(by="alpah")
    with pytest.raises(runner.RunnerError, match="sort"):
        res.summary(sort="lossy")
    with pytest.raises(runner.RunnerError, match="column"):
        res.losses(filters=[("alhpa", "==", 0.1)])


def test_cli_summary_formats_and_exit_codes(seed_results, capsys):
    folder = str(seed_results)
    assert main(["summary", folder, "--format", "csv"]) == 0
    # Python's float() rounds correctly (pandas' own parser did not before 3.0), so the
    # full-precision CSV reads back to the same bits
    exact = {c: lambda v: float(v) if v else np.nan for c in SUMMARY_STATS}
    got = pd.read_csv(io.StringIO(capsys.readouterr().out), converters=exact)
    want = runner.load(seed_results).summary()
    np.testing.assert_array_equal(
        got[SUMMARY_STATS].to_numpy(float), want[SUMMARY_STATS].to_numpy(float)
    )
    assert main(["summary", folder, "--by", "hidden", "--format", "markdown"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 + 2 and lines[0].startswith("| hidden |")
    assert main(["summary", folder, "--sort", "best_loss"]) == 0
    table = capsys.readouterr().out.strip().splitlines()
    assert table[0].split()[:3] == ["hidden", "alpha", "runs"] and len(table) == 5
    for argv in (["--by", "nope"], ["--sort", "nope"]):
        assert main(["summary", folder, *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "nope" in err and folder in err
    assert main(["summary", folder + "-missing"]) == 2


def test_one_number_format_and_one_missing_value():
    """Summaries, plots and the report write numbers one way: 3 significant digits,
    whole numbers below 1e6 as integers, and every missing value as MISSING."""
    from runner.results.analysis import MISSING, number
    from runner.results.report import format_table

    values = [3.16227766e-05, 0.45678, 1.301e11, 2000.0, 4, np.float32(0.1), np.int32(7),
              1e6, np.nan, None, pd.NA, True]  # fmt: skip
    want = ["3.16e-05", "0.457", "1.3e+11", "2000", "4", "0.1", "7", "1e+06", MISSING, MISSING,
            MISSING, "True"]  # fmt: skip
    assert [number(v) for v in values] == want
    frame = pd.DataFrame({"alpha": [3.16227766e-05, 0.1], "epoch": pd.array([3, None], "Int32")})
    assert format_table(frame).splitlines() == ["   alpha  epoch", "3.16e-05      3",
                                                "     0.1      -"]  # fmt: skip
    assert "| 3.16e-05 | 3 |" in format_table(frame, "markdown")
