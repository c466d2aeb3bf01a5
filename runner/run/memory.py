"""How much memory this process may use, and what a chunk or a run needs of it.

The budget (``--max-memory``) defaults to a safe share of what this machine allows:
``MemAvailable``, the cgroup's limit, or SLURM's ``--mem`` inside a job, whichever is
least. It may narrow only the kernel's tile (docs/guarantees.md).
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from runner.errors import RunnerError
from runner.kernel import tiles
from runner.plan import cost
from runner.plan import params as P
from runner.plan.cost import size

SAFE_SHARE = 0.8  # of what the machine allows: room for the page cache and the rest
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(I?B)?", re.IGNORECASE)


def _status(field: str) -> int | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return None


def _maxrss() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def rss() -> int:
    """This process's resident bytes now."""
    return _status("VmRSS") or _maxrss()


def peak_rss() -> int:
    """This process's peak resident bytes since it started its program. Linux's ``ru_maxrss``
    keeps the peak of the process that forked it before ``exec``; ``VmHWM`` does not."""
    return _status("VmHWM") or _maxrss()


def parse_size(text: str | int, key: str = "--max-memory") -> int:
    """``400M``, ``18G``, ``1.5GiB``, ``512MB`` or a number of bytes -> bytes (binary units)."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        m = _SIZE.fullmatch(str(text).strip())
        if m is None:
            raise RunnerError(f"expects a size like 400M or 18G, got {text!r}", key=key)
        scale = 1 << (10 * " KMGT".index(m.group(2).upper() or " "))
        value = int(float(m.group(1)) * scale)
    if value <= 0:
        raise RunnerError(f"must be more than 0 bytes, got {text!r}", key=key)
    return value


def _read_int(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text().split()[0])
    return None


def _meminfo(field: str) -> int | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return None


def _cgroup_room() -> int | None:
    """The cgroup's memory limit less what it uses (v2, else v1); None without a limit."""
    own = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                own = line[3:].strip().lstrip("/")
    for folder, limit, used in (
        (Path("/sys/fs/cgroup") / own, "memory.max", "memory.current"),
        (Path("/sys/fs/cgroup"), "memory.max", "memory.current"),
        (Path("/sys/fs/cgroup/memory"), "memory.limit_in_bytes", "memory.usage_in_bytes"),
    ):
        cap = _read_int(folder / limit)
        if cap is not None and cap < 1 << 60:
            return cap - (_read_int(folder / used) or 0)
    return None


def _slurm_mem() -> int | None:
    """SLURM's --mem (or --mem-per-cpu x CPUs) inside a job, in bytes."""
    if "SLURM_JOB_ID" not in os.environ:
        return None
    env = os.environ
    if env.get("SLURM_MEM_PER_NODE", "").isdigit():
        return int(env["SLURM_MEM_PER_NODE"]) << 20
    cpus = env.get("SLURM_CPUS_PER_TASK") or env.get("SLURM_CPUS_ON_NODE") or "1"
    if env.get("SLURM_MEM_PER_CPU", "").isdigit() and cpus.isdigit():
        return int(env["SLURM_MEM_PER_CPU"]) * int(cpus) << 20
    return None


def available() -> tuple[int, str]:
    """Bytes this process may use in all, and where the figure comes from."""
    own = rss()
    found = []
    mem = _meminfo("MemAvailable")
    if mem is not None:
        found.append((mem + own, "MemAvailable"))
    room = _cgroup_room()
    if room is not None:
        found.append((room + own, "the cgroup limit"))
    slurm = _slurm_mem()
    if slurm is not None:
        found.append((slurm, "SLURM's --mem"))
    return min(found) if found else (8 << 30, "an assumed 8 GiB")


def memory_budget(max_memory: str | int | None) -> tuple[int, str]:
    """The budget in bytes and how it was set."""
    if max_memory is not None:
        return parse_size(max_memory), "--max-memory"
    room, source = available()
    return int(room * SAFE_SHARE), f"{SAFE_SHARE:.0%} of {source}; --max-memory"


def chunk_needs(task) -> int:
    """Bytes a chunk's worker needs: its tile's working set, buffers and writer."""
    X, Y, cols = task.X, task.Y, task.columns
    shape = (X.shape[0], X.shape[1], Y.shape[1])
    R, h = len(cols["alpha"]), int(cols["hidden"][0])
    epochs, dtype = int(cols["epochs"][0]), P.DTYPES[int(cols["dtype"][0])]
    rows = cost.rows_at_most(epochs, task.every)
    tile = task.tile or tiles.choose_tile(shape[0], shape[1], h, shape[2], dtype)
    bias = bool(cols["bias"][0])
    stored = R * ((shape[1] + bias) * h + (h + bias) * shape[2]) if task.weights else 0
    return (cost.kernel_bytes(shape, h, dtype, tile)
            + cost.writer_bytes(R, rows, task.loss_dtype, stored)
            + cost.buffer_bytes(R, shape, h, rows, task.loss_dtype, dtype))  # fmt: skip


def out_of_memory(chunks: list[int], needed: int | None, how: str) -> str:
    """The one line of a chunk that ran out of memory."""
    which = f"chunk {', '.join(map(str, chunks))}" if chunks else "a chunk"
    need = f"it needed about {size(needed)} a worker" if needed else "out of memory"
    return (
        f"{which} failed: {how}; {need}: run again with a lower --max-memory "
        "(narrower kernel tiles), fewer --jobs or a smaller [sweep] chunk_runs"
    )


def train_tile(n: int, ni: int, hidden: int, no: int, dtype: str, epochs: int, runs: int = 1
               ) -> int:  # fmt: skip
    """The tile of ``runner.train`` (one run) or ``runner.train_many`` (``runs``) under the
    default budget: the automatic tile, or narrower where fewer runs fill it (a lane
    without a run costs as much as one with); RunnerError (the sweep's sentence) when even
    the narrowest does not fit."""
    budget, source = memory_budget(None)
    shape = (n, ni, no)
    auto = tiles.choose_tile(n, ni, hidden, no, dtype)
    auto = min(auto, next((t for t in tiles.TILES if t >= runs), auto))
    own = cost.buffer_bytes(runs, shape, hidden, epochs, "float64", dtype)
    for t in sorted(tiles.TILES, reverse=True):
        if t <= auto and own + cost.kernel_bytes(shape, hidden, dtype, t) <= budget:
            return t
    raise RunnerError(cost.one_tile_reason(shape, hidden, dtype, 0, budget, source),
                      key="hidden")  # fmt: skip


def killed(exc: BaseException) -> str:
    """What a lost worker's exception says of how it died."""
    text = str(exc)
    if "SIGKILL" in text:
        return ": killed by SIGKILL, as the kernel's OOM killer does"
    return ""
