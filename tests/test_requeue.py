"""runner.run.requeue without a cluster: the grace budget and when chunks in flight are given up."""

import signal
import subprocess
import sys
import textwrap
import time

import pytest

from runner.run.requeue import Graceful, after_stop
from runner.run.slurm import time_seconds


def test_budget_keeps_a_reserve_and_sigterm_gets_killwait():
    assert Graceful(120).budget == 110  # a 10 s reserve for the requeue
    assert Graceful(2).budget == 1.5  # a quarter of a short grace
    stop = Graceful(120, term_grace=30)
    stop.request("SIGTERM")  # preemption: SIGKILL follows after KillWait, not the grace
    assert stop.budget == 22.5
    assert stop.deadline - time.monotonic() <= 22.5


def test_chunks_in_flight_are_given_up_only_when_they_cannot_fit():
    stop = Graceful(1000)
    assert not stop.give_up(None)  # nothing requested
    stop.request("SIGUSR1")
    first = stop.deadline
    stop.request("SIGTERM")  # a later signal changes nothing
    assert (stop.signal, stop.deadline) == ("SIGUSR1", first)
    stop.started[3] = time.monotonic()
    assert not stop.give_up(None)  # no chunk time known yet: wait for the deadline
    assert not stop.give_up(10.0)  # it fits
    assert stop.give_up(5000.0)  # chunks take longer than the grace: give up at once
    stop.started.clear()
    assert not stop.give_up(5000.0)  # nothing in flight
    stop.deadline = time.monotonic() - 1
    assert stop.give_up(None)


# drain() under signals, in a child: a busy thread keeps the GIL for 0.5 s at a time, so
# that a wait the signal interrupts ends after its timeout (as on a loaded CI machine)
DRAIN_UNDER_SIGNALS = textwrap.dedent("""
    import signal, sys, threading
    from runner.run import requeue

    signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # once the sweep's handler is gone
    stop = requeue.Graceful(grace=4.0)  # 3 s for the chunks in flight, then give up
    sys.setswitchinterval(0.5)

    def busy():
        while True:
            pass

    def results():
        threading.Event().wait()  # a chunk that never finishes
        yield

    with requeue.handling(stop):
        threading.Thread(target=busy, daemon=True).start()
        print("ready", flush=True)
        try:
            list(requeue.drain(results(), stop))
        except KeyboardInterrupt:
            print("gave up", stop.abandoned, flush=True)
""")


def test_drain_gives_up_at_the_deadline_however_often_signals_interrupt_its_wait():
    """A signal landing in drain's wait must not make it wait for ever (CPython 3.11's
    SimpleQueue.get did: CI hung in test_slurm's USR1 test)."""
    child = subprocess.Popen([sys.executable, "-c", DRAIN_UNDER_SIGNALS],
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert child.stdout.readline() == "ready\n"
        t0 = time.monotonic()
        while child.poll() is None and time.monotonic() < t0 + 5:
            child.send_signal(signal.SIGUSR1)
            time.sleep(0.02)
        out = child.communicate(timeout=30)[0]
    finally:
        child.kill()
    assert (child.returncode, out) == (0, "gave up True\n")
    assert time.monotonic() - t0 < 10  # the 3 s budget, and the busy thread's turns


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({}, "not requeued: not a SLURM job; run the same command to resume"),
        ({"SLURM_JOB_ID": "7", "SLURM_RESTART_COUNT": "3"},
         "not requeued: 3 of 3 requeues used (--max-requeues)"),
    ],
)  # fmt: skip
def test_no_requeue_exits_130_with_the_hint(monkeypatch, capsys, env, said):
    for key in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_RESTART_COUNT"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    stop = Graceful(60)
    stop.request("SIGUSR1")
    assert after_stop(stop, 2, 5, max_requeues=3) == 130
    err = capsys.readouterr().err
    assert "SIGUSR1: stopped (all started written): 2 of 5 chunks of this task done" in err
    assert said in err


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 5400), ("2:30", 150), ("01:00:00", 3600), ("1-0", 86400), ("1-2:30", 95400),
     ("2-00:00:01", 172801), ("infinite", None), ("1:2:3:4", None), ("x-1", None)],
)  # fmt: skip
def test_sbatch_time_in_seconds(text, seconds):
    assert time_seconds(text) == seconds


def test_signal_handlers_are_restored_after_main_and_after_a_requeue(tmp_path):
    """runner.cli.main and requeue.ignoring change SIGTERM only while they run."""
    import signal

    from runner.cli import main
    from runner.run.requeue import ignoring

    def mine(signum, frame):
        pass

    old = signal.signal(signal.SIGTERM, mine)
    try:
        assert main(["status", str(tmp_path / "none")]) == 2
        assert signal.getsignal(signal.SIGTERM) is mine
        with ignoring(signal.SIGTERM):
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, old)


def test_job_environment_reads_every_slurm_variable_once():
    from runner.run.slurm_env import JobEnvironment

    job = JobEnvironment.read({
        "SLURM_JOB_ID": "41", "SLURM_ARRAY_JOB_ID": "40", "SLURM_ARRAY_TASK_ID": "6",
        "SLURM_ARRAY_TASK_MIN": "4", "SLURM_ARRAY_TASK_MAX": "7", "SLURM_CPUS_PER_TASK": "3",
        "SLURM_RESTART_COUNT": "2",
    })  # fmt: skip
    assert (job.job_task, job.shard(), job.cpus_per_task) == ("40_6", (2, 4), 3)
    assert job.restart_count == 2
    outside = JobEnvironment.read({"SLURM_CPUS_PER_TASK": "x"})
    assert (outside.job_task, outside.cpus_per_task, outside.restart_count) == (None, None, 0)


def test_scontrol_config_is_parsed_once_for_killwait_and_maxarraysize(monkeypatch):
    from runner.run import requeue, slurm, slurm_env

    calls = []

    def fake(*args):
        calls.append(args)
        return "Configuration data as of now\nKillWait      = 30 sec\nMaxArraySize  = 64\n"

    monkeypatch.setattr(slurm_env, "scontrol", fake)
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    assert requeue.kill_wait() == 30.0
    assert slurm.max_array_size() == 64
    assert calls == [("show", "config")] * 2
    monkeypatch.setattr(slurm_env, "scontrol", lambda *a: "")  # no scontrol here
    assert requeue.kill_wait() is None and slurm.max_array_size() is None
