"""Backends are classes behind one protocol and registry (runner.run.backends): the CLI's
choices come from it, and no module outside it branches on a backend's name."""

import argparse
import ast
from pathlib import Path

import pytest

from runner.cli import _parser
from runner.errors import RunnerError
from runner.plan import params
from runner.run import backends
from runner.run.backends import BACKENDS, Backend, get_backend

PKG = Path(__file__).resolve().parents[1] / "runner"
# backend names that are not also a parameter's value ("sequential" is an update rule)
NAMES = set(BACKENDS) - {c for p in params.PARAMS for c in p.choices}


def branches_on_a_name(path: Path) -> list[str]:
    """``x == "loky"``, ``x in ("dask", ...)``, ``match`` cases and the like: every
    comparison or case with a backend's name as a constant."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Compare):
            parts = [node.left, *node.comparators]
        elif isinstance(node, ast.match_case):
            parts = [node.pattern]
        else:
            continue
        for part in parts:
            for sub in ast.walk(part):
                if isinstance(sub, ast.Constant) and sub.value in NAMES:
                    found.append(f"{path}:{node.lineno}: {sub.value!r}")
    return found


def test_no_branch_on_a_backend_name_outside_the_registry():
    found = [hit for path in sorted(PKG.rglob("*.py")) if path.name != "backends.py"
             for hit in branches_on_a_name(path)]  # fmt: skip
    assert found == []


def test_the_check_sees_a_branch(tmp_path):
    """The check above can fail."""
    path = tmp_path / "example.py"
    path.write_text('if backend == "cuda" or kind in ("loky", "x"):\n    pass\n')
    assert [h.split(": ")[1] for h in branches_on_a_name(path)] == ["'cuda'", "'loky'"]
    assert NAMES == {"threading", "loky", "dask", "cuda"}


def test_the_cli_offers_the_registry():
    parser = _parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sweep = sub.choices["sweep"]
    action = next(a for a in sweep._actions if a.dest == "backend")
    assert list(action.choices) == list(BACKENDS)
    assert set(BACKENDS) == {"sequential", "threading", "loky", "dask", "cuda"}


def test_every_backend_follows_the_protocol():
    for name, cls in BACKENDS.items():
        assert issubclass(cls, Backend) and cls.name == name and cls.help
        assert isinstance(cls.supports_stop, bool) and isinstance(cls.cpu_kernels, bool)
        assert cls.dispatch is not Backend.dispatch
    assert get_backend(None).name == backends.DEFAULT_BACKEND
    assert get_backend("dask", scheduler="tcp://h:1").scheduler == "tcp://h:1"
    with pytest.raises(RunnerError, match=r"--backend: unknown backend 'mpi'; choose one of"):
        get_backend("mpi")


@pytest.mark.parametrize(
    ("name", "jobs", "chunks", "runs"),
    [("threading", 1, 5, "sequential"), ("threading", 4, 1, "sequential"),
     ("threading", 4, 5, "threading"), ("loky", 1, 5, "sequential"), ("loky", 2, 5, "loky"),
     ("dask", 1, 1, "dask"), ("cuda", 1, 1, "cuda"), ("sequential", 8, 8, "sequential")],
)  # fmt: skip
def test_a_pool_of_one_runs_sequentially(name, jobs, chunks, runs):
    assert get_backend(name).for_work(jobs, chunks).name == runs


def test_sequential_dispatch_stops_when_the_chunk_function_says_so():
    seen = []

    def chunk(task):
        seen.append(task)
        return None if task >= 2 else task

    got = list(get_backend("sequential").dispatch(iter(range(4)), 4, 1, chunk))
    assert got == [0, 1, None, None] and seen == [0, 1, 2, 3]


def test_threading_dispatch_runs_every_task_once():
    got = list(get_backend("threading").dispatch(iter(range(20)), 20, 3, lambda t: t * t))
    assert sorted(got) == [t * t for t in range(20)]
