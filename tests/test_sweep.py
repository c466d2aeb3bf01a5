"""Sweeps end to end: parallel equals sequential equals the reference; crash and resume."""

import json
import os
import signal
import subprocess

import numpy as np
import pandas as pd
import pytest
from helpers import ROOT, assert_same_results, env, read_results, runner_cmd, sweep_cmd, write_spec

import runner
from runner.cli import main
from runner.kernel import reference
from runner.plan.spec import load_spec


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("seq")
    spec = write_spec(tmp)
    report = runner.sweep(spec, out=tmp / "out", jobs=1, progress=False)
    assert report.complete
    return spec, tmp / "out" / "small"


@pytest.mark.parametrize("backend", ["sequential", "threading", "loky"])
@pytest.mark.parametrize("jobs", [1, 2])
def test_parallel_equals_sequential(tmp_path, sequential, backend, jobs):
    spec, seq = sequential
    runner.sweep(spec, out=tmp_path, jobs=jobs, backend=backend, progress=False)
    assert_same_results(tmp_path / "small", seq)


def test_columns_dtypes_and_row_counts(sequential):
    spec_path, folder = sequential
    spec = load_spec(spec_path)
    losses = pd.read_parquet(folder / "losses")
    runs = pd.read_parquet(folder / "runs")
    assert len(runs) == spec.n_runs == 36
    assert len(losses) == runs["epochs_run"].sum()  # every=1: every epoch run is a row
    assert list(losses.columns) == ["run_id", "hidden", "alpha", "seed", "epoch", "loss"]
    assert losses.dtypes.to_dict() == {
        "run_id": np.int32,
        "hidden": np.int32,
        "alpha": np.float64,
        "seed": np.int64,
        "epoch": np.int32,
        "loss": np.float32,
    }
    for col in [
        "run_id",
        "epochs",
        "output",
        "update",
        "hidden",
        "init_lo",
        "init_hi",
        "alpha",
        "seed",
        "epochs_run",
        "final_loss",
        "min_loss",
        "min_loss_epoch",
        "diverged",
        "diverged_epoch",
        "converged_epoch",
    ]:
        assert col in runs.columns
    assert runs["diverged"].dtype == bool
    assert str(runs["diverged_epoch"].dtype) == "Int32"
    assert isinstance(runs["output"].dtype, pd.CategoricalDtype)
    assert runs["diverged"].any()  # alpha 0.5 diverges at hidden 3
    assert (
        runs.loc[runs.diverged, "diverged_epoch"] == runs.loc[runs.diverged, "epochs_run"]
    ).all()


def test_run_order_is_documented_product(sequential):
    _spec_path, folder = sequential
    _, runs = read_results(folder)
    # hidden (kernel axis) outermost, then alpha, then seed fastest
    expect = [(h, a, s) for h in (2, 3) for a in (0.01, 0.1, 0.5) for s in range(6)]
    got = list(runs[["hidden", "alpha", "seed"]].itertuples(index=False, name=None))
    assert got == expect
    assert runs["run_id"].tolist() == list(range(36))


def test_losses_equal_reference_run_by_run(sequential):
    _spec_path, folder = sequential
    losses, runs = read_results(folder)
    X = np.array([[1, 1], [1, 2], [2, 1], [2, 2]], float)
    Y = np.array([[0], [1], [2], [3]], float)
    for row in runs.itertuples():
        Wh, Wz = reference.init_weights(row.seed, 2, row.hidden, 1)
        ref = reference.train_reference(X, Y, Wh, Wz, row.alpha, 300,
                                        diverge_factor=row.diverge_factor)  # fmt: skip
        got = losses.loc[losses.run_id == row.run_id]
        assert got["epoch"].tolist() == list(range(1, len(ref.loss) + 1))
        with np.errstate(over="ignore"):
            expect = ref.loss.astype(np.float32)
        np.testing.assert_array_equal(got["loss"].to_numpy(), expect)
        assert row.epochs_run == len(ref.loss)
        assert row.final_loss == ref.loss[-1] or not np.isfinite(ref.loss[-1])
        assert bool(row.diverged) == (ref.diverged_epoch is not None)


def test_record_every_keeps_first_multiples_and_last(tmp_path):
    spec = write_spec(tmp_path, every=7, chunk_runs=36)
    runner.sweep(spec, out=tmp_path, progress=False)
    losses, runs = read_results(tmp_path / "small")
    for row in runs.itertuples():
        epochs = losses.loc[losses.run_id == row.run_id, "epoch"].tolist()
        expect = sorted({1, *range(7, row.epochs_run + 1, 7), row.epochs_run})
        assert epochs == expect


def test_chunks_do_not_depend_on_jobs_or_shards(tmp_path, sequential):
    spec, seq = sequential
    names = sorted(os.listdir(seq / "losses"))
    runner.sweep(spec, out=tmp_path, jobs=2, shard="1/2", progress=False)
    runner.sweep(spec, out=tmp_path, jobs=1, shard="0/2", progress=False)
    assert sorted(os.listdir(tmp_path / "small" / "losses")) == names
    assert_same_results(tmp_path / "small", seq)


