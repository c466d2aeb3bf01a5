"""The core's peak and a floor per epoch-run: what no kernel on this core can beat.

The floor counts the arithmetic of one epoch of one run as the kernel does it
(sums of products in order; exact modes without fused multiply-adds, fastmath modes
with them; the sigmoid as runner computes it in each mode, SIGMOID) and divides by
the core's peak: every vector lane of both FP pipes busy every cycle, and the divider
busy every cycle, whichever takes longer. It ignores memory, loop overhead and the
lanes left idle by a vector that does not fill, so a real kernel stays above it.
"""

from __future__ import annotations

import os
import platform
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

FP_PIPES = 2  # vector FMA pipes per core (Skylake-SP Gold/Platinum, Ice Lake, Zen 3/4)
# divisions per cycle per core (Skylake-SP: vdivpd zmm 8 lanes / 16 cycles, vdivps zmm
# 16 lanes / 10 cycles; narrower vectors take proportionally fewer cycles)
DIV_PER_CYCLE = {"float64": 0.5, "float32": 1.6}
DEFAULT_GHZ = 2.0
# The sigmoid per mode as runner's kernels compute it: (vector operations, divisions).
# Exact: exp's reduction (two clamps, a multiply, rint, two multiplies and adds), its
# polynomial by Estrin (degree 11 in float64, 6 in float32), the scale by 2**k, 1 + exp,
# then a division. Fastmath: the same reduction with FMAs, a polynomial by Horner in FMAs
# (degree 9, 5), and the reciprocal by a bit trick and Newton steps (4, 3), no division.
SIGMOID = {
    ("float64", False): (36, 1),
    ("float64", True): (29, 0),
    ("float32", False): (25, 1),
    ("float32", True): (23, 0),
}


@dataclass
class Core:
    """One core's peak, from the CPU flags and clock (assumptions stated in ``note``)."""

    cpu: str
    vector_bits: int
    ghz: float
    ghz_source: str
    fp_pipes: int = FP_PIPES

    def lanes(self, dtype: str) -> int:
        return self.vector_bits // (64 if dtype == "float64" else 32)

    def peak_gflops(self, dtype: str) -> float:
        """Floating-point operations per second (a fused multiply-add is two), in G."""
        return self.lanes(dtype) * self.fp_pipes * 2 * self.ghz

    def note(self) -> str:
        return (
            f"{self.cpu}: {self.vector_bits}-bit vectors, {self.fp_pipes} FP pipes, "
            f"{self.ghz:.2f} GHz ({self.ghz_source}); peak "
            f"{self.peak_gflops('float64'):.0f} GFLOP/s float64, "
            f"{self.peak_gflops('float32'):.0f} float32 per core; divisions "
            f"{DIV_PER_CYCLE['float64']} (float64), {DIV_PER_CYCLE['float32']} (float32) "
            "per cycle (assumed: Skylake-SP's FP pipes and divider)"
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "note": self.note()}


def _cpuinfo() -> dict[str, str]:
    info: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return info


def core() -> Core:
    """This machine's core: vector width from the CPU flags, clock from cpufreq's maximum,
    else the model name's nominal clock, else /proc/cpuinfo's current one, else 2 GHz."""
    info = _cpuinfo()
    flags = set((info.get("flags") or info.get("Features") or "").split())
    if "avx512f" in flags:
        bits = 512
    elif "avx2" in flags or "avx" in flags:
        bits = 256
    else:
        bits = 128  # SSE2, NEON
    cpu = info.get("model name") or platform.processor() or platform.machine()
    ghz, source = DEFAULT_GHZ, "assumed"
    cpufreq = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    nominal = re.search(r"@\s*([\d.]+)\s*GHz", cpu)
    try:
        ghz, source = int(cpufreq.read_text()) / 1e6, "cpufreq maximum"
    except (OSError, ValueError):
        if nominal:
            ghz, source = float(nominal.group(1)), "nominal, from the model name"
        elif info.get("cpu MHz"):
            ghz, source = float(info["cpu MHz"]) / 1e3, "current, from /proc/cpuinfo"
    return Core(cpu, bits, ghz, source)


def _mac(terms: int, fastmath: bool) -> int:
    """A sum of ``terms`` products: a multiply and an add each, or one FMA each."""
    return terms if fastmath else 2 * terms


def epoch_ops(
    n: int, inputs: int, hidden: int, dtype: str = "float64", fastmath: bool = False
) -> tuple[int, int]:
    """(vector operations, divisions) of one epoch of one run, one linear output,
    sequential update: forward, loss, output and hidden updates."""
    sig, sig_div = SIGMOID[dtype, fastmath]
    forward = n * (hidden * (_mac(inputs, fastmath) + sig) + _mac(hidden, fastmath))
    error = n * (2 + _mac(1, fastmath))  # e = y - z, sq += e * e, dz = e * alpha
    bookkeeping = 6  # loss, minimum, divergence check of the epoch
    wz = hidden * (_mac(n, fastmath) + 1)
    delta = n * hidden * (_mac(1, fastmath) + 3)  # dz * wz, then * h * (1 - h)
    wh = inputs * hidden * (_mac(n, fastmath) + 1)
    ops = forward + error + bookkeeping + wz + delta + wh
    return ops, n * hidden * sig_div + 1  # the sigmoids', and the loss's mean


def epoch_flops(n: int, inputs: int, hidden: int) -> int:
    """Floating-point operations of one epoch-run, the same count for every peer: float64
    exact's (a multiply and an add are two, a division one)."""
    ops, divs = epoch_ops(n, inputs, hidden)
    return ops + divs


def floor_ns(
    c: Core, n: int, inputs: int, hidden: int, dtype: str = "float64", fastmath: bool = False
) -> dict[str, Any]:
    """The floor of one epoch-run in ns on core ``c``, and the counts behind it."""
    ops, divs = epoch_ops(n, inputs, hidden, dtype, fastmath)
    arith = ops / (c.lanes(dtype) * c.fp_pipes * c.ghz)
    divide = divs / (DIV_PER_CYCLE[dtype] * c.ghz)
    return {"floor_ns": max(arith, divide), "ops": ops, "divisions": divs,
            "bound": "arithmetic" if arith >= divide else "divider"}  # fmt: skip


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
