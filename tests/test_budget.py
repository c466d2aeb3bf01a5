"""Know the cost before paying it: `runner plan`, the memory and disk budgets, and failures
for lack of memory that say what happened (docs/guarantees.md, "Budgets")."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
from helpers import SMALL, SPEC, assert_same_results, env, sets, sweep_cmd, write_spec

import runner
from runner.cli import main
from runner.plan import cost
from runner.plan.spec import load_spec
from runner.run import memory

MEASURE = (  # a sweep in a fresh interpreter; prints its peak resident bytes last
    "import sys; from runner.cli import main; from runner.run.memory import peak_rss; "
    "rc = main(sys.argv[1:]); print(peak_rss()); sys.exit(rc)"
)


@pytest.fixture(scope="module", autouse=True)
def own_cache(tmp_path_factory):
    """Calibrations and rates of this module's own, not the user's; and beside other test
    workers (pytest-xdist), a Numba cache of its own for the processes it starts: another
    process writing the shared cache's index at the same time can drop an entry, and a
    calibration or a pilot that compiles measures LLVM's memory, not a sweep's."""
    keep = {k: os.environ.get(k) for k in ("XDG_CACHE_HOME", "NUMBA_CACHE_DIR")}
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
    if os.environ.get("PYTEST_XDIST_WORKER"):  # alone, the shared cache is warm and safe
        os.environ["NUMBA_CACHE_DIR"] = str(tmp_path_factory.mktemp("numba-cache"))
    yield
    for key, old in keep.items():
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


def plan_json(spec: Path, out: Path, *args: str) -> dict:
    r = subprocess.run([sys.executable, "-m", "runner", "plan", str(spec), "--out", str(out),
                        "--json", *args], env=env(), capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def measured_sweep(spec: Path, out: Path, *args: str, **extra: str) -> tuple[int, int, str]:
    """(exit code, peak resident bytes, stderr) of a quiet sweep in a fresh interpreter."""
    cmd = [sys.executable, "-c", MEASURE, "sweep", str(spec), "--out", str(out), "--quiet", *args]
    r = subprocess.run(cmd, env=env(**extra), capture_output=True, text=True, timeout=1800)
    return r.returncode, int(r.stdout.strip().splitlines()[-1]), r.stderr


def disk(folder: Path) -> int:
    subs = [folder / sub for sub in ("losses", "runs", "weights") if (folder / sub).is_dir()]
    return sum(p.stat().st_size for sub in subs for p in sub.iterdir())


def wide_spec(folder: Path, name: str, inputs: int, hidden: int, samples: int, runs: int,
              epochs: int, chunk_runs: int = 0, weights: str = "final") -> Path:  # fmt: skip
    """A wide problem: ``samples`` x ``inputs`` random data, one hidden size, ``runs`` seeds,
    at a rate that trains (at 1e-3 the summed step diverges: float32 losses overflow to
    inf, and a column of inf compresses to nothing); ``weights``: [record] weights."""
    rng = np.random.default_rng(1)
    X = rng.uniform(-1, 1, (samples, inputs))
    np.savez(folder / f"{name}.npz", X=X, Y=X[:, :1] * 0.5)
    text = (f'name = "{name}"\n[data]\npath = "{name}.npz"\n[train]\nhidden = {hidden}\n'
            f"epochs = {epochs}\n[grid]\nalpha = [1e-6]\nseed = {{ start = 0, stop = {runs} }}\n"
            f'[record]\nweights = "{weights}"\n[sweep]\nchunk_runs = {chunk_runs}\n')  # fmt: skip
    return write_spec(folder, text, name=f"{name}.toml")


def within(estimate: float, actual: float, name: str, slack: int = 0) -> None:
    sys.stderr.write(f"estimate/actual {name}: {estimate:,.0f} / {actual:,.0f} = "
                     f"{estimate / actual:.2f}\n")  # fmt: skip
    assert 0.75 * actual - slack <= estimate <= 1.25 * actual + slack, (name, estimate, actual)


def warm_kernels(spec: Path, tmp_path: Path) -> None:
    """Compile (or load) the spec's kernel variants into the shared cache: a tiny sweep."""
    r = subprocess.run(sweep_cmd(spec, tmp_path / "warm", "--set", "train.epochs=2"),
                       env=env(), capture_output=True, text=True, timeout=1800)  # fmt: skip
    assert r.returncode == 0, r.stderr


