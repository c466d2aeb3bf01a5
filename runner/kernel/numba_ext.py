"""Numba's flags and every use of Numba's and llvmlite's private or internal API.

Tested with numba 0.68.1 and llvmlite 0.50.0 (the development environment) and with
numba 0.62.0 and llvmlite 0.45.0 (``make test-oldest``); pyproject.toml allows
``numba>=0.62,<0.69``, and tests/test_numba_ext.py fails outside that range.
``make test-latest`` runs the kernel tests against the newest releases: when it fails,
this module is where to look first.

What each use relies on:

- ``NoAliasCompiler``: ``numba.core.compiler.Compiler`` and the ``state.flags.noalias``
  flag (marks every array argument's data pointer ``noalias``, as parfors does);
- ``WideCompiler``: ``numba.core.typed_passes.NativeLowering`` replaced in the nopython
  pipeline by a subclass whose ``lowering_class`` (a ``numba.core.lowering.Lower``) adds
  an LLVM string attribute to the function it lowers, past llvmlite's list of known
  attributes (``FunctionAttributes`` is a ``set``);
- ``frozen_fptosi``: ``IRBuilder._insert`` with a hand-built ``freeze`` instruction
  (llvmlite has no ``builder.freeze``);
- ``compiles_for_avx512``: ``numba.core.config.CPU_NAME``/``CPU_FEATURES`` and
  ``numba.core.codegen.get_host_cpu_features``, the target Numba compiles for;
- ``clone_function``: a ``types.FunctionType`` copy of a Python function under another
  name, so that Numba keys a second cache entry on it (one source, several variants);
- ``has_cache_index``: a dispatcher's ``_cache._index_path`` (whether Numba's cache
  holds an index for the function: compiled before on this machine);
- ``compile_target``: ``numba.core.config.CPU_NAME``/``CPU_FEATURES``, llvmlite's host
  CPU name and ``get_host_cpu_features`` (what Numba's cache index keys entries by);
- ``cuda_simulator``: ``numba.core.config.ENABLE_CUDASIM``.
"""

from __future__ import annotations

import os
import types as types_mod

from llvmlite import ir
from numba.core import compiler, config, lowering, typed_passes
from numba.core.codegen import get_host_cpu_features
from numba.core.compiler_machinery import register_pass

from runner.errors import RunnerError

# Every Numba flag in one place. error_model="numpy" drops the division-by-zero
# branch that would stop LLVM vectorising the loops.
JIT = {"nogil": True, "cache": True, "error_model": "numpy", "boundscheck": False}
# The exact kernels' helpers that Numba compiles once per signature as functions of their
# own (exp's scale and polynomials): never fastmath. Numba hands a caller's fastmath flags
# to a callee that does not set its own, so the first caller in a process would decide.
EXACT_JIT = {**JIT, "fastmath": False}
# The fastmath flags LLVM may use: FMA contraction, reassociation, reciprocals,
# approximate functions, no signed zeros. Not nnan/ninf: divergence is found by
# testing the loss for NaN and infinity.
FASTMATH = {"contract", "reassoc", "arcp", "afn", "nsz"}

TESTED = {"numba": ((0, 62), (0, 68)), "llvmlite": ((0, 45), (0, 50))}  # (lowest, highest) minor


class NoAliasCompiler(compiler.Compiler):
    """Numba's pipeline, with every array argument's data pointer marked ``noalias``.

    The tile kernel's arrays never overlap (train_batch's arguments are distinct
    arrays, the rest is its own scratch); telling LLVM so lets it vectorise the run
    loops without run-time overlap checks (Numba's ``parfors`` does the same).
    """

    def define_pipelines(self):
        self.state.flags.noalias = True
        return super().define_pipelines()


class _WideLower(lowering.Lower):
    """Numba's lowering, with ``"prefer-vector-width"="512"`` on the function: LLVM's
    vectoriser then uses 512-bit registers where the CPU has them (on AVX-512 CPUs LLVM
    prefers 256 bits by default)."""

    def pre_lower(self):
        super().pre_lower()
        set.add(self.builder.function.attributes, '"prefer-vector-width"="512"')


@register_pass(mutates_CFG=True, analysis_only=False)
class _WideLowering(typed_passes.NativeLowering):
    _name = "runner_wide_lowering"

    @property
    def lowering_class(self):
        return _WideLower


