"""--backend dask: the same chunks on a real Dask scheduler with two worker processes."""

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager

import pytest
from helpers import NAME, SMALL, SPEC, assert_same_results, env, sets, sweep_cmd

import runner
from runner.cli import main


@contextmanager
def dask_cluster(folder, extra_env=None):
    """`dask scheduler` and two `dask worker` processes on 127.0.0.1; yields the address
    and the worker processes."""
    info = folder / "scheduler.json"
    common = ["--no-dashboard", "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(info)]
    environ = {**env(), **(extra_env or {})}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
             "--port", "0", *common], env=environ, cwd=folder, stderr=subprocess.DEVNULL,
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
            procs.append(subprocess.Popen(cmd, env=environ, cwd=folder, stderr=subprocess.DEVNULL))
        address = json.loads(info.read_text())["address"]
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        yield address, procs[1:]
    finally:
        for p in reversed(procs):  # workers first, while their scheduler still answers
            p.terminate()
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    with dask_cluster(tmp_path_factory.mktemp("dask")) as (address, _):
        yield address


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
def test_each_worker_warms_its_kernels_once(scheduler, tmp_path):
    """Every worker warms the sweep's variant before its first chunk (client.run), and
    not again for further chunks or a second sweep."""
    from distributed import Client

    from runner.run import backends

    for out in ("first", "second"):
        report = runner.sweep(SPEC, out=tmp_path / out, backend="dask", scheduler=scheduler,
                              overrides=SMALL, progress=False, quiet=True)  # fmt: skip
        assert report.chunks_run == 12
    first_chunk = min(p.stat().st_mtime for p in (tmp_path / "first" / NAME / "runs").iterdir())
    with Client(scheduler, timeout="30s") as client:
        warmed = client.run(backends.warmed)
        (variant,) = next(iter(warmed.values()))  # the one variant of SMALL
        again = client.run(backends.warm_once, variant[0], [variant[1:]])
    assert len(warmed) == 2 and all(list(w) == [variant] for w in warmed.values()), warmed
    assert all(w[variant] <= first_chunk for w in warmed.values())  # once, before any chunk
    assert list(again.values()) == [0, 0]  # a warm worker does not warm again


@pytest.mark.dask
def test_local_cluster_without_address(tmp_path, reference, monkeypatch):
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    report = runner.sweep(SPEC, out=tmp_path, backend="dask", jobs=2, overrides=SMALL)
    assert report.chunks_run == 12
    assert_same_results(tmp_path / NAME, reference(SMALL))


@pytest.mark.dask
def test_worker_killed_mid_chunk_the_chunk_reruns_elsewhere(tmp_path, reference):
    """Both workers hold a trained, unwritten chunk; one is killed (SIGKILL). The scheduler
    gives its chunk to the other worker (distributed retries a task whose worker died, up
    to distributed.scheduler.allowed-failures times) and the sweep completes, equal to
    the local run bit for bit."""
    hold = tmp_path / "hold"
    hold.touch()
    with dask_cluster(tmp_path, {"RUNNER_TEST_HOLD": str(hold)}) as (address, workers):
        out = tmp_path / "out"
        cmd = sweep_cmd(SPEC, out, *sets(SMALL), "--backend", "dask", "--scheduler", address)
        sweep = subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE, text=True)
        try:
            claims = out / NAME / ".claims"
            end = time.monotonic() + 120
            held = {}
            while len(held) < 2:  # chunk held by each worker: claim files <chunk>.<host>.<pid>
                assert time.monotonic() < end, f"two held chunks: {held}"
                names = os.listdir(claims) if claims.is_dir() else []
                held = {int(n.rpartition(".")[2]): int(n.partition(".")[0]) for n in names}
                time.sleep(0.05)
            assert set(held) == {w.pid for w in workers}
            victim = workers[0]
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait(timeout=30)
            lost = held[victim.pid]
            assert not (out / NAME / "runs" / f"chunk-{lost:06d}.parquet").exists()
            hold.unlink()
            printed, _ = sweep.communicate(timeout=300)
        finally:
            sweep.kill()
    assert sweep.returncode == 0
    assert "done: 80 runs" in printed
    assert (out / NAME / "runs" / f"chunk-{lost:06d}.parquet").exists()
    assert_same_results(out / NAME, reference(SMALL))
