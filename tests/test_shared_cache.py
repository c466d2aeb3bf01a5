"""The compile lock of a shared Numba cache (runner.run.shared_cache), and the sbatch
script's NUMBA_CACHE_DIR line, without SLURM."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from helpers import env

from runner.run.shared_cache import compile_lock, lock_path
from runner.run.slurm import cache_lines

HOLD = """
import sys, time
from pathlib import Path
from runner.run.shared_cache import compile_lock
with compile_lock(Path(sys.argv[1]), "cpu-x") as held:
    print("held" if held else "not held", flush=True)
    time.sleep(600)
"""


def holder(folder: Path) -> subprocess.Popen:
    """Another process holding the lock of target cpu-x until it is killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], env=env(),
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout.readline() == "held\n"
    return proc


def test_second_process_waits_says_so_and_gets_the_lock_when_the_holder_dies(tmp_path):
    proc = holder(tmp_path)
    said, got = [], []

    def wait():
        with compile_lock(tmp_path, "cpu-x", say=said.append, note_every=0.3) as held:
            got.append((held, time.monotonic()))

    try:
        waiter = threading.Thread(target=wait)
        waiter.start()
        time.sleep(1.5)
        assert not got  # still waiting while the holder lives
        killed = time.monotonic()
        proc.send_signal(signal.SIGKILL)  # no clean-up: the kernel drops the flock
        proc.wait(timeout=30)
        waiter.join(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    ((held, when),) = got
    assert held and when >= killed
    path = lock_path(tmp_path, "cpu-x")
    assert said[0] == f"runner: waiting: {os.uname().nodename} pid {proc.pid} compiles the " \
        f"kernels for cpu-x ({path})\n", said  # fmt: skip
    assert any(line.startswith("runner: still waiting (") for line in said[1:]), said
    assert path.read_text().split()[2] == str(os.getpid())  # now this process holds it


def test_each_target_has_its_own_lock(tmp_path):
    proc = holder(tmp_path)
    try:
        said = []
        with compile_lock(tmp_path, "cpu-y", say=said.append, limit=5) as held:
            assert held and not said  # another CPU model: no wait
    finally:
        proc.kill()
        proc.wait()


def test_a_wait_past_the_limit_goes_on_unlocked_and_says_so(tmp_path):
    proc = holder(tmp_path)
    try:
        said = []
        t = time.monotonic()
        with compile_lock(tmp_path, "cpu-x", say=said.append, limit=1.0) as held:
            assert not held
        assert 1.0 <= time.monotonic() - t < 10
        assert said[0].startswith("runner: waiting: ") and "compiling unlocked" in said[-1]
    finally:
        proc.kill()
        proc.wait()


def test_an_unusable_cache_folder_goes_on_unlocked_and_says_so(tmp_path):
    (tmp_path / "file").write_text("")
    said = []
    with compile_lock(tmp_path / "file" / "cache", "cpu-x", say=said.append) as held:
        assert not held
    assert len(said) == 1 and "compiling unlocked" in said[0]


def script_cache(lines: list[str], **environ: str) -> str:
    """NUMBA_CACHE_DIR after bash runs the script's cache lines in this environment."""
    script = "set -eu\n" + "\n".join(lines) + '\nprintf %s "$NUMBA_CACHE_DIR"\n'
    return subprocess.run(["bash", "-c", script], env={"PATH": os.environ["PATH"], **environ},
                          capture_output=True, text=True, check=True).stdout  # fmt: skip


def test_cache_option_wins_then_the_jobs_variable_then_the_sweeps_folder(tmp_path):
    folder = tmp_path / 'we"ird $x `y` }z\\'  # quoted as bash needs
    default = str(folder / "slurm" / "numba-cache")
    assert script_cache(cache_lines(folder, None)) == default
    assert script_cache(cache_lines(folder, None), NUMBA_CACHE_DIR="/mine") == "/mine"
    given = tmp_path / "it's"
    assert script_cache(cache_lines(folder, given), NUMBA_CACHE_DIR="/mine") == str(given)


def test_warming_is_reentrant_and_quiet_when_no_kernel_was_used(tmp_path, monkeypatch):
    """A sweep holds the lock around its estimate and again around its warm-up: nested,
    the inner one must not wait for the outer (a second flock in one process would)."""
    from runner.kernel.numba_ext import compile_target
    from runner.run.shared_cache import warming

    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    said = []
    with warming(say=said.append), warming(say=said.append):
        pass
    assert said == [] and lock_path(tmp_path, compile_target()).exists()
