"""Fault suite with real processes: kills, signals, races, damaged files, full disks."""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import need_service
from helpers import assert_same_results, env, runner_cmd, sigint_for_children, sweep_cmd, write_spec
from hooks.runner_faults import FAULT_POINTS

from runner.results import claims, store


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """An uninterrupted run of a spec with many small chunks (12 of 3 runs)."""
    tmp = tmp_path_factory.mktemp("base")
    spec = write_spec(tmp, chunk_runs=3)
    r = subprocess.run(sweep_cmd(spec, tmp / "out", "--jobs", "1"), env=env(), capture_output=True)
    assert r.returncode == 0, r.stderr
    return spec, tmp / "out" / "small"


def killed_at(cmd, chunk: int, point: str, **popen) -> subprocess.Popen:
    """Run ``cmd`` (a sweep) in its own session, killed with SIGKILL, all its processes
    at once, when ``chunk`` reaches ``point`` (tests/hooks/runner_faults.py)."""
    proc = subprocess.Popen(
        cmd, env=env(RUNNER_TEST_KILL=f"{chunk}:{point}"), start_new_session=True, **popen
    )
    proc.wait(timeout=300)
    return proc


def on_disk(folder, chunk: int) -> dict[str, bool]:
    """Which of chunk's files exist: losses, runs, and a temporary file of either."""
    name = store.chunk_name(chunk)
    tmp = [
        n for d in ("losses", "runs") for n in os.listdir(folder / d) if name in n and n[0] == "."
    ]
    return {
        "losses": (folder / "losses" / name).exists(),
        "runs": (folder / "runs" / name).exists(),
        "tmp": bool(tmp),
    }


# chunk c's files when the kill lands at each point of its writing
EXPECT = {
    "trained": {"losses": False, "runs": False, "tmp": False},
    "losses-tmp": {"losses": False, "runs": False, "tmp": True},
    "losses": {"losses": True, "runs": False, "tmp": False},
    "runs-tmp": {"losses": True, "runs": False, "tmp": True},
    "runs": {"losses": True, "runs": True, "tmp": False},
}
# 20 moments: 5 points in the writing of each of 4 chunks (hidden 3 runs first: 6..11, 0..5)
MOMENTS = [(c, point) for c in (0, 4, 7, 11) for point in FAULT_POINTS]
FEW = MOMENTS[::4]  # each point once, on all 4 chunks: `make test`; the other 15 are slow