def check_estimates(spec: Path, tmp_path: Path, *args: str) -> None:
    """Plan, then sweep: peak resident memory and disk within 25% of the plan's estimate.
    The estimate is of a sweep whose kernels are cached: a first compile of a variant adds
    LLVM's memory (docs/guarantees.md)."""
    warm_kernels(spec, tmp_path)
    est = plan_json(spec, tmp_path / "out", *args)["cost"]
    rc, peak, err = measured_sweep(spec, tmp_path / "out", *args)
    assert rc == 0, err
    folder = next((tmp_path / "out").iterdir())
    within(est["peak_bytes"], peak, "peak RSS")
    within(est["disk_bytes"], disk(folder), "disk")


# ----- runner plan -----
def test_plan_prints_runs_memory_disk_time_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["plan", str(SPEC), "--out", str(out), "--jobs", "2", "--tasks", "4"]) == 0
    text = capsys.readouterr().out
    for word in ("runs          2,000 in 12 chunks", "epoch-runs    20,000,000 at most",
                 "loss rows     20,000,000 at most", "memory", "kernel tile of 64 runs",
                 "disk", "losses/", "runs/", "time          about",
                 "suggested   --mem"):  # fmt: skip
        assert word in text, text
    assert not out.exists()
    assert main(["sweep", str(SPEC), "--out", str(out), "--dry-run", "--jobs", "2"]) == 0
    assert "epoch-runs    20,000,000" in capsys.readouterr().out
    assert not out.exists()
    assert main(["plan", str(SPEC), "--out", str(out), "--json", "--tasks", "4"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["cost"]["runs"] == 2000 and found["task"]["runs"] == 500
    assert re.fullmatch(r"\d+M", found["slurm"]["mem"])
    assert re.fullmatch(r"\d\d:\d\d:00", found["slurm"]["time"])


def test_seed_sweep_within_25_percent_of_the_plan(tmp_path):
    check_estimates(SPEC, tmp_path, "--jobs", "2")


@pytest.mark.slow
def test_100k_run_sweep_within_25_percent_of_the_plan(tmp_path):
    check_estimates(SPEC, tmp_path, "--jobs", "2", "--set", "grid.seed={start=0,stop=5000}",
                    "--set", "train.epochs=300")  # fmt: skip


@pytest.mark.slow
def test_wide_problem_within_25_percent_of_the_plan(tmp_path):
    spec = wide_spec(tmp_path, "wide", 64, 1024, 256, 128, 30)
    check_estimates(spec, tmp_path, "--jobs", "2")


# ----- budgets -----
HUGE = "100000000"


@pytest.mark.parametrize("how", ["spec", "set"])
def test_hidden_1e8_exits_2_in_one_line_and_writes_nothing(tmp_path, capsys, how):
    spec = write_spec(tmp_path, f'name = "huge"\n[train]\nhidden = {HUGE}\nepochs = 10\n',
                      name="huge.toml")  # fmt: skip
    args = ["sweep", str(spec), "--out", str(tmp_path / "out")]
    if how == "set":
        spec.write_text('name = "huge"\n[train]\nepochs = 10\n')
        args += ["--set", f"train.hidden={HUGE}"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert re.fullmatch(
        r"runner: error: .*huge\.toml: train\.hidden: 100,000,000 hidden units: the smallest "
        r"kernel tile \(4 runs\) needs [\d.]+ GiB \(weights .*, hidden activations .* of 4 "
        r"samples .*\).*; this machine allows [\d.]+ [GM]iB \(.*--max-memory\)", err)  # fmt: skip
    assert not (tmp_path / "out").exists()


def test_train_hidden_1e8_raises_runner_error_within_a_second():
    t0 = time.perf_counter()
    with pytest.raises(runner.RunnerError, match=r"^hidden: 100,000,000 hidden units: the "
                       r"smallest kernel tile \(4 runs\) needs"):  # fmt: skip
        runner.train([[1, 1], [1, 2]], [[0], [1]], hidden=10**8)
    assert time.perf_counter() - t0 < 1.0


def test_chunk_buffers_too_big_name_chunk_runs(tmp_path):
    """In fresh interpreters, as a user runs them: a process's own memory is part of the
    budget, and the test process's (JAX loaded, say) is not a sweep's."""
    spec = wide_spec(tmp_path, "chunky", 64, 1024, 8, 64, 5, chunk_runs=64)
    base = plan_json(spec, tmp_path / "out", "--jobs", "1")["cost"]["base_bytes"]
    cmd = sweep_cmd(spec, tmp_path / "out", "--max-memory", str(base + (30 << 20)), "--jobs", "1")
    r = subprocess.run(cmd, env=env(), capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    assert re.search(r"chunky\.toml: \[sweep\] chunk_runs: a chunk of 64 runs needs", r.stderr)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # 20 s: two wide sweeps measured
def test_max_memory_narrows_the_tile_keeps_the_bytes_and_the_peak(tmp_path):
    """Two workers of a wide problem: by default a tile of 16 runs needs more than 400M in
    all; under --max-memory 400M the tile narrows, the peak stays under it, and the bytes
    are those of the unconstrained sweep."""
    # no stored weights: in CI's larger venv a worker's share of 400M is 47 MiB, and a chunk
    # of 8 runs' weights (two copies in the writer) with the narrowest tile needs 49 MiB
    spec = wide_spec(tmp_path, "narrow", 64, 2048, 128, 16, 5, chunk_runs=8, weights="none")
    free = plan_json(spec, tmp_path / "a", "--jobs", "2")["cost"]
    held = plan_json(spec, tmp_path / "b", "--jobs", "2", "--max-memory", "400M")["cost"]
    assert free["peak_bytes"] > 400 << 20 and free["tile"] == 16
    assert held["peak_bytes"] <= 400 << 20 and held["tile"] < 16
    warm_kernels(spec, tmp_path)
    rc, peak, err = measured_sweep(spec, tmp_path / "b", "--jobs", "2", "--max-memory", "400M")
    assert rc == 0, err
    sys.stderr.write(f"--max-memory 400M: peak RSS {peak:,} (estimate {held['peak_bytes']:,})\n")
    assert peak < 400 << 20
    rc, _, err = measured_sweep(spec, tmp_path / "a", "--jobs", "2")
    assert rc == 0, err
    assert_same_results(tmp_path / "b" / "narrow", tmp_path / "a" / "narrow")


@pytest.mark.slow  # 20 s: a killed worker, then two wide sweeps
def test_worker_killed_for_memory_names_the_chunk_then_a_lower_budget_completes(tmp_path):
    """The OOM killer (simulated by tests/hooks) kills loky workers training tiles of 16
    runs: exit 1, one line naming the chunk, the memory and the flag, no resume advice;
    status agrees; a lower --max-memory (tiles of 8) completes."""
    spec = wide_spec(tmp_path, "oom", 64, 2048, 128, 16, 5, chunk_runs=8)
    shape = (128, 64, 1)
    limit = (cost.kernel_bytes(shape, 2048, "float64", 8)
             + cost.kernel_bytes(shape, 2048, "float64", 16)) // 2  # fmt: skip
    kill = {"RUNNER_TEST_OOM": str(limit)}  # the OOM killer (tests/hooks/runner_simulate.py)
    out = tmp_path / "out"
    args = ["--jobs", "2", "--backend", "loky"]
    rc, _, err = measured_sweep(spec, out, *args, **kill)
    assert rc == 1, err
    last = err.strip().splitlines()[-1]
    assert re.fullmatch(
        r"runner: failed: chunk [01](, 1)? failed: worker lost \(TerminatedWorkerError: killed "
        r"by SIGKILL, as the kernel's OOM killer does\); it needed about [\d.]+ MiB a worker: "
        r"run again with a lower --max-memory .*", last)  # fmt: skip
    assert "resume" not in err and "interrupted" not in err and "Traceback" not in err
    status = subprocess.run([sys.executable, "-m", "runner", "status", str(out / "oom")],
                            env=env(), capture_output=True, text=True)  # fmt: skip
    done = len(list((out / "oom" / "runs").iterdir()))
    assert status.returncode == 1 and f"chunks: {done} done, {2 - done} pending" in status.stdout
    # a budget that leaves each worker process room for a tile of 8, not 16
    c = plan_json(spec, out, *args)["cost"]
    budget = str(3 * c["base_bytes"] + 2 * (c["buffer_bytes"] + c["writer_bytes"] + limit))
    rc, _, err = measured_sweep(spec, out, *args, "--max-memory", budget, **kill)
    assert rc == 0, err


def test_memory_error_in_a_chunk_says_what_it_needed(tmp_path, capsys, monkeypatch):
    from runner.run import worker

    def no_room(task):
        raise MemoryError("Unable to allocate 44.7 GiB")

    monkeypatch.setattr(worker, "_train_and_write", no_room)
    spec = write_spec(tmp_path)
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out"), "--jobs", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after any compiling note
    assert re.fullmatch(r"runner: failed: chunk \d+ failed: MemoryError; it needed about "
                        r"[\d.]+ [KM]iB a worker: run again with a lower --max-memory .*",
                        err)  # fmt: skip
    assert "resume" not in err


# ----- disk -----
Usage = namedtuple("Usage", "total used free")


def test_disk_under_the_estimate_exits_2_before_writing(tmp_path, capsys, monkeypatch):
    from runner.run import budget

    out = tmp_path / "out"
    monkeypatch.setattr(budget.shutil, "disk_usage", lambda p: Usage(10**9, 10**9, 1000))
    assert main(["sweep", str(SPEC), "--out", str(out), *sets(SMALL)]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(r"runner: error: disk: needs about [\d.]+ [KM]iB for losses/ and "
                        r"runs/, but \S+ has 1000 B free\n", err)  # fmt: skip
    assert not out.exists()


def test_disk_under_twice_the_estimate_warns_and_runs(tmp_path, capsys, monkeypatch):
    from runner.run import budget

    out = tmp_path / "out"
    assert main(["plan", str(SPEC), "--out", str(out), "--json", *sets(SMALL)]) == 0
    need = json.loads(capsys.readouterr().out)["cost"]["disk_bytes"]
    monkeypatch.setattr(budget.shutil, "disk_usage",
                        lambda p: Usage(10**9, 10**9, int(need * 1.5)))  # fmt: skip
    assert main(["sweep", str(SPEC), "--out", str(out), "--quiet", *sets(SMALL)]) == 0
    assert "warning: " in capsys.readouterr().err
    assert (out / "seed-sweep" / "sweep.json").is_file()


def test_large_sweep_prints_its_plan_first(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cost, "HOUR", 0.0)
    spec = write_spec(tmp_path)
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert re.match(r"runner: plan: 36 runs in 8 chunks, 10,800 epoch-runs; memory ", err), err


# ----- memory figures -----
def test_sizes_and_slurm_memory(monkeypatch):
    assert memory.parse_size("400M") == 400 << 20
    assert memory.parse_size("1.5GiB") == 3 << 29
    assert memory.parse_size("512") == 512
    with pytest.raises(runner.RunnerError, match="--max-memory"):
        memory.parse_size("lots")
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("SLURM_MEM_PER_NODE", "1000")
    room, source = memory.available()
    assert source == "SLURM's --mem" and room == 1000 << 20
    assert memory.memory_budget(None)[0] == int(0.8 * (1000 << 20))


def test_a_bad_max_memory_is_one_line(tmp_path, capsys):
    assert main(["sweep", str(SPEC), "--out", str(tmp_path), "--max-memory", "0"]) == 2
    assert capsys.readouterr().err.startswith("runner: error: --max-memory: ")
    assert not any(tmp_path.iterdir())


def test_peak_rss_is_the_programs_own_not_its_forking_parents():
    """Linux's ru_maxrss carries the forking parent's peak across exec (CI measured the
    pytest process's 815 MB as every sweep's peak); peak_rss() is the new program's own."""
    held = bytearray(512 << 20)
    held[:: 1 << 12] = b"\1" * len(held[:: 1 << 12])
    code = "from runner.run.memory import peak_rss; print(peak_rss())"
    r = subprocess.run([sys.executable, "-c", code], env=env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout) < 256 << 20 < memory.peak_rss()
    del held


def test_a_ctrl_c_during_the_pilot_is_held_then_raised():
    """pyarrow's writers swallow a KeyboardInterrupt raised in their __del__: the pilot
    holds SIGINT and raises it once done."""
    from runner.run import calibrate

    steps = []

    def held() -> None:
        with calibrate._sigint_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            steps.append("after the signal")

    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # whatever ran before
    try:
        with pytest.raises(KeyboardInterrupt):
            held()
        assert steps == ["after the signal"]
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # an ignored SIGINT stays ignored
        held()
        assert steps == ["after the signal"] * 2
    finally:
        signal.signal(signal.SIGINT, before)


def test_a_small_sweep_skips_the_calibration_and_pilot_runner_plan_does_not(tmp_path, monkeypatch):
    from runner.run import budget, calibrate

    spec = load_spec(SPEC, ["grid.seed={start=0,stop=4}", "train.epochs=50"])
    calls = []
    monkeypatch.setattr(calibrate, "pilot", lambda *a: calls.append(a))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # no calibration yet
    budget.before_sweep(spec, tmp_path / "a", fresh=False, jobs=1, backend="threading",
                        shard=None, max_memory=None, quiet=True)  # fmt: skip
    assert calls == [] and not calibrate.cache_file().exists()  # no calibration either
    budget.plan_cost(spec, tmp_path / "a", jobs=1)
    assert len(calls) == 1
    big = load_spec(SPEC, ["grid.seed={start=0,stop=100000}", "record.every=1000"])  # hours
    budget.before_sweep(big, tmp_path / "b", fresh=False, jobs=1, backend="threading",
                        shard=None, max_memory=None, quiet=True)  # fmt: skip
    assert len(calls) == 2


def test_a_cut_pilots_curves_continue_as_power_laws():
    from runner.kernel.codes import EPOCHS_RUN
    from runner.run.calibrate import _continued

    t = np.arange(1, 31, dtype=np.float64)
    curves = np.stack([5 * t**-0.5, 2 * t**-1.0, np.full(30, 3.0)], axis=1)  # (epochs, runs)
    istats = np.zeros((3, 3), np.int64)
    istats[:, EPOCHS_RUN] = [3, 3, 2]  # the last run stopped in the pilot
    loss, st = _continued(curves[:3].astype(np.float32), istats, 3, 30, 1)
    assert loss.shape == (30, 3) and loss.dtype == np.float32
    np.testing.assert_allclose(loss[:, :2], curves[:, :2], rtol=1e-5)
    assert st[:, EPOCHS_RUN].tolist() == [30, 30, 2]
