"""--backend cuda: the CUDA kernel in numba-cuda's simulator gives the CPU's bytes.

The simulator is chosen by NUMBA_ENABLE_CUDASIM=1 before numba.cuda is imported, so
those sweeps run in a fresh interpreter; the CPU sweeps they are compared with run
here. The PTX test compiles the real kernel (NVVM, no device needed) and reads it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import need_service
from helpers import ROOT, assert_same_results, read_results, sweep_cmd

import runner

SIM = dict(os.environ, PYTHONPATH=str(ROOT), NUMBA_ENABLE_CUDASIM="1")

# Mixed shapes (hidden 1 and 3, 3 inputs and 2 outputs), both output layers, both
# update orders, a chaotic alpha that diverges for some runs and not others,
# stop_below that some runs reach, losses every 7th epoch, chunks of 4 runs.
MIXED = """
name = "mixed"
[data]
path = "{data}"
[train]
epochs = 150
stop_below = 0.14
diverge_above = 1e4
[grid]
output = ["linear", "sigmoid"]
update = ["sequential", "simultaneous"]
hidden = [1, 3]
alpha = [0.05, 0.9]
seed = {{ start = 0, stop = 3 }}
[record]
every = 7
[sweep]
chunk_runs = 4
"""

# The seed problem at a chaotic learning rate, every epoch recorded in float64.
SEED = """
name = "seed"
[data]
builtin = "seed"
[train]
epochs = 400
hidden = 4
[grid]
alpha = [0.1, 0.25]
seed = {{ start = 0, stop = 6 }}
[record]
loss_dtype = "float64"
"""


def _data(folder: Path) -> Path:
    rng = np.random.default_rng(7)
    X = rng.uniform(-1, 1, size=(5, 3))
    Y = np.stack([np.tanh(X.sum(1)), X[:, 0] * X[:, 1]], axis=1)
    np.savez(folder / "points.npz", X=X, Y=Y)
    return folder / "points.npz"


def _both(tmp_path: Path, text: str) -> tuple[Path, Path]:
    """The sweep on the CPU (here) and with --backend cuda in the simulator."""
    spec = tmp_path / "spec.toml"
    spec.write_text(textwrap.dedent(text.format(data=_data(tmp_path))))
    cpu = runner.sweep(spec, out=tmp_path / "cpu", jobs=1, quiet=True, progress=False)
    r = subprocess.run(
        sweep_cmd(spec, tmp_path / "gpu", "--backend", "cuda"),
        capture_output=True, text=True, env=SIM, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return cpu.out, tmp_path / "gpu" / cpu.out.name


@pytest.mark.slow
def test_mixed_sweep_is_the_cpus_bytes(tmp_path):
    cpu, gpu = _both(tmp_path, MIXED)
    assert_same_results(gpu, cpu)
    _, runs = read_results(cpu)  # the sweep did exercise every rule
    assert runs["diverged"].any() and not runs["diverged"].all()
    assert runs["converged_epoch"].notna().any()
    assert (runs["epochs_run"] == 150).any()
    assert set(runs["hidden"]) == {1, 3}


@pytest.mark.slow
def test_chaotic_seed_sweep_is_the_cpus_bytes(tmp_path):
    cpu, gpu = _both(tmp_path, SEED)
    assert_same_results(gpu, cpu)
    losses, runs = read_results(cpu)
    assert losses["loss"].dtype == np.float64
    assert (runs["epochs_run"] == 400).any() and runs["diverged"].any()  # inf reached


FAMILY = """
name = "family"
[data]
path = "{data}"
[train]
epochs = 80
bias = true
scaling = "mean-field"
step = "gradient"
diverge_above = 1e4
[grid]
activation = ["tanh", "relu"]
output = ["linear", "sigmoid"]
alpha_hidden = [0.3, 3.0]
alpha_output = [0.5, 20.0]
seed = {{ start = 0, stop = 2 }}
[record]
every = 5
[sweep]
chunk_runs = 4
"""


@pytest.mark.slow
def test_family_sweep_is_the_cpus_bytes(tmp_path):
    """tanh and relu, bias, mean-field scaling, the gradient step and per-layer rates on the
    CUDA backend (simulator) give the CPU sweep's bytes."""
    cpu, gpu = _both(tmp_path, FAMILY)
    assert_same_results(gpu, cpu)
    _, runs = read_results(cpu)
    assert set(runs["activation"]) == {"tanh", "relu"} and runs["bias"].all()
    assert runs["diverged"].any() and not runs["diverged"].all()


