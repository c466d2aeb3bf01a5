"""The one set of test helpers: specs, the environment and command line of a sweep in a
fresh interpreter, and the one exact comparison of two results folders."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "experiments" / "seed-sweep.toml"
NAME = "seed-sweep"
# overrides of SPEC: 5 alphas x 4 hidden x 4 seeds = 80 runs in 12 chunks; some diverge
SMALL = ["grid.seed={start=0,stop=4}", "train.epochs=300", "sweep.chunk_runs=8"]
# 24 runs in 6 chunks of about a second each: slow enough to cancel a task half-way
SLOW = [
    "grid.alpha=0.01,0.03,0.1",
    "grid.hidden=2,4",
    "grid.seed={start=0,stop=4}",
    "train.epochs=600000",
    "record.every=1000",
    "sweep.chunk_runs=4",
]


HOOKS = ROOT / "tests" / "hooks"  # sitecustomize.py: the fault hooks (RUNNER_TEST_KILL, ...)


def env(**extra: str) -> dict[str, str]:
    """This environment, with this checkout of runner first on the path, then the test
    hooks (every process started with it loads them), and one job by default (a test that
    wants more says ``--jobs``)."""
    paths = [str(ROOT), str(HOOKS), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "RUNNER_JOBS": "1", **extra}


def sets(overrides: list[str]) -> list[str]:
    """``--set`` arguments for a list of overrides."""
    return [a for o in overrides for a in ("--set", o)]


def sweep_cmd(spec: Path, out: Path, *extra: str) -> list[str]:
    """The command line of a quiet sweep in a fresh interpreter."""
    return [sys.executable, "-m", "runner", "sweep", str(spec), "--out", str(out), "--quiet",
            *extra]  # fmt: skip


def run_sweep(spec: Path, out: Path, *extra: str) -> Path:
    """Run ``sweep_cmd`` to the end; the results folder."""
    r = subprocess.run(
        sweep_cmd(spec, out, *extra), env=env(), capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr
    return out / tomllib.loads(spec.read_text())["name"]


def runner_cmd(*args: str, **kw) -> subprocess.CompletedProcess:
    """``python -m runner ARGS`` in a fresh interpreter, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "runner", *args],
        capture_output=True,
        text=True,
        env=env(**kw.pop("env", {})),
        **kw,
    )


SMALL_SPEC = """
name = "small"
[data]
builtin = "seed"
[train]
epochs = 300
init = [0.0, 1.0]
[grid]
alpha = [0.01, 0.1, 0.5]
hidden = [2, 3]
seed = {{ start = 0, stop = 6 }}
[record]
every = {every}
[sweep]
chunk_runs = {chunk_runs}
"""


def write_spec(folder: Path, text: str | None = None, name: str = "spec.toml", **fmt) -> Path:
    """SMALL_SPEC (36 runs, some diverging) or ``text``, written to ``folder/name``."""
    params = {"every": 1, "chunk_runs": 5} | fmt
    path = folder / name
    path.write_text(textwrap.dedent(text if text is not None else SMALL_SPEC.format(**params)))
    return path


def make_sweep(root: Path, name: str, grid: str, train: str = "epochs = 300", extra: str = ""):
    """A tiny sweep of the seed data, run in this process into root/results/<name>."""
    import runner

    text = f'name = "{name}"\n[train]\n{train}\n[grid]\n{grid}\n{extra}\n'
    spec = write_spec(root, text, name=f"{name}.toml")
    runner.sweep(spec, out=root / "results", jobs=1, quiet=True, progress=False)
    return root / "results" / name


KEYS = {"losses": ["run_id", "epoch"], "runs": ["run_id"]}


def read_results(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(losses, runs), sorted by run_id (and epoch), after checking that no key repeats."""
    tables = []
    for part, keys in KEYS.items():
        frame = pd.read_parquet(folder / part)
        assert not frame.duplicated(keys).any(), f"duplicate {keys} in {folder / part}"
        tables.append(frame.sort_values(keys, ignore_index=True))
    return tables[0], tables[1]


def assert_same_results(got: Path, want: Path) -> None:
    """The same dataset bit for bit: the same chunk files in ``losses/`` and ``runs/``,
    no repeated (run_id, epoch) or run_id, and equal tables with equal dtypes and every
    value exactly equal (NaN where NaN); the same ``weights/`` files, equal, where
    either has them."""
    for part in KEYS:
        assert sorted(os.listdir(got / part)) == sorted(os.listdir(want / part)), part
    for a, b in zip(read_results(got), read_results(want), strict=True):
        assert len(a) > 0
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    weights = [sorted(os.listdir(f / "weights")) if (f / "weights").is_dir() else []
               for f in (got, want)]  # fmt: skip
    assert weights[0] == weights[1], "weights"
    for name in weights[0]:
        a, b = (pq.read_table(f / "weights" / name) for f in (got, want))
        assert a.equals(b), f"weights/{name}"


@contextlib.contextmanager
def sigint_for_children(ignored: bool = False) -> Iterator[None]:
    """Start processes inside this block with SIGINT as a terminal's foreground job has it
    (or, ignored=True, as a script's background job has it: ignored).

    A background job of a non-interactive shell (a CI runner's, say) inherits SIGINT
    ignored, and Python and runner keep it ignored. A handled signal is reset to the
    default at exec, an ignored one stays ignored: so the test process sets its own
    disposition while it starts the child. (Not a preexec_fn: that makes subprocess fork,
    and a fork after JAX has started its threads warns, an error under pytest.)"""
    import signal

    before = signal.signal(signal.SIGINT, signal.SIG_IGN if ignored else signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)