@pytest.mark.parametrize("moments", [
    pytest.param(FEW, id="5-moments"),
    pytest.param([m for m in MOMENTS if m not in FEW], id="15-more", marks=pytest.mark.slow),
])  # fmt: skip
def test_sigkill_at_20_moments_then_resume(tmp_path, baseline, moments):
    spec, base = baseline
    assert list(EXPECT) == list(FAULT_POINTS)
    out = tmp_path / "out"
    for i, (chunk, point) in enumerate(moments):
        jobs = "2" if i % 2 else "1"
        backend = ("threading", "loky")[i % 4 // 2]
        cmd = sweep_cmd(spec, out, "--jobs", jobs, "--backend", backend)
        proc = killed_at(cmd, chunk, point, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert proc.returncode == -signal.SIGKILL, (chunk, point)  # killed, not finished
        assert on_disk(out / "small", chunk) == EXPECT[point], (chunk, point)
        r = subprocess.run(sweep_cmd(spec, out), env=env(), capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert_same_results(out / "small", base)  # equal bit for bit, no duplicates
        leftovers = [n for d in ("losses", "runs") for n in os.listdir(out / "small" / d)
                     if not n.endswith(".parquet")]  # fmt: skip
        assert leftovers == [], (chunk, point)
        shutil.rmtree(out)


@pytest.mark.parametrize(
    "sig", [signal.SIGINT, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)]
)
def test_sigint_sigterm_stop_cleanly_with_resume_hint(tmp_path, sig):
    spec = write_spec(tmp_path, every=100, chunk_runs=3)
    slow = ["--jobs", "1", "--set", "train.epochs=60000"]  # about 0.1 s a chunk
    out = tmp_path / "out"
    cmd = sweep_cmd(spec, out, *slow)
    with sigint_for_children():
        proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)  # fmt: skip
    runs_dir = out / "small" / "runs"
    deadline = time.monotonic() + 300  # a cold Numba cache compiles first
    while time.monotonic() < deadline and not (runs_dir.is_dir() and any(runs_dir.iterdir())):
        time.sleep(0.01)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("runner: interrupted: ")
    assert last.endswith("chunks done, run the same command to resume")
    assert "Traceback" not in err
    r = subprocess.run(cmd, env=env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    whole = subprocess.run(sweep_cmd(spec, tmp_path / "whole", *slow), env=env())
    assert whole.returncode == 0
    assert_same_results(out / "small", tmp_path / "whole" / "small")


def test_two_identical_sweeps_at_once(tmp_path, baseline):
    spec, base = baseline
    out = tmp_path / "out"
    procs = [
        subprocess.Popen(
            sweep_cmd(spec, out, "--jobs", "1"),
            env=env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read()
    assert_same_results(out / "small", base)


@pytest.mark.parametrize("damage", [  # `make test` damages each table once
    "truncate-losses", pytest.param("truncate-runs", marks=pytest.mark.slow), "garbage-runs",
])  # fmt: skip
def test_damaged_file_detected_by_status_and_recomputed(tmp_path, baseline, damage):
    spec, base = baseline
    out = tmp_path / "out"
    assert subprocess.run(sweep_cmd(spec, out), env=env()).returncode == 0
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
    spec, base = baseline
    # room for about half of the finished sweep's files: the disk fills part-way
    kib = sum(f.stat().st_size for f in base.rglob("*") if f.is_file()) // 2048
    with mounted_tmpfs(tmp_path / "small-disk", f"size={kib}k") as disk:
        # the free-disk check sees it first: exit 2, nothing written
        r = runner_cmd("sweep", str(spec), "--out", str(disk), "--quiet", "--jobs", "1")
        assert r.returncode == 2, r.stderr
        assert re.fullmatch(r"runner: error: disk: needs about .* free\n", r.stderr)
        assert os.listdir(disk) == []
        # a disk filled by someone else during the sweep (the check passes: tests/hooks)
        r = runner_cmd("sweep", str(spec), "--out", str(disk), "--quiet", "--jobs", "1",
                       env={"RUNNER_TEST_NO_DISK_CHECK": "1"})  # fmt: skip
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
    spec, _ = baseline
    with mounted_tmpfs(tmp_path / "ro", "size=1m,ro") as disk:
        r = runner_cmd("sweep", str(spec), "--out", str(disk))
        assert r.returncode == 2
        assert "not writable" in r.stderr
        assert r.stderr.strip().count("\n") == 0


def test_killed_worker_names_the_chunk_and_rerun_completes(tmp_path, baseline):
    """A loky worker dies (SIGKILL) as it finishes training chunk 5: the sweep fails naming
    chunk 5, keeps what is done, and the rerun completes the same dataset."""
    spec, base = baseline
    out = tmp_path / "out"
    cmd = sweep_cmd(spec, out, "--jobs", "2", "--backend", "loky")
    proc = subprocess.run(
        cmd, env=env(RUNNER_TEST_KILL="5:trained:self"), capture_output=True, text=True
    )
    assert proc.returncode == 1, proc.stderr
    # loky's resource tracker, a process of its own, may still warn after runner's line
    # about the killed worker's temporary folder: runner's own line is its last
    lines = proc.stderr.strip().splitlines()
    ours = [line for line in lines if "resource_tracker" not in line and line.strip()]
    last = ours[-1]
    assert re.fullmatch(r"runner: failed: chunk (\d+, )*5(, \d+)* failed: worker lost .*", last)
    assert "Traceback" not in proc.stderr
    assert not (out / "small" / "runs" / store.chunk_name(5)).exists()
    r = subprocess.run(cmd, env=env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert_same_results(out / "small", base)


def test_a_zombie_left_by_a_killed_worker_counts_as_dead():
    """A worker SIGKILLed with its parent stays a zombie until init reaps it: its
    temporary files are stale all the same (claims.remove_stale_tmp)."""
    proc = subprocess.Popen(["true"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        state = open(f"/proc/{proc.pid}/stat").read().rsplit(")", 1)[1].split()[0]
        if state == "Z":
            break
        time.sleep(0.01)
    assert state == "Z"
    assert not claims.alive(proc.pid)
    assert claims.alive(os.getpid())
    proc.wait()
    assert not claims.alive(proc.pid)


def test_no_test_hook_in_runner():
    """The fault and hold hooks live in tests/hooks: nothing of them is in runner/."""
    root = Path(__file__).resolve().parents[1] / "runner"
    found = [str(p) for p in root.rglob("*.py") if "RUNNER_TEST" in p.read_text()]
    assert found == []


def test_a_ctrl_c_dropped_in_a_finaliser_still_stops_the_sweep(tmp_path, capsys, monkeypatch):
    """Python drops a KeyboardInterrupt raised inside a __del__; the sweep remembers the
    signal and stops at the next chunk with the resume hint (exit 130)."""
    from runner.cli import main
    from runner.run import interrupts, worker

    spec = write_spec(tmp_path, every=100, chunk_runs=3)
    real = worker.write_results
    calls = []

    class Finaliser:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGINT)  # raised here, printed, dropped

    def write_then_signal(*a, **k):
        out = real(*a, **k)
        if not calls:
            Finaliser()  # collected at once: the interrupt lands in its __del__
        calls.append(1)
        return out

    dropped = []
    monkeypatch.setattr(worker, "write_results", write_then_signal)
    monkeypatch.setattr(sys, "unraisablehook", lambda u: dropped.append(u.exc_type))
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # as at a terminal
    try:
        rc = main(["sweep", str(spec), "--out", str(tmp_path / "out"), "--jobs", "1",
                   "--backend", "sequential", "--quiet"])  # fmt: skip
    finally:
        signal.signal(signal.SIGINT, before)
    err = capsys.readouterr().err
    assert dropped == [KeyboardInterrupt]
    assert rc == 130, err
    assert err.strip().endswith("run the same command to resume")
    assert len(calls) == 1 and not interrupts.seen()


def test_an_ignored_sigint_stays_ignored(tmp_path):
    """A background job of a script inherits SIGINT ignored (so that a Ctrl-C in the
    terminal stops the script, not its jobs); Python keeps it so, and so does runner."""
    spec = write_spec(tmp_path, every=100, chunk_runs=3)
    out = tmp_path / "out"
    with sigint_for_children(ignored=True):
        proc = subprocess.Popen(
            sweep_cmd(spec, out, "--jobs", "1", "--set", "train.epochs=60000"), env=env(),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not any((out / "small" / "runs").glob("*.parquet")):
        time.sleep(0.01)
    assert proc.poll() is None  # still training: the signal lands mid-sweep
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "interrupted" not in err
