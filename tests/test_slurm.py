"""`runner slurm`: the sbatch script (golden file), its errors, and real job arrays on a
single-node SLURM cluster started by scripts/slurm-local.sh."""

import difflib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import need_service
from helpers import NAME, ROOT, SLOW, SMALL, SPEC, assert_same_results, env, sets, sweep_cmd

from runner.cli import main

GOLDEN = Path(__file__).parent / "golden"
SCRIPT = ROOT / "scripts" / "slurm-local.sh"
OPTS = ["--partition", "debug", "--time", "00:10:00", "--cpus-per-task", "2", "--mem", "1G",
        "--account", "lab", "--sbatch-arg=--qos=normal"]  # fmt: skip


def same_as_golden(text: str, name: str, out: Path) -> bool:
    for path, mark in (
        (sys.executable, "{PYTHON}"),
        (str(SPEC), "{SPEC}"),
        (str(out), "{OUT}"),
    ):
        text = text.replace(path, mark)
    want = (GOLDEN / name).read_text()
    if text != want:  # a line diff, as submitit prints it
        diff = difflib.unified_diff(
            want.splitlines(), text.splitlines(), "golden", "now", lineterm=""
        )
        print("\n".join(diff))
    return text == want


# ----- the script, without a cluster -----
def test_sbatch_script_matches_golden_file(tmp_path, capsys):
    argv = ["slurm", str(SPEC), "--tasks", "3", "--out", str(tmp_path), *sets(SMALL), *OPTS]
    assert main([*argv, "--sbatch-arg", "requeue", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    text = (tmp_path / NAME / "slurm" / "sweep.sbatch").read_text()
    assert printed == text
    assert same_as_golden(text, "sweep.sbatch", tmp_path)
    assert not (tmp_path / NAME / "sweep.json").exists()  # a dry run starts nothing


def test_requeue_and_then_scripts_match_golden_files(tmp_path, capsys):
    argv = ["slurm", str(SPEC), "--tasks", "3", "--out", str(tmp_path), *sets(SMALL), *OPTS,
            "--requeue", "--grace", "300", "--max-requeues", "5", "--then", "report"]  # fmt: skip
    assert main([*argv, "--dry-run"]) == 0
    printed = capsys.readouterr().out
    slurm_dir = tmp_path / NAME / "slurm"
    sweep, report = (
        (slurm_dir / "sweep.sbatch").read_text(),
        (slurm_dir / "report.sbatch").read_text(),
    )
    assert printed.startswith(sweep) and printed.endswith(report)
    assert same_as_golden(sweep, "sweep-requeue.sbatch", tmp_path)
    assert same_as_golden(report, "report.sbatch", tmp_path)
    assert not (tmp_path / NAME / "sweep.json").exists()


@pytest.mark.parametrize(
    ("args", "key"),
    [
        (["--grace", "60"], "--grace: needs --requeue"),
        (["--max-requeues", "2"], "--max-requeues: needs --requeue"),
        (["--requeue", "--grace", "0"], "--grace: must be"),
        (["--requeue", "--grace", "70000"], "--grace: must be 1..65535"),
        (["--requeue", "--max-requeues", "-1"], "--max-requeues: must be >= 0"),
        (["--then", "table"], "invalid choice: 'table'"),
        (["--requeue", "--time", "2:00"], "--grace: 120 s is not shorter than --time 2:00"),
    ],
)
def test_bad_requeue_and_then_options_are_one_line_errors(tmp_path, capsys, args, key):
    argv = ["slurm", str(SPEC), "--tasks", "3", "--out", str(tmp_path), *sets(SMALL), *args]
    assert main([*argv, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert key in err and err.count("\n") == 1, err
    assert not (tmp_path / NAME).exists()


def wait_for(check, what: str, timeout: float = 120.0, said=lambda: ""):
    """Poll ``check()`` until it returns something true; that value. Failing, the message
    ends with ``said()`` (what the process printed)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    pytest.fail(f"{what}: not within {timeout} s; it printed:\n{said()}")


def claims(folder: Path, shard: int = 0, shards: int = 1) -> list[tuple[int, int]]:
    """(chunk, pid) of the claims on chunks of this shard (a chunk being trained)."""
    try:
        names = os.listdir(folder / ".claims")
    except OSError:
        return []
    found = []
    for name in names:
        c, _, rest = name.partition(".")
        if int(c) % shards == shard:
            found.append((int(c), int(rest.rpartition(".")[2])))
    return found


def read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


# the sequential path and two threads, with and without grace; make test runs two of four
@pytest.mark.parametrize(("grace", "jobs"), [
    (60, 1), (1, 2), pytest.param(60, 2, marks=pytest.mark.slow),
    pytest.param(1, 1, marks=pytest.mark.slow),
])  # fmt: skip
def test_usr1_outside_slurm_stops_at_a_chunk_boundary(tmp_path, reference, grace, jobs):
    """USR1 while each worker holds a trained chunk unwritten: with grace they are
    written, without they are given up; no chunk starts after the signal, nothing
    half-written; exit 130; the same command completes the sweep."""
    written = jobs if grace > 1 else 0
    hold = tmp_path / "hold"
    hold.touch()
    extra = ["--requeue", "--grace", str(grace), "--jobs", str(jobs)]
    cmd = sweep_cmd(SPEC, tmp_path, *sets(SMALL), *extra)
    folder = tmp_path / NAME
    proc = subprocess.Popen(cmd, env={**env(), "RUNNER_TEST_HOLD": str(hold)},
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    lines: list[str] = []  # stderr, read aside: a silent process cannot block the test
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        wait_for(lambda: len(claims(folder)) == jobs, "a claimed chunk per worker")
        proc.send_signal(signal.SIGUSR1)
        if written:  # let the held chunk go once the stop is noticed
            stop = "SIGUSR1: stopping: no new chunk"
            wait_for(lambda: any(stop in line for line in lines), f"{stop!r} on stderr",
                     said=lambda: "".join(lines))  # fmt: skip
            hold.unlink()
        code = proc.wait(timeout=120)
        reader.join(timeout=30)
        err = "".join(lines)
        assert code == 130, err
    finally:
        proc.kill()
    assert "not requeued: not a SLURM job; run the same command to resume" in err
    assert sorted(os.listdir(folder / "runs")) == sorted(os.listdir(folder / "losses"))
    assert len(os.listdir(folder / "runs")) == written
    hold.unlink(missing_ok=True)
    subprocess.run(cmd, env=env(), check=True, timeout=300)  # the same command resumes
    assert_same_results(folder, reference(SMALL))


def test_missing_sbatch_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["slurm", str(SPEC), "--tasks", "2", "--out", str(tmp_path), *sets(SMALL)]) == 2
    err = capsys.readouterr().err
    assert "sbatch not found" in err and err.count("\n") == 1


def test_more_tasks_than_chunks_is_refused(tmp_path, capsys):
    assert main(["slurm", str(SPEC), "--tasks", "13", "--out", str(tmp_path), *sets(SMALL)]) == 2
    assert "12 chunks" in capsys.readouterr().err


def test_cache_option_is_written_to_the_script(tmp_path, capsys):
    cache = tmp_path / "shared" / "cache"
    argv = ["slurm", str(SPEC), "--tasks", "2", "--out", str(tmp_path), *sets(SMALL)]
    assert main([*argv, "--cache", str(cache), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert f"\nexport NUMBA_CACHE_DIR={cache}\nexec " in text
    assert "numba-cache" not in text and not cache.exists()  # a dry run makes nothing


@pytest.mark.parametrize("bad", ["file", "file/cache", "unwritable/cache"])
def test_bad_cache_option_is_a_one_line_error(tmp_path, capsys, monkeypatch, bad):
    (tmp_path / "file").write_text("")
    (tmp_path / "unwritable").mkdir()
    if bad.startswith("unwritable"):  # root may write anywhere: say the check refuses it
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, m: "unwritable" not in str(p) and real(p, m))
    argv = ["slurm", str(SPEC), "--tasks", "2", "--out", str(tmp_path), *sets(SMALL)]
    assert main([*argv, "--cache", str(tmp_path / bad)]) == 2
    err = capsys.readouterr().err
    why = "not writable" if bad.startswith("unwritable") else "is not a directory"
    assert "--cache" in err and why in err and err.count("\n") == 1, err
    assert sorted(os.listdir(tmp_path)) == ["file", "unwritable"]  # nothing written
    assert (tmp_path / "file").read_text() == "" and not os.listdir(tmp_path / "unwritable")


# ----- a real cluster -----
@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """A running single-node SLURM cluster; SLURM_CONF points at it."""
    if shutil.which("slurmctld") is None or shutil.which("munged") is None:
        need_service("slurmctld and munged (apt-get install slurm-wlm munge)")
    if os.geteuid() != 0:
        need_service("root, to run the local SLURM cluster (SlurmUser=root)")
    folder = tmp_path_factory.mktemp("slurm")
    cache = folder / "numba-cache"  # every job's, unless --cache: warmed once, here
    warm = subprocess.run(sweep_cmd(SPEC, folder / "warm", *sets(SMALL)), capture_output=True,
                          text=True, env=env(NUMBA_CACHE_DIR=str(cache)), timeout=900)  # fmt: skip
    assert warm.returncode == 0, warm.stderr
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLURM_CONF", str(folder / "slurm.conf"))
        mp.setenv("PYTHONPATH", env()["PYTHONPATH"])  # jobs inherit it: this checkout
        mp.setenv("RUNNER_JOBS", "1")
        mp.setenv("NUMBA_CACHE_DIR", str(cache))
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


# ----- requeue and follow-up jobs on the real cluster -----
def submit_all(out, overrides, capsys, *extra, tasks) -> list[str]:
    """Submit; the job ids printed (the array's first, then a follow-up job's). Two tasks
    at most, so that all run at once on a two-core node while one is held."""
    argv = ["slurm", str(SPEC), "--tasks", str(tasks), "--out", str(out), *sets(overrides)]
    assert main([*argv, *extra]) == 0
    return re.findall(r"submitted job (\d+)", capsys.readouterr().out)


def usr1(task: str) -> None:
    """What SLURM sends S seconds before the time limit (#SBATCH --signal=B:USR1@S)."""
    subprocess.run(["scancel", "--signal=USR1", "--batch", task], check=True, timeout=30)


def exit_code(task: str) -> str:
    found = subprocess.run(["scontrol", "show", "job", task], capture_output=True, text=True)
    return re.search(r"\bExitCode=(\S+)", found.stdout).group(1)


@pytest.mark.slurm
def test_signalled_task_requeues_itself_and_then_report_runs_after(
    slurm, tmp_path, reference, capsys, monkeypatch
):
    """USR1 while task 1 holds a trained chunk: it writes that chunk, takes no other,
    requeues itself; the requeued run does the rest; the report job runs after all."""
    hold = tmp_path / "hold"
    hold.touch()
    monkeypatch.setenv("RUNNER_TEST_HOLD", str(hold))  # jobs inherit it
    job, then = submit_all(tmp_path, SMALL, capsys, "--requeue", "--grace", "60",
                           "--then", "report", tasks=2)  # fmt: skip
    folder = tmp_path / NAME
    logs = folder / "slurm" / "logs"
    wait_for(lambda: claims(folder, 1, 2), "task 1 holding a chunk")
    usr1(f"{job}_1")
    wait_for(lambda: "SIGUSR1: stopping" in read(logs / f"{job}_1.out"), "the stop")
    hold.unlink()
    wait_job(job, timeout=300)
    wait_job(then, timeout=300)
    log = (logs / f"{job}_1.out").read_text()  # both runs: --open-mode=append
    assert log.count("requeued (1 of 3)") == 1, log
    assert "stopped (all started written): 1 of 6 chunks of this task done" in log
    assert log.index("requeued (1 of 3)") < log.index("done: ")  # the rerun did the rest
    for k in (0,):
        assert "requeued" not in (logs / f"{job}_{k}.out").read_text()
    rc, out = status(folder, capsys)
    assert rc == 0, out
    assert_same_results(folder, reference(SMALL))
    # the follow-up job ran once the whole array had ended, requeued task included
    report = folder / "report.html"
    assert report.is_file()
    newest = max(p.stat().st_mtime for p in (folder / "runs").iterdir())
    assert report.stat().st_mtime >= newest
    then_log = (logs / f"report-{then}.out").read_text()
    assert str(report) in then_log and then_log.rstrip().endswith("complete"), then_log


@pytest.mark.slurm
def test_requeues_stop_at_max_and_resubmit_completes(
    slurm, tmp_path, reference, capsys, monkeypatch
):
    """A grace too short for the held chunk: it is given up unwritten, the task requeues
    once (--max-requeues 1); signalled again it exits 130 with the hint. Re-submitting
    completes the sweep."""
    hold = tmp_path / "hold"
    hold.touch()
    monkeypatch.setenv("RUNNER_TEST_HOLD", str(hold))
    extra = ("--requeue", "--grace", "2", "--max-requeues", "1")
    (job,) = submit_all(tmp_path, SMALL, capsys, *extra, tasks=2)
    folder = tmp_path / NAME
    log = folder / "slurm" / "logs" / f"{job}_1.out"
    ((chunk, pid),) = wait_for(lambda: claims(folder, 1, 2), "task 1 holding a chunk")
    usr1(f"{job}_1")
    wait_for(lambda: "requeued (1 of 1)" in read(log), "the requeue")
    # the requeued run takes the same chunk again: nothing of it was written
    again = wait_for(lambda: [c for c in claims(folder, 1, 2) if c[1] != pid], "the rerun")
    assert again == [(chunk, again[0][1])]
    usr1(f"{job}_1")
    wait_job(f"{job}_1", timeout=120)
    text = log.read_text()
    assert "not requeued: 1 of 1 requeues used (--max-requeues); run the same `runner slurm`" \
        in text, text  # fmt: skip
    assert text.count("chunks in flight given up, not written") == 2
    assert exit_code(f"{job}_1") == "130:0"
    hold.unlink()
    wait_job(job)
    rc, out = status(folder, capsys)
    assert rc == 1 and "shard 1/2: 0/6 chunks done" in out, out
    assert not [n for n in os.listdir(folder / "losses") if int(n[6:12]) % 2 == 1]
    (again,) = submit_all(tmp_path, SMALL, capsys, *extra, tasks=2)
    wait_job(again)
    assert status(folder, capsys)[0] == 0
    assert_same_results(folder, reference(SMALL))


@pytest.mark.slurm
def test_cancelled_requeue_task_is_not_requeued(slurm, tmp_path, capsys, monkeypatch):
    """scancel sends SIGTERM too, but without a preemption: the task must stay cancelled."""
    hold = tmp_path / "hold"
    hold.touch()
    monkeypatch.setenv("RUNNER_TEST_HOLD", str(hold))
    (job,) = submit_all(tmp_path, SMALL, capsys, "--requeue", "--grace", "2", tasks=1)
    folder = tmp_path / NAME
    wait_for(lambda: claims(folder), "a held chunk")
    subprocess.run(["scancel", job], check=True, timeout=30)
    wait_job(job)
    log = (folder / "slurm" / "logs" / f"{job}_0.out").read_text()
    assert "not requeued: SIGTERM without a preemption" in log, log
    assert "requeued (" not in log
    hold.unlink()


@pytest.mark.slurm
def test_preempted_task_requeues_itself(slurm, tmp_path, reference, capsys, monkeypatch):
    """A job of the higher-priority partition takes the node: SLURM cancels the task with
    SIGTERM (PreemptMode=CANCEL); it gives up its held chunk within KillWait, requeues
    itself, and the requeued run completes the sweep."""
    hold = tmp_path / "hold"
    hold.touch()
    monkeypatch.setenv("RUNNER_TEST_HOLD", str(hold))
    extra = ("--requeue", "--sbatch-arg=--exclusive")
    (job,) = submit_all(tmp_path, SMALL, capsys, *extra, tasks=1)
    folder = tmp_path / NAME
    log = folder / "slurm" / "logs" / f"{job}_0.out"
    wait_for(lambda: claims(folder), "a held chunk")
    urgent = subprocess.run(
        ["sbatch", "--parsable", "--partition=urgent", "--exclusive", "--wrap=true",
         f"--output={tmp_path / 'urgent.out'}"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()  # fmt: skip
    wait_for(lambda: "requeued (1 of 3)" in read(log), "the requeue")
    hold.unlink()
    wait_job(job)
    wait_job(urgent)
    text = log.read_text()
    assert "DUE TO PREEMPTION" in text and "SIGTERM: stopping: no new chunk" in text, text
    assert "chunks in flight given up, not written" in text
    assert status(folder, capsys)[0] == 0
    assert_same_results(folder, reference(SMALL))


# ----- one shared Numba cache (--cache): compiled once, then loaded -----
CACHE_LINE = re.compile(r"runner: Numba cache (\S+) \((\S+)\): (\d+) loaded, (\d+) compiled")


def cache_use(log: Path) -> tuple[str, int, int]:
    """(the task's log, variants it loaded from the shared cache, variants it compiled)."""
    text = log.read_text()
    found = CACHE_LINE.findall(text)
    assert found, text
    return text, sum(int(f[2]) for f in found), sum(int(f[3]) for f in found)


def compiled_once(tmp_path, capsys, *extra) -> tuple[str, int, str]:
    """A two-task array into an empty --cache, where one task compiles and the other
    loads every variant; (the loader's log, the compiler's task, the job)."""
    cache = tmp_path / "cache"
    (job,) = submit_all(tmp_path, SMALL, capsys, "--cache", str(cache), *extra, tasks=2)
    wait_job(job, timeout=900)
    logs = tmp_path / NAME / "slurm" / "logs"
    uses = [cache_use(logs / f"{job}_{k}.out") for k in (0, 1)]
    k = 0 if uses[0][2] else 1  # the task that compiled
    (_, loaded, compiled), (loader, reloaded, recompiled) = uses[k], uses[1 - k]
    assert compiled >= 1 and recompiled == 0, uses  # compiled once
    assert reloaded == loaded + compiled, uses  # then loaded every variant
    assert list(cache.rglob("*.nbi")), "no Numba index in the shared cache"
    assert status(tmp_path / NAME, capsys)[0] == 0
    return loader, k, job


@pytest.mark.slurm
def test_second_task_loads_what_the_first_compiled(slurm, tmp_path, reference, capsys):
    """--exclusive: one task after the other on the one node; the second compiles nothing."""
    loader, _, _ = compiled_once(tmp_path, capsys, "--sbatch-arg=--exclusive")
    assert "runner: waiting" not in loader  # it ran after the first, not beside it
    assert_same_results(tmp_path / NAME, reference(SMALL))


@pytest.mark.slurm
def test_two_tasks_started_together_compile_once(slurm, tmp_path, capsys):
    """Both tasks at once: one compiles under the lock while the other waits, then loads."""
    loader, k, job = compiled_once(tmp_path, capsys)
    assert f"runner: waiting: {os.uname().nodename} pid " in loader, loader
    assert f"job {job}_{k} compiles the kernels for " in loader, loader
