"""--backend dask: the same chunks on a real Dask scheduler with two worker processes."""

import json
import subprocess
import sys
import time

import pytest
from helpers import NAME, SMALL, SPEC, assert_same_results, env

import runner
from runner.cli import main


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """`dask scheduler` and two `dask worker` processes on 127.0.0.1; yields the address."""
    folder = tmp_path_factory.mktemp("dask")
    info = folder / "scheduler.json"
    common = ["--no-dashboard", "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(info)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
             "--port", "0", *common], env=env(), cwd=folder, stderr=subprocess.DEVNULL,
        )
    ]  # fmt: skip
    try:
        end = time.monotonic() + 60
        while not info.exists():
            assert time.monotonic() < end and procs[0].poll() is None, "no scheduler"
            time.sleep(0.2)
        for k in range(2):
            cmd = [sys.executable, "-m", "distributed.cli.dask_worker", "--nthreads", "1",
                   "--no-nanny", "--host", "127.0.0.1", "--name", f"w{k}",
                   "--local-directory", str(folder), *common]  # fmt: skip
            procs.append(subprocess.Popen(cmd, env=env(), cwd=folder, stderr=subprocess.DEVNULL))
        address = json.loads(info.read_text())["address"]
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for p in reversed(procs):  # workers first, while their scheduler still answers
            p.terminate()
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.mark.dask
def test_sweep_on_dask_cluster_equals_local_run(scheduler, tmp_path, reference, capsys):
    argv = ["sweep", str(SPEC), "--out", str(tmp_path), "--backend", "dask", "--quiet"]
    assert main([*argv, "--scheduler", scheduler, *[f"--set={o}" for o in SMALL]]) == 0
    assert "done: 80 runs" in capsys.readouterr().out
    assert_same_results(tmp_path / NAME, reference(SMALL))


@pytest.mark.dask
def test_scheduler_from_environment(scheduler, tmp_path, reference, monkeypatch):
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", scheduler)
    report = runner.sweep(SPEC, out=tmp_path, backend="dask", overrides=SMALL, progress=False)
    assert report.chunks_run == 12 and report.complete
    assert_same_results(tmp_path / NAME, reference(SMALL))


@pytest.mark.dask
def test_local_cluster_without_address(tmp_path, reference, monkeypatch):
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    report = runner.sweep(SPEC, out=tmp_path, backend="dask", jobs=2, overrides=SMALL)
    assert report.chunks_run == 12
    assert_same_results(tmp_path / NAME, reference(SMALL))