class WideCompiler(NoAliasCompiler):
    """``NoAliasCompiler`` whose function prefers 512-bit vectors (``vector_width``)."""

    def define_pipelines(self):
        pipelines = super().define_pipelines()
        for pm in pipelines:
            pm.passes = [(_WideLowering if p is typed_passes.NativeLowering else p, text)
                         for p, text in pm.passes]  # fmt: skip
        return pipelines


def vector_width() -> int:
    """The vector width the kernels are compiled for: 512 bits where Numba compiles for
    AVX-512 (``compiles_for_avx512``) and ``RUNNER_VECTOR_WIDTH=512`` asks for it; else
    LLVM's own choice, 256 bits on AVX-512 CPUs (measured faster on a Xeon: see
    docs/performance.md). Any other value than 256 or 512 is a RunnerError."""
    told = os.environ.get("RUNNER_VECTOR_WIDTH", "").strip()
    if told not in ("", "256", "512"):
        raise RunnerError(f"must be 256 or 512, got {told!r}", key="RUNNER_VECTOR_WIDTH")
    return 512 if told == "512" and compiles_for_avx512() else 256


def compiler_for(width: int):
    """The kernels' Numba compiler for a ``vector_width()``."""
    return WideCompiler if width == 512 else NoAliasCompiler


def frozen_fptosi(builder: ir.IRBuilder, x: ir.Value, ty: ir.IntType) -> ir.Instruction:
    """fptosi, then ``freeze``: a NaN gives some integer rather than LLVM's poison."""
    k = builder.fptosi(x, ty)
    frozen = ir.instructions.Instruction(builder.block, ty, "freeze", [k])
    builder._insert(frozen)
    return frozen


def compiles_for_avx512() -> bool:
    """Whether Numba compiles for a CPU with AVX-512F (the host, unless overridden).

    A function of NUMBA_CPU_NAME, NUMBA_CPU_FEATURES and the host's features as Numba
    sees them, all of which key Numba's cache: code compiled for one choice is never
    loaded for another target."""
    features = config.CPU_FEATURES
    if features is None:
        if config.CPU_NAME not in (None, "host"):
            return False
        features = get_host_cpu_features()
    return "+avx512f" in features.split(",")


def clone_function(fn, name: str, **replace):
    """fn's code under another name (so its own Numba cache entry), with some of the
    globals it calls replaced: a generated variant of one source."""
    glob = {**fn.__globals__, **replace}
    new = types_mod.FunctionType(fn.__code__, glob, name, fn.__defaults__, fn.__closure__)
    new.__qualname__ = name
    new.__doc__ = fn.__doc__
    return new


def has_cache_index(dispatcher) -> bool:
    """Whether Numba's cache holds an index file for this function (a variant compiled
    before on this machine, for some CPU); False where caching is off."""
    import os

    cache_file = getattr(getattr(dispatcher, "_cache", None), "_cache_file", None)
    path = getattr(cache_file, "_index_path", None)
    return bool(path) and os.path.exists(path)


def compile_target() -> str:
    """The CPU target Numba compiles for, as its cache index keys entries: the CPU name
    (NUMBA_CPU_NAME, else the host's, e.g. ``znver2``) and a hash of the features
    (NUMBA_CPU_FEATURES, else the host's). Equal on two machines: each loads the other's
    cache entries."""
    import hashlib

    from llvmlite import binding

    name = config.CPU_NAME or "host"
    if name == "host":
        name = binding.get_host_cpu_name()
    features = config.CPU_FEATURES
    if features is None:
        features = get_host_cpu_features()
    return f"{name}-{hashlib.sha1(features.encode()).hexdigest()[:8]}"


def cuda_simulator() -> bool:
    """Whether numba-cuda runs its simulator (NUMBA_ENABLE_CUDASIM=1 at numba's import)."""
    return bool(config.ENABLE_CUDASIM)


def version_tuple(text: str) -> tuple[int, int]:
    """(major, minor) of a version string such as ``0.68.1`` or ``0.69.0rc1``."""
    major, minor = text.split(".")[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


def tested_versions() -> dict[str, bool]:
    """For numba and llvmlite: whether the installed version is in the tested range."""
    import llvmlite
    import numba

    installed = {"numba": numba.__version__, "llvmlite": llvmlite.__version__}
    return {name: lo <= version_tuple(installed[name]) <= hi for name, (lo, hi) in TESTED.items()}
