"""Numbers for people: rates with a unit prefix, and the line that says the kernel
compiles. Pure functions (the progress display in runner.run.driver uses them)."""

from __future__ import annotations

import math

_PREFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def si(value: float) -> str:
    """A count with a prefix and two or three significant digits: ``7.2k``, ``950``,
    ``12M``, ``1.5G``."""
    if not math.isfinite(value):
        return "?"
    for scale, prefix in _PREFIXES:
        if abs(value) >= scale * 0.9995:
            return _digits(value / scale) + prefix
    return _digits(value)


def _digits(x: float) -> str:
    if abs(x) >= 99.95:
        return f"{x:.0f}"
    if abs(x) >= 9.995:
        return f"{x:.0f}" if abs(x - round(x)) < 0.05 else f"{x:.1f}".rstrip("0").rstrip(".")
    return f"{x:.1f}" if x else "0"


def rate(count: float, seconds: float, unit: str) -> str:
    """``7.2k rows/s``: count per second with a prefix (``? unit/s`` before any time)."""
    if seconds <= 0:
        return f"? {unit}/s"
    return f"{si(count / seconds)} {unit}/s"


def compiling_line(dtype: str, fastmath: bool, seconds: float) -> str:
    """What the progress line says while a kernel variant compiles."""
    mode = f"{dtype} fastmath" if fastmath else dtype
    return f"compiling the {mode} kernel (first run on this machine, ~{seconds:.0f} s)"
