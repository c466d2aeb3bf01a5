"""--shard I/N and auto: concurrent shards write one results folder equal to a single run."""

import subprocess

import pytest
from helpers import NAME, SMALL, SPEC, assert_same_results, env, sets, sweep_cmd

from runner.cli import main
from runner.errors import RunnerError
from runner.run.driver import parse_shard


def test_parse_shard_fixed_and_from_slurm_array(monkeypatch):
    assert parse_shard(None) is None
    assert parse_shard("2/3") == (2, 3)
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "5")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "4")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "3")
    assert parse_shard("auto") == (1, 3)
    monkeypatch.delenv("SLURM_ARRAY_TASK_COUNT")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MAX", "7")
    assert parse_shard("auto") == (1, 4)


@pytest.mark.parametrize("text", ["3/3", "1/0", "a/3", "1", "-1/3"])
def test_bad_shards_are_refused(text):
    with pytest.raises(RunnerError, match="--shard"):
        parse_shard(text)


def test_shard_auto_outside_an_array_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID", raising=False)
    assert main(["sweep", "experiments/seed.toml", "--shard", "auto"]) == 2
    assert "SLURM_ARRAY_TASK_ID" in capsys.readouterr().err


def test_three_concurrent_shards_equal_one_run(tmp_path, reference, capsys):
    procs = [
        subprocess.Popen(sweep_cmd(SPEC, tmp_path, *sets(SMALL), "--shard", f"{i}/3"), env=env())
        for i in range(3)
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0, 0]
    assert_same_results(tmp_path / NAME, reference(SMALL))
    assert main(["status", str(tmp_path / NAME), "--shards", "3"]) == 0
    out = capsys.readouterr().out
    assert "shard 0/3: 4/4 chunks done" in out and "shard 2/3: 4/4 chunks done" in out
