"""Numba's private API lives in runner.kernel.numba_ext alone, and the installed numba is
in the range that module is tested with."""

import re
import tomllib
from pathlib import Path

import llvmlite
import numba

from runner.kernel import numba_ext

ROOT = Path(__file__).resolve().parents[1]
PRIVATE = re.compile(
    r"numba\.core|numba\.np\.|\._insert\b|instance_class|types(_mod)?\.FunctionType\("
    r"|(?<!jax)(?<!jax\.)\bconfig\.[A-Z]|get_host_cpu_features|state\.flags"
)


def test_private_api_only_in_numba_ext():
    users = []
    for path in sorted((ROOT / "runner").rglob("*.py")):
        if path.name == "numba_ext.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if PRIVATE.search(line):
                users.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert users == []


def test_installed_numba_and_llvmlite_are_in_the_tested_range():
    installed = {"numba": numba.__version__, "llvmlite": llvmlite.__version__}
    assert numba_ext.tested_versions() == {"numba": True, "llvmlite": True}, installed


def test_pyproject_bounds_numba_below_the_next_minor():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (numba_req,) = [d for d in deps if re.match(r"numba\b", d)]
    upper = re.search(r"<\s*([0-9.]+)", numba_req)
    assert upper, numba_req
    highest = numba_ext.TESTED["numba"][1]
    assert numba_ext.version_tuple(upper.group(1)) == (highest[0], highest[1] + 1)


def test_version_tuple():
    assert numba_ext.version_tuple("0.68.1") == (0, 68)
    assert numba_ext.version_tuple("0.69.0rc1") == (0, 69)
    assert not (numba_ext.TESTED["numba"][0] <= (0, 69) <= numba_ext.TESTED["numba"][1])


def test_has_cache_index_sees_numba_writing_its_cache(tmp_path, monkeypatch):
    """False before the first compile, True after: the compile note and the calibration's
    second pass depend on it (a wrong attribute once made it False for ever)."""
    (tmp_path / "cached_mod.py").write_text(
        "from numba import njit\n\n@njit(cache=True)\ndef f(x):\n    return x + 1\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))  # its cache: next to it, in a new folder
    import cached_mod

    assert not numba_ext.has_cache_index(cached_mod.f)
    assert cached_mod.f(1) == 2
    assert numba_ext.has_cache_index(cached_mod.f)


def test_the_kernels_sources_are_closed_under_import():
    """Every runner.kernel module that a CPU kernel source imports is itself one of
    ``KERNEL_SOURCES``, whose hash is in each variant's name (so that Numba's cache, which
    checks only cpu.py, never loads a kernel built from other sources)."""
    import ast

    from runner.kernel import cpu

    imported = set()
    for name in cpu.KERNEL_SOURCES:
        tree = ast.parse((ROOT / "runner" / "kernel" / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "runner.kernel":
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "runner.kernel."
            ):
                imported.add(node.module.split(".")[2])
    assert imported <= set(cpu.KERNEL_SOURCES), imported - set(cpu.KERNEL_SOURCES)
    assert cpu.source_tag() in cpu.kernel(False, True, False).py_func.__name__
