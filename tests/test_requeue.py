"""runner.run.requeue without a cluster: the grace budget and when chunks in flight are given up."""

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