FAMILY_BATCH = """
import numpy as np
from runner.run.cuda import run_batch_cuda
from runner.run.train import init_weights, run_batch

rng = np.random.default_rng(5)
X, Y = rng.uniform(-1, 1, (6, 3)), rng.uniform(0, 1, (6, 2))
alpha = np.array([0.05, 0.5, 2.0, 8.0] * 3)
a_h = np.linspace(0.1, 4.0, len(alpha))
for dtype in ("float64", "float32"):
    for act in ("sigmoid", "tanh", "relu", "identity"):
        Wh, Wz = init_weights(range(len(alpha)), 3, 5, 2, (-1.0, 1.0), bias=True)
        kw = dict(dtype=dtype, activation=act, bias=True, scaling="mean-field",
                  step="gradient", alpha_hidden=a_h)
        args = (X, Y, Wh.copy(), Wz.copy(), alpha, 40, "sigmoid", "simultaneous", 3, 0.01, 50.0)
        a = run_batch(*args, **kw)
        b = run_batch_cuda(X, Y, Wh.copy(), Wz.copy(), *args[4:], **kw)
        for name in ("loss", "istats", "fstats", "Wh", "Wz"):
            np.testing.assert_array_equal(getattr(b, name), getattr(a, name), err_msg=name)
print("same")
"""


