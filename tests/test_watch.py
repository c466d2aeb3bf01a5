"""`runner status --watch`: a live view of a sweep running in the background; it ends when
the sweep is complete, or quietly (exit 130) on Ctrl-C."""

import io
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
from helpers import NAME, SMALL, SPEC, env, run_sweep, sets, sigint_for_children, sweep_cmd

from runner.cli import main
from runner.results.status import status, watch

LINE = re.compile(
    r"^\d\d:\d\d:\d\d, runs (\d+)/80 \(\d+\.\d%\), chunks (\d+)/12, (measuring .*|[\d.]+ "
    r"runs/s, eta \S+|complete)$"
)


def wait_until(check, what, timeout=120.0):
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, f"{what}: not within {timeout} s"
        time.sleep(0.05)


def held_sweep(tmp_path):
    """A sweep in the background, holding its first trained chunk until `hold` is gone."""
    hold = tmp_path / "hold"
    hold.touch()
    proc = subprocess.Popen(
        sweep_cmd(SPEC, tmp_path, *sets(SMALL), "--jobs", "1"),
        env={**env(), "RUNNER_TEST_HOLD": str(hold)},
    )
    folder = tmp_path / NAME
    wait_until(lambda: os.path.isdir(folder / ".claims") and os.listdir(folder / ".claims"),
               "a claimed chunk")  # fmt: skip
    return proc, hold, folder


@pytest.mark.parametrize("tty", [False, True])
def test_watch_follows_a_background_sweep_until_complete(tmp_path, tty):
    proc, hold, folder = held_sweep(tmp_path)
    out = io.StringIO()
    found = {}
    view = threading.Thread(
        target=lambda: found.update(st=watch(folder, interval=0.05, out=out, tty=tty))
    )
    try:
        view.start()
        wait_until(lambda: out.getvalue().count("\n") >= 2, "the first view")
        assert view.is_alive()  # nothing is done yet: the view goes on
        hold.unlink()
        view.join(timeout=300)
        assert not view.is_alive(), "the view did not end with the sweep"
        assert proc.wait(timeout=120) == 0
    finally:
        proc.kill()
    assert found["st"].complete and status(folder).complete
    text = out.getvalue()
    if tty:  # redrawn in place: up to the first line of the last frame, clear below
        ups = [int(n) for n in re.findall(r"\x1b\[(\d+)F\x1b\[J", text)]
        frames = re.split(r"\x1b\[\d+F\x1b\[J", text)
        assert len(frames) >= 2 and len(ups) == len(frames) - 1
        assert all(f.count("\n") == n for f, n in zip(frames, ups, strict=False))
        assert "runs:   0 done (0.0%)" in frames[0]
        assert frames[-1].rstrip().endswith("complete")
        return
    lines = text.splitlines()
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), lines
    runs = [int(m.group(1)) for m in parsed]
    assert runs[0] == 0 and runs[-1] == 80 and runs == sorted(runs)
    assert parsed[-1].group(3) == "complete"
    for n, m in zip(runs[:-1], parsed[:-1], strict=True):  # a rate once runs are done
        assert m.group(3).startswith("measuring" if n == 0 else tuple("0123456789")), m[0]


def test_watch_cli_ends_when_complete(tmp_path):
    folder = run_sweep(SPEC, tmp_path, *sets(SMALL))
    cmd = [sys.executable, "-m", "runner", "status", str(folder), "--watch", "--interval", "0.1"]
    proc = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert LINE.match(proc.stdout.strip()).group(3) == "complete"


def test_ctrl_c_ends_watch_quietly(tmp_path):
    # incomplete: the view never ends
    folder = run_sweep(SPEC, tmp_path, *sets(SMALL), "--shard", "0/2")
    cmd = [sys.executable, "-m", "runner", "status", str(folder), "--watch", "--interval", "0.1"]
    with sigint_for_children():
        proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)  # fmt: skip
    try:
        first = proc.stdout.readline()
        assert "chunks 6/12" in first, first
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert err == ""


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished small sweep, one for the bad-option cases."""
    return run_sweep(SPEC, tmp_path_factory.mktemp("w"), *sets([*SMALL, "grid.alpha=0.1"]))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--interval", "1"], "--interval: needs --watch"),
        (["--watch", "--interval", "0"], "--interval: must be > 0"),
    ],
)
def test_bad_watch_options(finished, capsys, args, message):
    assert main(["status", str(finished), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_watch_of_a_missing_folder_is_a_one_line_error(tmp_path, capsys):
    assert main(["status", str(tmp_path / "nothing"), "--watch"]) == 2
    assert "no such results folder" in capsys.readouterr().err
