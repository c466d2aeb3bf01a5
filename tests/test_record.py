"""[record] every = 0 (no per-epoch losses, only the runs table) and the runs' first_loss
and tail_mean, through sweep, resume, shards, growth and load."""

import shutil

import pandas as pd
import pytest
from helpers import read_results, write_spec

import runner
from runner.results.plots import figures
from runner.results.status import status

MAP = """\
name = "m"
[data]
random = {{samples = 16, inputs = 3, outputs = 1, seed = 1}}
[train]
epochs = 60
activation = "tanh"
scaling = "mean-field"
step = "gradient"
update = "simultaneous"
hidden = 4
[grid]
alpha_hidden = {{start = 1, stop = 3000, num = 4, log = true}}
alpha_output = {{start = 1, stop = 3000, num = 4, log = true}}
seed = [0, 1]
[record]
every = {every}
tail = 7
[sweep]
chunk_runs = 8
"""


def sweep(spec, out, *overrides: str, shard: str | None = None):
    return runner.sweep(spec, out=out, jobs=1, quiet=True, progress=False, shard=shard,
                        overrides=list(overrides))  # fmt: skip


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """The same map with every = 0 and every = 1, each swept in one go."""
    root = tmp_path_factory.mktemp("record")
    out = {}
    for every in (0, 1):
        spec = write_spec(root, MAP.format(every=every), name=f"m{every}.toml")
        sweep(spec, root / f"e{every}")
        out[every] = (spec, root / f"e{every}" / "m")
    return out


def test_every_0_keeps_the_runs_table_and_no_losses(both):
    _, folder = both[0]
    _, full = both[1]
    losses0, runs0 = read_results(folder)
    losses1, runs1 = read_results(full)
    assert len(losses0) == 0 and len(losses1) == runs1["epochs_run"].sum()
    assert list(losses0.columns) == list(losses1.columns)
    # the statistics do not depend on what is recorded
    pd.testing.assert_frame_equal(runs0, runs1, check_exact=True)
    assert runs0["diverged"].any() and not runs0["diverged"].all()
    # first_loss and tail_mean (the mean of the last 7 of 60 epochs) from the losses
    by_run = losses1.groupby("run_id")["loss"]
    assert (runs1["first_loss"].astype("float32") == by_run.first().to_numpy()).all()
    ran = runs1[(runs1["epochs_run"] == 60) & (runs1["tail_mean"] < 1e30)]  # float32 losses
    assert len(ran) > 4
    tail = losses1[losses1["epoch"] > 53].groupby("run_id")["loss"].mean()
    pd.testing.assert_series_equal(ran.set_index("run_id")["tail_mean"], tail.loc[ran["run_id"]],
                                   check_names=False, rtol=1e-6)  # fmt: skip
    res = runner.load(folder)
    assert len(res.losses()) == 0 and res.spec["record"] == {
        "every": 0, "loss_dtype": "float32", "tail": 7}  # fmt: skip
    assert status(folder).complete
    assert res.map("alpha_hidden", "alpha_output").ratio == "tail_mean / first_loss"


def test_every_0_shards_resume_and_grow_as_one_sweep(both, tmp_path):
    spec, whole = both[0]
    out = tmp_path / "out"
    for i in range(3):
        sweep(spec, out, shard=f"{i}/3")
    (out / "m" / "runs" / "chunk-000001.parquet").unlink()  # lost: resumed
    assert sweep(spec, out).chunks_run == 1
    resumed, once = read_results(out / "m")[1], read_results(whole)[1]
    pd.testing.assert_frame_equal(resumed, once, check_exact=True)
    grown = sweep(spec, out, "grid.seed=[0, 1, 2]")
    assert grown.runs_trained == 16
    once = tmp_path / "once"
    sweep(spec, once, "grid.seed=[0, 1, 2]")
    got, want = read_results(out / "m")[1], read_results(once / "m")[1]
    key = ["alpha_hidden", "alpha_output", "seed"]
    got = got.drop(columns="run_id").sort_values(key, ignore_index=True)
    want = want.drop(columns="run_id").sort_values(key, ignore_index=True)
    pd.testing.assert_frame_equal(got, want, check_exact=True)


def test_curves_need_losses_and_say_so(both, tmp_path):
    _, folder = both[0]
    copy = tmp_path / "m"
    shutil.copytree(folder, copy)
    res = runner.load(copy)
    with pytest.raises(runner.RunnerError, match=r"every = 0"):
        res.curves()
    assert sorted(figures(res)) == ["divergence", "final_loss", "map"]
