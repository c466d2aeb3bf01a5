"""`runner slurm`: the sbatch script (golden file), its errors, and real job arrays on a
single-node SLURM cluster started by scripts/slurm-local.sh."""

import difflib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import need_service
from helpers import NAME, ROOT, SLOW, SMALL, SPEC, assert_same_results, env, sets

from runner.cli import main

GOLDEN = Path(__file__).parent / "golden" / "sweep.sbatch"
SCRIPT = ROOT / "scripts" / "slurm-local.sh"


# ----- the script, without a cluster -----
def test_sbatch_script_matches_golden_file(tmp_path, capsys):
    opts = ["--partition", "debug", "--time", "00:10:00", "--cpus-per-task", "2", "--mem", "1G",
            "--account", "lab", "--sbatch-arg=--qos=normal", "--sbatch-arg", "requeue"]  # fmt: skip
    argv = ["slurm", str(SPEC), "--tasks", "3", "--out", str(tmp_path), *sets(SMALL), *opts]
    assert main([*argv, "--dry-run"]) == 0
    printed = capsys.readouterr().out
    text = (tmp_path / NAME / "slurm" / "sweep.sbatch").read_text()
    assert printed == text
    for path, mark in (
        (sys.executable, "{PYTHON}"),
        (str(SPEC), "{SPEC}"),
        (str(tmp_path), "{OUT}"),
    ):
        text = text.replace(path, mark)
    want = GOLDEN.read_text()
    if text != want:  # a line diff, as submitit prints it
        diff = difflib.unified_diff(
            want.splitlines(), text.splitlines(), "golden", "now", lineterm=""
        )
        print("\n".join(diff))
    assert text == want
    assert not (tmp_path / NAME / "sweep.json").exists()  # a dry run starts nothing


def test_missing_sbatch_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["slurm", str(SPEC), "--tasks", "2", "--out", str(tmp_path), *sets(SMALL)]) == 2
    err = capsys.readouterr().err
    assert "sbatch not found" in err and err.count("\n") == 1


def test_more_tasks_than_chunks_is_refused(tmp_path, capsys):
    assert main(["slurm", str(SPEC), "--tasks", "13", "--out", str(tmp_path), *sets(SMALL)]) == 2
    assert "12 chunks" in capsys.readouterr().err


# ----- a real cluster -----
@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """A running single-node SLURM cluster; SLURM_CONF points at it."""
    if shutil.which("slurmctld") is None or shutil.which("munged") is None:
        need_service("slurmctld and munged (apt-get install slurm-wlm munge)")
    if os.geteuid() != 0:
        need_service("root, to run the local SLURM cluster (SlurmUser=root)")
    folder = tmp_path_factory.mktemp("slurm")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLURM_CONF", str(folder / "slurm.conf"))
        mp.setenv("PYTHONPATH", env()["PYTHONPATH"])  # jobs inherit it: this checkout
        mp.setenv("RUNNER_JOBS", "1")
        subprocess.run([SCRIPT, "start", folder], check=True, timeout=120)
        try:
            yield folder
        finally:
            subprocess.run([SCRIPT, "stop", folder], check=True, timeout=120)


def submit(out, overrides, capsys, tasks=3):
    assert (
        main(["slurm", str(SPEC), "--tasks", str(tasks), "--out", str(out), *sets(overrides)]) == 0
    )
    printed = capsys.readouterr().out
    return re.search(r"submitted job (\d+)", printed).group(1)


def wait_job(job, timeout=120.0):
    """Until squeue no longer lists any task of ``job``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        q = subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True)
        if q.returncode != 0 or not q.stdout.strip():
            return
        time.sleep(0.5)
    pytest.fail(f"job {job} still queued after {timeout} s")


def status(folder, capsys):
    rc = main(["status", str(folder)])
    return rc, capsys.readouterr().out


@pytest.mark.slurm
def test_job_array_equals_local_run(slurm, tmp_path, reference, capsys):
    job = submit(tmp_path, SMALL, capsys)
    wait_job(job)
    rc, out = status(tmp_path / NAME, capsys)
    assert rc == 0, out
    assert f"slurm:  jobs {job} (latest: 3 tasks)" in out
    assert "shard 2/3: 4/4 chunks done" in out  # --shards defaults from the sbatch script
    logs = sorted(os.listdir(tmp_path / NAME / "slurm" / "logs"))
    assert logs == [f"{job}_{k}.out" for k in range(3)]
    assert_same_results(tmp_path / NAME, reference(SMALL))


@pytest.mark.slurm
def test_cancelled_task_then_resubmit_equals_local_run(slurm, tmp_path, reference, capsys):
    folder = tmp_path / NAME
    job = submit(tmp_path, SLOW, capsys)
    # shard 1 of 3 owns chunks 1 and 4: cancel it once one is written, during the other
    end = time.monotonic() + 120
    mine = [folder / "runs" / f"chunk-00000{c}.parquet" for c in (1, 4)]
    while not any(p.exists() for p in mine):
        assert time.monotonic() < end, "task 1 wrote no chunk within 120 s"
        time.sleep(0.1)
    subprocess.run(["scancel", f"{job}_1"], check=True)
    wait_job(job)
    rc, out = status(folder, capsys)
    assert rc == 1 and "shard 1/3: 1/2 chunks done" in out, out

    again = submit(tmp_path, SLOW, capsys)
    wait_job(again)
    rc, out = status(folder, capsys)
    assert rc == 0, out
    logs = folder / "slurm" / "logs"
    for k in (0, 2):  # their chunks were done: nothing trained twice
        assert "nothing to train" in (logs / f"{again}_{k}.out").read_text()
    assert "done: 4 runs" in (logs / f"{again}_1.out").read_text()
    assert_same_results(folder, reference(SLOW))


@pytest.mark.slurm
def test_more_tasks_than_max_array_size_is_refused(slurm, tmp_path, capsys):
    many = [*SMALL, "sweep.chunk_runs=1"]  # 80 chunks; the local cluster allows 64 tasks
    assert main(["slurm", str(SPEC), "--tasks", "65", "--out", str(tmp_path), *sets(many)]) == 2
    err = capsys.readouterr().err
    assert "MaxArraySize 64" in err and err.count("\n") == 1
    assert not (tmp_path / NAME).exists()