def test_rerun_trains_nothing_and_status_agrees(tmp_path, sequential):
    spec, _seq = sequential
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out), "--quiet"]) == 0
    before = {p.name: p.stat().st_mtime_ns for p in (out / "small" / "losses").iterdir()}
    r = runner_cmd("sweep", str(spec), "--out", str(out))
    assert r.returncode == 0
    assert "complete, nothing to train" in r.stdout
    after = {p.name: p.stat().st_mtime_ns for p in (out / "small" / "losses").iterdir()}
    assert before == after
    st = runner_cmd("status", str(out / "small"))
    assert st.returncode == 0
    assert "complete" in st.stdout
    meta = json.loads((out / "small" / "sweep.json").read_text())
    assert meta["runs"] == 36
    assert set(meta["versions"]) >= {"runner", "numba", "numpy", "pyarrow", "python"}


def test_status_of_partial_sweep_exits_1(tmp_path, sequential):
    spec, _ = sequential
    runner.sweep(spec, out=tmp_path, shard="0/3", progress=False)
    st = runner_cmd("status", str(tmp_path / "small"))
    assert st.returncode == 1
    assert "pending" in st.stdout


def test_different_spec_same_name_refused_unless_fresh(tmp_path, sequential):
    spec, _ = sequential
    runner.sweep(spec, out=tmp_path, progress=False)
    r = runner_cmd("sweep", str(spec), "--out", str(tmp_path), "--set", "train.epochs=50")
    assert r.returncode == 2
    assert "different sweep" in r.stderr
    assert "Traceback" not in r.stderr
    r = runner_cmd(
        "sweep", str(spec), "--out", str(tmp_path), "--set", "train.epochs=50", "--fresh"
    )
    assert r.returncode == 0, r.stderr
    assert read_results(tmp_path / "small")[1]["epochs_run"].max() == 50


@pytest.mark.slow  # make test: test_faults kills at each writing point and resumes
def test_sigkill_midway_then_resume_equals_uninterrupted(tmp_path):
    spec = write_spec(tmp_path, every=100, chunk_runs=3)
    slow = ["--jobs", "1", "--set", "train.epochs=20000"]  # 12 chunks
    out = tmp_path / "out"
    cmd = sweep_cmd(spec, out, *slow)
    # SIGKILL (test hook, tests/hooks/runner_faults.py) as soon as chunk 2 is marked done
    proc = subprocess.Popen(
        cmd, env=env(RUNNER_TEST_KILL="2:runs"), start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.wait(timeout=300) == -signal.SIGKILL
    runs_dir = out / "small" / "runs"
    done = sorted(n for n in os.listdir(runs_dir) if n.endswith(".parquet"))
    assert "chunk-000002.parquet" in done and len(done) < 12, done  # killed mid-way
    r = subprocess.run(cmd, env=env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    whole = subprocess.run(sweep_cmd(spec, tmp_path / "whole", *slow), env=env())
    assert whole.returncode == 0
    assert_same_results(out / "small", tmp_path / "whole" / "small")
    leftovers = [n for d in ("losses", "runs") for n in os.listdir(out / "small" / d)
                 if not n.endswith(".parquet")]  # fmt: skip
    assert leftovers == []


def test_python_api_sweep_matches_cli(tmp_path, sequential):
    spec, seq = sequential
    r = runner_cmd("sweep", str(spec), "--out", str(tmp_path), "--jobs", "2")
    assert r.returncode == 0, r.stderr
    assert f"-> {tmp_path / 'small'}" in r.stdout
    assert_same_results(tmp_path / "small", seq)


@pytest.mark.parametrize("spec_name", ["seed-sweep", "xor-sweep", "seed"])
def test_shipped_specs_give_documented_tables(tmp_path, spec_name):
    """The shipped specs (shortened): one row per run and per recorded epoch, the dtypes of
    docs/results.md."""
    path = ROOT / "experiments" / f"{spec_name}.toml"
    spec = load_spec(path)
    overrides = ["train.epochs=300"]
    if "seed" in spec.grid:
        overrides.append("grid.seed={start=0,stop=3}")
    report = runner.sweep(path, out=tmp_path, overrides=overrides, progress=False)
    assert report.complete
    losses, runs = read_results(tmp_path / spec.name)
    shortened = load_spec(path, overrides)
    assert len(runs) == shortened.n_runs
    every = shortened.every
    expect = sum(
        len({1, *range(every, n + 1, every), n}) if every > 1 else n for n in runs["epochs_run"]
    )
    assert len(losses) == expect
    assert losses["run_id"].dtype == np.int32
    assert losses["epoch"].dtype == np.int32
    assert losses["loss"].dtype == np.float32
    for axis in shortened.axis_names:
        assert axis in losses.columns
    if "alpha" in losses.columns:
        assert losses["alpha"].dtype == np.float64
    if "seed" in losses.columns:
        assert losses["seed"].dtype == np.int64