@pytest.mark.slow  # make test: test_gpu_family's sample is the reference's bytes
def test_run_batch_cuda_trains_the_family_as_run_batch():
    r = subprocess.run([sys.executable, "-c", FAMILY_BATCH], capture_output=True, text=True,
                       env=SIM, timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "same"


BATCH = """
import sys
import numpy as np
from runner.run.cuda import run_batch_cuda
from runner.run.train import init_weights, run_batch

dtype = sys.argv[1]
mode = {} if dtype == "float64" else {"dtype": dtype}
rng = np.random.default_rng(3)
X, Y = rng.uniform(-1, 1, (6, 3)), rng.uniform(0, 1, (6, 2))
alpha = np.array([0.05, 0.5, 2.0, 8.0] * 6)
for output in ("linear", "sigmoid"):
    for update in ("sequential", "simultaneous"):
        Wh, Wz = init_weights(range(len(alpha)), 3, 5, 2, (-1.0, 1.0))
        args = (X, Y, Wh.copy(), Wz.copy(), alpha, 60, output, update, 4, 0.05, 50.0, np.float32)
        a = run_batch(*args, **mode, diverge_factor=30.0)
        args = (X, Y, Wh.copy(), Wz.copy(), *args[4:])
        b = run_batch_cuda(*args, dtype=dtype, diverge_factor=30.0)
        for name in ("loss", "istats", "fstats", "Wh", "Wz"):
            np.testing.assert_array_equal(getattr(b, name), getattr(a, name), err_msg=name)
        print(output, update, *np.bincount(a.istats[:, 2], minlength=3))
"""


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_batch_equals_run_batch_with_final_weights(dtype):
    """run_batch_cuda against run_batch: recorded losses (NaN after a stop), per-run
    statistics and the final weights, which the sweep files do not hold."""
    import inspect

    from runner.run.train import run_batch

    if dtype != "float64" and "dtype" not in inspect.signature(run_batch).parameters:
        pytest.skip("run_batch has no float32 mode in this checkout (the kernel branch adds it)")
    r = subprocess.run(
        [sys.executable, "-c", BATCH, dtype], capture_output=True, text=True, env=SIM,
        timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    counts = np.array([line.split()[2:] for line in r.stdout.splitlines()], dtype=int)
    assert counts.shape == (4, 3)
    assert counts[:, 1].sum() > 0 and counts[:, 2].sum() > 0  # some diverged, some converged


def test_no_device_is_one_line_and_writes_nothing(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(textwrap.dedent(SEED.format()))
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env |= {"PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}  # hides any real GPU too
    r = subprocess.run(
        sweep_cmd(spec, tmp_path / "out", "--backend", "cuda"),
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "--backend cuda" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


def test_launches_group_equal_kernel_keys(tmp_path):
    from runner.plan.spec import load_spec
    from runner.run.cuda_sweep import plan_launches
    from runner.run.worker import kernel_keys, tasks_for

    spec_path = tmp_path / "spec.toml"
    spec_path.write_text(textwrap.dedent(MIXED.format(data=_data(tmp_path))))
    spec = load_spec(spec_path)
    tasks = list(tasks_for(spec, tmp_path, list(range(spec.n_chunks))))
    kerns = [kernel_keys(t) for t in tasks]
    groups = plan_launches(tasks, kerns, target=8)
    seen = [t.index for g in groups for t in g.tasks]
    assert sorted(seen) == list(range(spec.n_chunks))  # every chunk once
    for g in groups:
        assert all(kernel_keys(t) == g.kern for t in g.tasks)
        assert g.runs == sum(t.run_stop - t.run_start for t in g.tasks)
        assert g.runs <= 8 or len(g.tasks) == 1
        starts = [a for _, a, _ in g.parts]
        assert starts == sorted(starts) and starts[0] == 0
    assert len(groups) < spec.n_chunks  # chunks were batched


MODELS = {
    "notebook": ("sigmoid", False, 1.0, 1.0),
    "tanh, bias, mean-field": ("tanh", True, 0.7, 0.25),
}


def _ptx(dtype: str, fastmath: bool, model: str = "notebook") -> str:
    from numba import cuda
    from numba import types as t

    from runner.kernel.cuda import Model, make_kernel

    f = t.float64 if dtype == "float64" else t.float32
    sig = (f[:, ::1], f[:, ::1], f[:, :, ::1], f[:, :, ::1], f[::1], f[::1], t.int64, t.int64,
           t.int64, t.float64, t.float64, t.float64, t.float32[:, ::1], t.int64[:, ::1],
           t.float64[:, ::1])  # fmt: skip
    kernel = make_kernel(4, 2, 4, 1, True, True, dtype, fastmath, Model(*MODELS[model]))
    try:
        ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=(9, 0), fastmath=fastmath)
    except Exception as exc:  # no NVVM: numba-cuda[cu13] brings it (the dev extra does)
        if "NVVM" in str(exc) or "nvvm" in str(exc) or "libdevice" in str(exc):
            need_service(f"NVVM to compile PTX: {' '.join(str(exc).split())[:120]}")
        raise
    return ptx


@pytest.mark.slow
@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_exact_ptx_never_fuses_and_fastmath_does(dtype, model):
    """A real GPU runs the libdevice path the simulator never takes. NVVM would contract
    a*b + c into an fma; the exact kernel multiplies, adds and divides with libdevice's
    _rn calls, which become .rn instructions (PTX never fuses those), and keeps
    subnormals (no .ftz); fastmath uses FMA."""
    f = "f64" if dtype == "float64" else "f32"
    exact = _ptx(dtype, False, model)
    ops = re.findall(rf"^\s*((?:fma|mul|add|sub|div|rcp|ex2)\.[\w.]*{f})", exact, re.M)
    assert {f"mul.rn.{f}", f"add.rn.{f}"} <= set(ops), sorted(set(ops))
    assert {f"div.rn.{f}", f"rcp.rn.{f}"} & set(ops), sorted(set(ops))  # IEEE division
    assert not [op for op in ops if op.startswith("fma") or ".approx" in op or ".ftz" in op]
    assert not re.search(r"\b(ex2|lg2|rcp|div)\.approx", exact)
    fast = _ptx(dtype, True, model)
    assert re.search(rf"^\s*fma\.rn(\.ftz)?\.{f}", fast, re.M)


@pytest.mark.slow
def test_gpu_check_runs_end_to_end_in_the_simulator(tmp_path):
    r = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--scale", "0.0001",
         "--json", str(tmp_path / "check.json")],
        capture_output=True, text=True, env=SIM, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    import json

    out = json.loads((tmp_path / "check.json").read_text())
    same = out["identical"]
    assert same["seed"] is True and same["mixed"] is True and same["batch_float64"] is True
    assert same["batch_float32"] is True
    assert all(v is True or v.startswith("skipped") for v in out["identical"].values())
    assert out["device"]["simulator"] is True
    timed = [r for r in out["kernel"] if "error" not in r]
    assert {(r["mode"], r["fastmath"]) for r in timed} >= {("float64", False), ("float64", True)}
    assert {row["every"] for row in out["end_to_end"]} == {1, 100}
    assert all(row["epoch_runs_per_s"] > 0 for row in timed + out["end_to_end"])
    assert out["ratios"]["float64_vs_cpu_2cores"] > 0
    assert "gpu_check" in r.stdout and "epoch-runs/s" in r.stdout
    assert out["dask_imported"] is False
    assert out["init_weights"]["same_as_numpy"] is True  # GPU machines have no dask


def test_slurm_gpus_per_task_passes_through(tmp_path, capsys):
    from runner.cli import main

    spec = tmp_path / "spec.toml"
    spec.write_text(textwrap.dedent(SEED.format()))
    argv = ["slurm", str(spec), "--tasks", "1", "--out", str(tmp_path), "--dry-run"]
    assert main([*argv, "--gpus-per-task", "2"]) == 0
    text = (tmp_path / "seed" / "slurm" / "sweep.sbatch").read_text()
    assert "#SBATCH --gpus-per-task=2\n" in text
    assert text.rstrip().endswith("--backend cuda")
    assert main([*argv, "--gpus-per-task", "0"]) == 2
    assert "--gpus-per-task" in capsys.readouterr().err
    assert main(argv) == 0  # without it: the CPU, as before
    assert "cuda" not in (tmp_path / "seed" / "slurm" / "sweep.sbatch").read_text()


def test_two_devices_keep_two_launches_in_flight(tmp_path, monkeypatch):
    """The dispatcher with two fake devices whose launches train on the CPU: every chunk
    is written once, the files are the CPU sweep's, and each device queues its next
    launch before it waits for the last one (double buffering)."""
    import contextlib
    import itertools
    import threading

    from runner.run import cuda_sweep as gpu_sweep
    from runner.run.train import run_batch

    log, ids = [], itertools.count()

    class CpuLaunch:
        def __init__(self, *args):
            self.args = args[:12]  # run_batch's positional arguments; dtype, fastmath follow
            self.id = next(ids)
            log.append(("start", threading.current_thread().name, self.id))

        def result(self):
            log.append(("result", threading.current_thread().name, self.id))
            return run_batch(*self.args)

    monkeypatch.setattr(gpu_sweep, "Launch", CpuLaunch)
    monkeypatch.setattr(gpu_sweep, "device_count", lambda: 2)
    monkeypatch.setattr(gpu_sweep, "_device", lambda d: contextlib.nullcontext())
    monkeypatch.setattr(gpu_sweep, "_simulator", lambda: True)
    monkeypatch.setattr(gpu_sweep, "launch_runs", lambda device=None: 8)  # two chunks each
    monkeypatch.setattr("runner.run.cuda.device_count", lambda: 2)
    spec = tmp_path / "spec.toml"
    init = "init = [[0.0, 1.0], [-1.0, 0.5]]\n[record]"  # an init axis: per-run ranges
    spec.write_text(textwrap.dedent(MIXED.format(data=_data(tmp_path))).replace("[record]", init))
    cpu = runner.sweep(spec, out=tmp_path / "cpu", jobs=1, quiet=True, progress=False)
    gpu = runner.sweep(spec, out=tmp_path / "gpu", backend="cuda", jobs=2, quiet=True,
                       progress=False)  # fmt: skip
    assert gpu.chunks_run == cpu.chunks_run == 24  # 8 kernel settings x 3 chunks of 4 runs
    assert_same_results(gpu.out, cpu.out)
    starts = [e for e in log if e[0] == "start"]  # per kernel setting: 4 + 4 runs, then 4
    assert len(starts) == 16
    assert sorted(e[2] for e in log if e[0] == "result") == list(range(16))
    for name in {e[1] for e in starts}:
        mine = [e for e in log if e[1] == name]
        if len([e for e in mine if e[0] == "start"]) >= 2:
            assert [e[0] for e in mine[:2]] == ["start", "start"]


def test_without_numba_cuda_the_error_names_the_extra(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(textwrap.dedent(SEED.format()))
    code = (
        "import sys; sys.modules['numba.cuda'] = None  # as if numba-cuda were not installed\n"
        "from runner.cli import main\n"
        f"sys.exit(main(['sweep', {str(spec)!r}, '--out', {str(tmp_path / 'out')!r}, "
        "'--backend', 'cuda']))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)  # fmt: skip
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "runner[cuda]" in r.stderr
    assert not (tmp_path / "out").exists()
