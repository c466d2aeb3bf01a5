"""Lean start-up: `import runner` and `runner sweep` load no pandas, matplotlib or dask;
reading results and checking a sweep's arguments load no Numba; dask is an extra, and
`--backend dask` without it is bad input."""

import json
import subprocess
import sys

import pytest
from helpers import ROOT, env

HEAVY = ("pandas", "matplotlib", "dask", "distributed", "jax")
NUMBA = ("numba", "llvmlite")

SPEC = """
name = "lean"
[train]
epochs = 20
[grid]
alpha = [0.01, 0.1]
output = ["linear", "sigmoid"]
stop_below = [10.0, 1e-12]
seed = { start = 0, stop = 20 }
[sweep]
chunk_runs = 64
"""


def loaded_after(code: str, watch: tuple[str, ...] = HEAVY) -> dict:
    """Run `code` in a fresh interpreter; return its result and which packages of `watch`
    it loaded."""
    probe = (f"import sys, json\n{code}\n"
             f"print(json.dumps({{'result': result, 'loaded': sorted("
             f"{{m.split('.')[0] for m in sys.modules}} & {set(watch)!r})}}))")  # fmt: skip
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env(),
                       cwd=ROOT)  # fmt: skip
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_import_runner_loads_nothing_heavy():
    out = loaded_after("import runner\nresult = sorted(runner.__all__)")
    assert out["loaded"] == []
    assert "sweep" in out["result"]


def test_public_names_load_on_use_and_train_stays_the_function():
    code = ("import runner\nfrom runner.run.train import run_batch\n"
            "result = [callable(runner.train), runner.train.__name__, runner.sweep.__name__,"
            " runner.RunnerError.__name__]")  # fmt: skip
    out = loaded_after(code)
    assert out["result"] == [True, "train", "sweep", "RunnerError"]
    assert out["loaded"] == []


def test_sweep_and_its_resume_load_no_pandas_matplotlib_or_dask(tmp_path):
    spec = tmp_path / "lean.toml"
    spec.write_text(SPEC)
    code = (f"from runner.cli import main\nargv = ['sweep', {str(spec)!r}, '--out', "
            f"{str(tmp_path)!r}, '--quiet']\n"
            "result = [main(argv), main(argv)]")  # fmt: skip
    out = loaded_after(code)
    assert out["result"] == [0, 0]  # the second call resumes: reads the chunks back
    assert out["loaded"] == []
    # 2 outputs x 2 stop_below: 4 blocks of 40 runs, a chunk each
    assert len(list((tmp_path / "lean" / "runs").glob("chunk-*.parquet"))) == 4


def test_files_written_without_pandas_read_back_with_nullable_epochs(tmp_path):
    import pandas as pd

    import runner

    spec = tmp_path / "lean.toml"
    spec.write_text(SPEC)
    runner.sweep(spec, out=tmp_path, jobs=1, quiet=True, progress=False)
    runs = runner.load(tmp_path / "lean").runs
    assert runs["converged_epoch"].dtype == pd.Int32Dtype()
    assert runs["diverged_epoch"].dtype == pd.Int32Dtype()
    assert runs["converged_epoch"].notna().any() and runs["converged_epoch"].isna().any()
    assert runs["output"].dtype == "category"
    assert set(runs["output"]) == {"linear", "sigmoid"}
    assert runs["stop_below"].isin([10.0, 1e-12]).all()


def test_backend_dask_without_dask_names_the_extra(tmp_path):
    spec = tmp_path / "lean.toml"
    spec.write_text(SPEC)
    code = ("import sys\nsys.modules['dask'] = None\nsys.modules['distributed'] = None\n"
            "from runner.cli import main\n"
            f"sys.exit(main(['sweep', {str(spec)!r}, '--out', {str(tmp_path / 'out')!r},"
            " '--backend', 'dask', '--quiet']))")  # fmt: skip
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env(),
                       cwd=ROOT)  # fmt: skip
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.strip().splitlines() == [
        "runner: error: --backend dask: needs dask, which is not installed here: "
        "pip install 'runner[dask]'"
    ]
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def lean_results(tmp_path_factory):
    """A finished sweep of SPEC (written by another process) and its spec file."""
    tmp = tmp_path_factory.mktemp("lean")
    spec = tmp / "lean.toml"
    spec.write_text(SPEC)
    r = subprocess.run([sys.executable, "-m", "runner", "sweep", str(spec), "--out", str(tmp),
                        "--quiet"], capture_output=True, text=True, env=env())  # fmt: skip
    assert r.returncode == 0, r.stderr
    return tmp / "lean", spec


READERS = {
    "status": "main(['status', F])",
    "summary": "main(['summary', F, '--format', 'csv'])",
    "plot": "main(['plot', F, '--out', F + '/figures'])",
    "report": "main(['report', F, '--out', F + '/r.html'])",
    "runner.load": "(lambda r: 0 if len(r.runs) == 160 and len(r.losses()) else 1)(runner.load(F))",
    "sweep: no spec file": "main(['sweep', F + '/missing.toml'])",
    "sweep: bad spec key": "main(['sweep', S, '--out', F + '/x', '--set', 'train.epoch=5'])",
    "sweep: bad --jobs": "main(['sweep', S, '--out', F + '/x', '--jobs', '0'])",
    "sweep: bad --backend": "main(['sweep', S, '--out', F + '/x', '--backend', 'mpi'])",
    "sweep: bad --shard": "main(['sweep', S, '--out', F + '/x', '--shard', '3/2'])",
    "sweep: --grace without --requeue": "main(['sweep', S, '--grace', '5'])",
}


@pytest.mark.parametrize("what", list(READERS))
def test_reading_results_and_checking_arguments_load_no_numba(lean_results, what):
    folder, spec = lean_results
    code = (f"import runner\nfrom runner.cli import main\nF, S = {str(folder)!r}, {str(spec)!r}\n"
            f"result = {READERS[what]}")  # fmt: skip
    out = loaded_after(code, NUMBA)
    assert out["result"] == (2 if what.startswith("sweep") else 0)
    assert out["loaded"] == []
    assert not (folder / "x").exists()  # bad input: nothing written


def test_a_sweep_does_load_numba(tmp_path):
    """The probe above can fail: training loads Numba."""
    spec = tmp_path / "lean.toml"
    spec.write_text(SPEC.replace("stop = 20", "stop = 1"))
    code = (f"from runner.cli import main\nresult = main(['sweep', {str(spec)!r}, '--out', "
            f"{str(tmp_path)!r}, '--quiet'])")  # fmt: skip
    out = loaded_after(code, NUMBA)
    assert out == {"result": 0, "loaded": ["llvmlite", "numba"]}
