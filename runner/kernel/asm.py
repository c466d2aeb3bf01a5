"""The tile kernel's assembly, and a count of what vectorised in it (tests, bench)."""

from __future__ import annotations

import re

import numpy as np
from numba import njit

from runner.kernel import cpu
from runner.kernel.codes import TILE
from runner.kernel.numba_ext import FASTMATH, JIT, compiler_for, vector_width

_VECTOR_OP = re.compile(r"\bv(mul|add|sub|div)p[sd]\b.*\b([yz]mm)")
_SCALAR_OP = re.compile(r"\bv(mul|add|sub|div)s[sd]\b")
_FMA = re.compile(r"\bvf(n?m(add|sub)|madd|msub)\w*\b")
_CALL = re.compile(r"\bcall[lq]?\s+(\S+)")


def tile_asm(
    hidden: int = 4,
    sigmoid_out: bool = False,
    sequential: bool = True,
    dtype: str = "float64",
    fastmath: bool = False,
) -> str:
    """Assembly of the kernel of one variant, compiled afresh (cached code cannot be
    inspected)."""
    py = cpu.kernel(sigmoid_out, sequential, fastmath).py_func
    flags = {**JIT, "cache": False} | ({"fastmath": FASTMATH} if fastmath else {})
    fn = njit(pipeline_class=compiler_for(vector_width()), **flags)(py)
    f = np.dtype(dtype)
    n, ni, no, R = 4, 2, 1, TILE
    X, Y = np.ones((n, ni), f), np.ones((n, no), f)
    Xv, Yv, val_out, vstats = cpu.no_held_out(X, Y)
    fn(
        X, Y, Xv, Yv, np.zeros((ni, hidden, R), f), np.zeros((hidden, no, R), f),
        np.zeros(R, f), np.zeros(R, f), f.type(1), f.type(1),
        1, 1, 1, -np.inf, np.inf, np.inf, 0,  # epochs, every, tail, stop, diverge, patience
        np.zeros((1, R)), val_out, np.zeros((R, 3), dtype=np.int64), np.zeros((R, cpu.FSTATS)),
        vstats, False, (np.empty((1, 1)), np.empty((1, 1)), np.empty((1, 2))),
        cpu.scratch(n, ni, hidden, no, TILE, f, fastmath),
    )  # fmt: skip
    return "\n".join(fn.inspect_asm().values())


def vector_report(dtype: str = "float64", fastmath: bool = False) -> dict:
    """Count packed arithmetic in the tile kernel's assembly (does it vectorise?).

    ``packed``: lines of ``v{mul,add,sub,div}p{d,s}`` on ymm/zmm registers; ``zmm`` and
    ``ymm`` split them by width; ``scalar``: the same operations as ``...s{d,s}``;
    ``fma``: fused multiply-adds (none in the exact modes); ``calls``: call targets;
    ``exp_call``: whether any call to a libm exp remains.
    """
    asm = tile_asm(dtype=dtype, fastmath=fastmath)
    lines = asm.splitlines()
    widths = [m.group(2) for m in map(_VECTOR_OP.search, lines) if m]
    calls = sorted({m.group(1) for m in map(_CALL.search, lines) if m})
    return {
        "tile": TILE,
        "packed": len(widths),
        "zmm": widths.count("zmm"),
        "ymm": widths.count("ymm"),
        "scalar": sum(1 for line in lines if _SCALAR_OP.search(line)),
        "fma": sum(1 for line in lines if _FMA.search(line)),
        "round": len(re.findall(r"\bv(rndscale|round)p[sd]\b", asm)),
        "calls": calls,
        "exp_call": any("exp" in c for c in calls),
    }
