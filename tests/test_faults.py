"""Fault suite with real processes: kills, signals, races, damaged files, full disks."""

import contextlib
import os
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest
from conftest import need_service
from helpers import ENV, assert_same_results, read_results, runner_cmd, sweep_cmd, write_spec


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """An uninterrupted run of a spec with many small chunks, and how long it takes."""
    tmp = tmp_path_factory.mktemp("base")
    spec = write_spec(tmp, chunk_runs=3)
    t0 = time.monotonic()
    r = subprocess.run(sweep_cmd(spec, tmp / "out", "--jobs", "1"), env=ENV, capture_output=True)
    assert r.returncode == 0, r.stderr
    return spec, tmp / "out" / "small", time.monotonic() - t0


def test_sigkill_at_20_moments_then_resume(tmp_path, baseline):
    spec, base, seconds = baseline
    rng = np.random.default_rng(20261126)  # a seeded schedule of kill times
    moments = np.sort(rng.uniform(0.3, max(seconds, 1.0) * 1.1, size=20))
    out = tmp_path / "out"
    landed = []
    for i, delay in enumerate(moments):
        jobs = "2" if i % 2 else "1"
        proc = subprocess.Popen(
            sweep_cmd(spec, out, "--jobs", jobs, "--backend", ("threading", "loky")[i % 4 // 2]),
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        proc.kill()
        proc.wait()
        landed.append(proc.returncode == -signal.SIGKILL)
        r = subprocess.run(sweep_cmd(spec, out), env=ENV, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert_same_results(out / "small", base)  # equal values, no duplicates
        shutil.rmtree(out, ignore_errors=True)
    assert sum(landed) >= 15, "most kills should land while the sweep runs"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_sigint_sigterm_stop_cleanly_with_resume_hint(tmp_path, sig):
    spec = write_spec(tmp_path, every=100, chunk_runs=3)
    slow = ["--jobs", "1", "--set", "train.epochs=60000"]  # about 0.1 s a chunk
    out = tmp_path / "out"
    cmd = sweep_cmd(spec, out, *slow)
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    runs_dir = out / "small" / "runs"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (runs_dir.is_dir() and any(runs_dir.iterdir())):
        time.sleep(0.01)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("runner: interrupted: ")
    assert last.endswith("chunks done, run the same command to resume")
    assert "Traceback" not in err
    r = subprocess.run(cmd, env=ENV, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    whole = subprocess.run(sweep_cmd(spec, tmp_path / "whole", *slow), env=ENV)
    assert whole.returncode == 0
    assert_same_results(out / "small", tmp_path / "whole" / "small")


def test_two_identical_sweeps_at_once(tmp_path, baseline):
    spec, base, _ = baseline
    out = tmp_path / "out"
    procs = [
        subprocess.Popen(
            sweep_cmd(spec, out, "--jobs", "1"),
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read()
    assert_same_results(out / "small", base)


@pytest.mark.parametrize("damage", ["truncate-losses", "truncate-runs", "garbage-runs"])
def test_damaged_file_detected_by_status_and_recomputed(tmp_path, baseline, damage):
    spec, base, _ = baseline
    out = tmp_path / "out"
    assert subprocess.run(sweep_cmd(spec, out), env=ENV).returncode == 0
    kind, which = damage.split("-")
    path = out / "small" / which / "chunk-000004.parquet"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if kind == "truncate" else b"PAR1" + b"\0" * 100)
    st = runner_cmd("status", str(out / "small"))
    assert st.returncode == 1
    assert "damaged" in st.stdout
    assert "chunk-000004.parquet" in st.stdout
    r = runner_cmd("sweep", str(spec), "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    assert "recomputing chunk 4" in r.stderr
    assert_same_results(out / "small", base)
    assert runner_cmd("status", str(out / "small")).returncode == 0


@contextlib.contextmanager
def mounted_tmpfs(path, options):
    if os.geteuid() != 0:
        need_service("mounting a tmpfs needs root")
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True
    )
    if r.returncode != 0:
        need_service(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_full_disk_gives_clear_error_and_no_corrupt_file(tmp_path, baseline):
    spec, base, _ = baseline
    # room for about half of the finished sweep's files: the disk fills part-way
    kib = sum(f.stat().st_size for f in base.rglob("*") if f.is_file()) // 2048
    with mounted_tmpfs(tmp_path / "small-disk", f"size={kib}k") as disk:
        r = runner_cmd("sweep", str(spec), "--out", str(disk), "--quiet", "--jobs", "1")
        assert r.returncode == 1
        last = r.stderr.strip().splitlines()[-1]
        assert "disk full" in last
        assert "Traceback" not in r.stderr
        import pyarrow.parquet as pq

        for sub in ("losses", "runs"):
            for name in os.listdir(disk / "small" / sub):
                assert not name.startswith(".")  # no temporary file left behind
                pq.read_table(disk / "small" / sub / name)  # every file present is whole


def test_read_only_results_folder_exits_2_before_training(tmp_path, baseline):
    spec, _, _ = baseline
    with mounted_tmpfs(tmp_path / "ro", "size=1m,ro") as disk:
        r = runner_cmd("sweep", str(spec), "--out", str(disk))
        assert r.returncode == 2
        assert "not writable" in r.stderr
        assert r.stderr.strip().count("\n") == 0


def test_killed_worker_names_the_chunk_and_rerun_completes(tmp_path, baseline):
    import psutil

    _spec, _, _ = baseline
    slow = write_spec(tmp_path, chunk_runs=18, name="slow.toml")
    out = tmp_path / "out"
    cmd = sweep_cmd(slow, out, "--jobs", "2", "--backend", "loky", "--set", "train.epochs=40000")
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    claims = out / "small" / ".claims"
    victim = None
    deadline = time.monotonic() + 120
    while victim is None and time.monotonic() < deadline and proc.poll() is None:
        if claims.is_dir():
            for name in os.listdir(claims):
                pid = int(name.rsplit(".", 1)[1])
                if pid != proc.pid:
                    victim = pid
        time.sleep(0.01)
    assert victim is not None, "a worker should have claimed a chunk"
    psutil.Process(victim).kill()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("runner: failed: chunk ")
    assert "worker lost" in last
    r = subprocess.run(cmd, env=ENV, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    _losses, runs = read_results(out / "small")
    assert len(runs) == 36
