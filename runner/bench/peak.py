"""The core's peak and a floor per epoch-run: what no kernel on this core can beat.

The floor counts the arithmetic of one epoch of one run as the kernel does it
(``runner.kernel.tiles.epoch_ops``: sums of products in order, exact modes without fused
multiply-adds, fastmath modes with them, the sigmoid as runner computes it in each mode)
and divides it by the core's peak: every vector lane of both FP pipes busy every
cycle, and the divider busy every cycle, whichever takes longer. It ignores memory,
loop overhead and the lanes left idle by a vector that does not fill, so a real
kernel stays above it.
"""

from __future__ import annotations

import os
import platform
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from runner.kernel.tiles import epoch_ops

FP_PIPES = 2  # vector FMA pipes per core (Skylake-SP Gold/Platinum, Ice Lake, Zen 3/4)
# divisions per cycle per core (Skylake-SP: vdivpd zmm 8 lanes / 16 cycles, vdivps zmm
# 16 lanes / 10 cycles; narrower vectors take proportionally fewer cycles)
DIV_PER_CYCLE = {"float64": 0.5, "float32": 1.6}
DEFAULT_GHZ = 2.0


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


def epoch_flops(n: int, inputs: int, hidden: int) -> int:
    """Floating-point operations of one epoch-run, the same count for every peer: float64
    exact's (a multiply and an add are two, a division one)."""
    ops = epoch_ops(n, inputs, hidden)
    return ops["ops"] + ops["divisions"]


def floor_ns(
    c: Core, n: int, inputs: int, hidden: int, dtype: str = "float64", fastmath: bool = False
) -> dict[str, Any]:
    """The floor of one epoch-run in ns on core ``c``, and the counts behind it."""
    count = epoch_ops(n, inputs, hidden, 1, "linear", dtype, fastmath)
    ops, divs = count["ops"], count["divisions"]
    arith = ops / (c.lanes(dtype) * c.fp_pipes * c.ghz)
    divide = divs / (DIV_PER_CYCLE[dtype] * c.ghz)
    return {"floor_ns": max(arith, divide), "ops": ops, "divisions": divs,
            "bound": "arithmetic" if arith >= divide else "divider"}  # fmt: skip


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
