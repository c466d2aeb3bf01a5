"""Growing a sweep: only new runs are trained, earlier files stay byte-identical, and the
result equals a one-shot sweep of the final spec, run for run by parameters, bit for bit."""

import hashlib
import json
import os
import signal
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import env, read_results, runner_cmd, sweep_cmd

import runner
from runner.cli import main
from runner.plan import params

BASE = """
name = "grow"
[train]
epochs = {epochs}
[grid]
alpha = {alpha}
hidden = {hidden}
seed = {{ start = 0, stop = {seeds} }}
[sweep]
chunk_runs = 4
"""
SAMPLED = """
name = "grow"
[train]
epochs = 120
[grid]
seed = {{ start = 0, stop = 3 }}
[sample]
points = {points}
method = "{method}"
seed = 1
alpha = {{ loguniform = [0.003, 0.3] }}
hidden = {{ choice = [2, 3, 5] }}
[sweep]
chunk_runs = 4
"""


def spec_file(folder: Path, name: str = "spec.toml", *, text: str = BASE, **fmt) -> Path:
    values = {"epochs": 150, "alpha": "[0.01, 0.1]", "hidden": "[2, 3]", "seeds": 3} | fmt
    path = folder / name
    path.write_text(text.format(**values))
    return path


def snapshot(folder: Path) -> dict[str, str]:
    """sha256 of every file in a results folder (temporary names excluded)."""
    out = {}
    for root, _, files in os.walk(folder):
        for f in files:
            p = Path(root) / f
            if not f.endswith(".tmp"):
                out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def by_params(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(losses, runs) keyed by the runs' parameters instead of run_id, sorted by them."""
    losses, runs = read_results(folder)
    assert runs["run_id"].tolist() == list(range(len(runs)))  # unique across the sweep
    cols = [c for c in params.COLUMNS if c in runs.columns]  # model columns where named
    runs = runs.copy()
    for c in runs.columns:
        if isinstance(runs[c].dtype, pd.CategoricalDtype):
            runs[c] = runs[c].astype(str)
    runs = runs.sort_values(cols, ignore_index=True)
    rank = pd.Series(np.arange(len(runs)), index=runs["run_id"].to_numpy())
    losses = losses.copy()
    losses["run_id"] = rank.loc[losses["run_id"].to_numpy()].to_numpy()
    for c in losses.columns:
        if isinstance(losses[c].dtype, pd.CategoricalDtype):
            losses[c] = losses[c].astype(str)
    losses = losses.sort_values(["run_id", "epoch"], ignore_index=True)
    return losses, runs.drop(columns="run_id")


def assert_same_by_params(a: Path, b: Path) -> None:
    la, ra = by_params(a)
    lb, rb = by_params(b)
    pd.testing.assert_frame_equal(ra, rb, check_exact=True)  # bit for bit
    pd.testing.assert_frame_equal(la, lb, check_exact=True)


def grow(folder: Path, out: Path, steps: list[dict], text: str = BASE) -> list:
    """Run the spec of each step into ``out``; check earlier files never change."""
    reports = []
    before: dict[str, str] = {}
    for i, fmt in enumerate(steps):
        report = runner.sweep(spec_file(folder, f"s{i}.toml", text=text, **fmt), out=out,
                              jobs=2, progress=False)  # fmt: skip
        now = snapshot(out / "grow")
        assert {k: now[k] for k in before} == before  # earlier files: byte-identical
        before = now
        reports.append(report)
    return reports


def one_shot(folder: Path, text: str = BASE, **fmt) -> Path:
    out = folder / "oneshot"
    runner.sweep(spec_file(folder, "final.toml", text=text, **fmt), out=out, jobs=1,
                 progress=False)  # fmt: skip
    return out / "grow"


def test_more_seeds_new_alpha_new_hidden_equal_one_shot(tmp_path):
    steps = [
        {},  # 2 alphas x 2 hidden x 3 seeds = 12 runs
        {"seeds": 5},  # more seeds: 8 new
        {"seeds": 5, "alpha": "[0.01, 0.1, 0.3]"},  # a new alpha: 10 new
        {"seeds": 5, "alpha": "[0.01, 0.1, 0.3]", "hidden": "[2, 3, 4]"},  # a new hidden: 15 new
    ]
    reports = grow(tmp_path, tmp_path / "out", steps)
    assert [r.runs_trained for r in reports] == [12, 8, 10, 15]
    assert [r.runs_before for r in reports] == [0, 12, 20, 30]
    assert [r.runs for r in reports] == [12, 20, 30, 45]
    final = one_shot(tmp_path, seeds=5, alpha="[0.01, 0.1, 0.3]", hidden="[2, 3, 4]")
    assert_same_by_params(tmp_path / "out" / "grow", final)
    again = runner.sweep(tmp_path / "s3.toml", out=tmp_path / "out", progress=False)
    assert again.runs_trained == 0 and again.runs_before == 45
    res = runner.load(tmp_path / "out" / "grow")
    assert len(res.runs) == 45 and res.spec["grid"]["hidden"] == [2, 3, 4]
    assert len(res.summary()) == 9
    keys = ["hidden", "alpha", "epoch"]
    a = res.curves().sort_values(keys, ignore_index=True)
    b = runner.load(final).curves().sort_values(keys, ignore_index=True)
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_more_sample_points_equal_one_shot(tmp_path):
    steps = [{"points": 4, "method": "sobol"}, {"points": 9, "method": "sobol"}]
    reports = grow(tmp_path, tmp_path / "out", steps, text=SAMPLED)
    final = one_shot(tmp_path, text=SAMPLED, points=9, method="sobol")
    n_final = len(read_results(final)[1])
    assert reports[0].runs_trained + reports[1].runs_trained == n_final
    assert reports[1].runs_before == reports[0].runs_trained > 0
    assert_same_by_params(tmp_path / "out" / "grow", final)


def test_cli_line_says_trained_now_and_already_there(tmp_path):
    out = tmp_path / "out"
    r = runner_cmd("sweep", str(spec_file(tmp_path)), "--out", str(out), "--quiet")
    assert r.returncode == 0 and "done: 12 runs trained now" in r.stdout
    r = runner_cmd("sweep", str(spec_file(tmp_path, seeds=4)), "--out", str(out), "--quiet")
    assert r.returncode == 0
    assert "done: 4 runs trained now (0 diverged), 12 already there" in r.stdout.splitlines()[-1]
    r = runner_cmd("sweep", str(spec_file(tmp_path, seeds=4)), "--out", str(out), "--quiet")
    assert "complete, nothing to train (16 runs already there" in r.stdout.splitlines()[-1]
    st = runner_cmd("status", str(out / "grow"))
    assert st.returncode == 0 and "grown:  1 time(s)" in st.stdout and "16 in all" in st.stdout


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("train.epochs=100", "train.epochs 150 -> 100"),
        ("record.every=5", "record.every 1 -> 5"),
        ("record.loss_dtype=float64", "record.loss_dtype"),
        ("data.builtin=xor", "data.builtin"),
        ("train.init=[0.0, 2.0]", "train.init"),
        ("sweep.chunk_runs=8", "sweep.chunk_runs 4 -> 8"),
        ("grid.update=sequential", "grid axes"),
        ("train.dtype=float32", "train.dtype"),
    ],
)
def test_changed_setting_exits_2_and_changes_nothing(tmp_path, capsys, override, named):
    spec = spec_file(tmp_path)
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out), "--quiet"]) == 0
    main(["sweep", str(spec_file(tmp_path, seeds=4)), "--out", str(out), "--quiet"])  # grown once
    before = snapshot(out / "grow")
    capsys.readouterr()
    bigger = spec_file(tmp_path, "bigger.toml", seeds=6)
    assert main(["sweep", str(bigger), "--out", str(out), "--quiet", "--set", override]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds a different sweep" in err and named in err
    assert snapshot(out / "grow") == before
    if "dtype" in override:
        return  # float32 training comes with the kernel branch
    # --fresh replaces it
    assert main(["sweep", str(bigger), "--out", str(out), "--quiet", "--set", override,
                 "--fresh"]) == 0  # fmt: skip
    assert not (out / "grow" / "grown").exists()


def test_removed_values_are_kept_and_visible(tmp_path):
    out = tmp_path / "out"
    runner.sweep(spec_file(tmp_path), out=out, progress=False)
    before = snapshot(out / "grow")
    report = runner.sweep(spec_file(tmp_path, "less.toml", alpha="[0.1]"), out=out, progress=False)
    assert report.runs_trained == 0 and report.runs_before == 12
    after = snapshot(out / "grow")
    assert {k: after[k] for k in before} == before
    res = runner.load(out / "grow")
    assert sorted(res.runs["alpha"].unique()) == [0.01, 0.1]  # kept, still visible
    assert res.spec["grid"]["alpha"] == [0.1]  # the latest spec
    st = runner_cmd("status", str(out / "grow"))
    assert st.returncode == 0, st.stdout
    # the value comes back: nothing to train, its runs are there
    back = runner.sweep(spec_file(tmp_path, "back.toml"), out=out, progress=False)
    assert back.runs_trained == 0


@pytest.mark.slow  # 12 s; `make test` kills sweeps in test_faults and test_sweep
def test_kill_during_growth_then_rerun_equals_uninterrupted(tmp_path):
    base = spec_file(tmp_path, "base.toml", epochs=20000)
    bigger = spec_file(tmp_path, "bigger.toml", epochs=20000, seeds=9)  # 24 new runs, 6 chunks
    out = tmp_path / "out"
    r = subprocess.run(sweep_cmd(base, out, "--jobs", "1"), env=env())
    assert r.returncode == 0
    before = snapshot(out / "grow")
    # chunks 0-2 are the base's; the growth's chunk 5 kills the sweep as its losses land
    hook = env(RUNNER_TEST_KILL="5:losses")  # in its own session: the hook kills its group
    kill = subprocess.run(sweep_cmd(bigger, out, "--jobs", "1"), env=hook, start_new_session=True)
    assert kill.returncode == -signal.SIGKILL
    runs_dir = out / "grow" / "runs"
    done = len([n for n in os.listdir(runs_dir) if n.endswith(".parquet")])
    assert 3 < done < 9, "the kill should land mid-way through the growth"
    r = subprocess.run(sweep_cmd(bigger, out, "--jobs", "2"), env=env(), capture_output=True,
                       text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    after = snapshot(out / "grow")
    assert {k: after[k] for k in before} == before
    whole = tmp_path / "whole"
    assert subprocess.run(sweep_cmd(base, whole, "--jobs", "1"), env=env()).returncode == 0
    assert subprocess.run(sweep_cmd(bigger, whole, "--jobs", "1"), env=env()).returncode == 0
    losses_a, runs_a = read_results(out / "grow")
    losses_b, runs_b = read_results(whole / "grow")
    pd.testing.assert_frame_equal(runs_a, runs_b, check_exact=True)  # same run ids too
    pd.testing.assert_frame_equal(losses_a, losses_b, check_exact=True)


@pytest.mark.slow  # make test: concurrent shards in test_shard, growth in the tests above
def test_concurrent_shards_of_a_growth_agree(tmp_path):
    out = tmp_path / "out"
    runner.sweep(spec_file(tmp_path), out=out, progress=False)
    bigger = spec_file(tmp_path, "bigger.toml", seeds=7, alpha="[0.01, 0.1, 0.2]")
    procs = [
        subprocess.Popen(sweep_cmd(bigger, out, "--shard", f"{i}/3", "--jobs", "1"), env=env())
        for i in range(3)
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0, 0]
    assert len(os.listdir(out / "grow" / "grown")) == 1  # one layer, written once
    meta = json.loads((out / "grow" / "grown" / "0001.json").read_text())
    assert meta["run_offset"] == 12 and meta["runs"] == 42 - 12
    final = one_shot(tmp_path, seeds=7, alpha="[0.01, 0.1, 0.2]")
    assert_same_by_params(out / "grow", final)
    assert main(["status", str(out / "grow"), "--shards", "3"]) == 0


def test_status_judges_against_the_latest_spec(tmp_path, capsys):
    """A sweep left half-done, then its grid shrunk: only chunks with runs of the latest
    spec are trained and counted; the others' runs on disk are kept and reported."""
    out = tmp_path / "out"
    base = spec_file(tmp_path)  # chunks (hidden, alpha): (2, .01) (2, .1) (3, .01) (3, .1)
    runner.sweep(base, out=out, shard="0/3", progress=False)  # chunks 0 and 3 only
    assert main(["status", str(out / "grow")]) == 1
    less = spec_file(tmp_path, "less.toml", alpha="[0.1]")
    report = runner.sweep(less, out=out, progress=False)
    assert report.runs_trained == 3 and report.runs_before == 6  # chunk 1 (2, .1) only
    assert sorted(os.listdir(out / "grow" / "runs")) == [
        "chunk-000000.parquet", "chunk-000001.parquet", "chunk-000003.parquet"
    ]  # fmt: skip
    capsys.readouterr()
    assert main(["status", str(out / "grow")]) == 0
    text = capsys.readouterr().out
    assert "chunks: 2 done, 0 pending, 2 in all" in text
    assert "runs:   6 done (100.0%)" in text and "3 more runs of values it no longer has" in text
    assert len(runner.load(out / "grow").runs) == 9  # kept runs stay visible


def test_slurm_dry_run_of_a_growth(tmp_path, capsys):
    """A job array may grow a sweep: its tasks cover every layer's chunks; a refused change
    is refused before anything is written."""
    out = tmp_path / "out"
    runner.sweep(spec_file(tmp_path), out=out, progress=False)  # 4 chunks
    bigger = spec_file(tmp_path, "bigger.toml", seeds=6)  # 4 more chunks
    before = snapshot(out / "grow")
    assert main(["slurm", str(bigger), "--tasks", "9", "--out", str(out), "--dry-run"]) == 2
    assert "9 tasks for 8 chunks" in capsys.readouterr().err
    assert main(["slurm", str(bigger), "--tasks", "8", "--out", str(out), "--dry-run"]) == 0
    argv = ["slurm", str(bigger), "--tasks", "2", "--out", str(out), "--dry-run"]
    assert main([*argv, "--set", "train.epochs=10"]) == 2
    assert "train.epochs 150 -> 10" in capsys.readouterr().err
    after = snapshot(out / "grow")
    assert {k: v for k, v in after.items() if not k.startswith("slurm")} == before
