"""``runner plan`` and ``runner sweep --dry-run``: a sweep's cost, printed, nothing written."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from runner.plan.cost import Cost, size
from runner.plan.spec import Spec, load_spec
from runner.run.budget import Sizing, plan_cost

MEM_MARGIN, TIME_MARGIN = 1.25, 1.5  # a SLURM request's room over the estimate


def _default_jobs() -> int:
    from runner.run.driver import default_jobs

    return default_jobs()


def plan(spec: str | Path | Spec, *, out: str | Path = "results",
         overrides: list[str] | None = None, jobs: int | None = None, backend: str | None = None,
         max_memory: str | int | None = None, tasks: int | None = None,
         fresh: bool = False) -> dict[str, Any]:  # fmt: skip
    """The cost of ``runner sweep`` with these options now (what is done is skipped), and,
    with ``tasks``, that of one task of ``runner slurm --tasks`` with a suggested --mem and
    --time. RunnerError where a budget is broken."""
    if not isinstance(spec, Spec):
        spec = load_spec(spec, overrides)
    backend = backend or os.environ.get("RUNNER_BACKEND") or "threading"
    jobs = _default_jobs() if jobs is None else jobs
    folder = Path(out) / spec.name
    sizing = plan_cost(spec, folder, fresh=fresh, jobs=jobs, backend=backend,
                       max_memory=max_memory)  # fmt: skip
    found: dict[str, Any] = {"sweep": spec.name, "jobs": jobs, "backend": backend,
                             "cost": sizing.cost.as_dict(), "summary": sizing.cost.summary(),
                             "lines": sizing.cost.lines()}  # fmt: skip
    if tasks:
        task = _task(spec, folder, tasks, jobs, backend, max_memory, fresh)
        found["task"] = task.cost.as_dict()
        found["slurm"] = suggest(task.cost)
        found["lines"] += [f"slurm task    1 of {tasks}: {task.cost.summary()}",
                           f"  suggested   --mem {found['slurm']['mem']} --time "
                           f"{found['slurm']['time']}"]  # fmt: skip
    return found


def _task(spec: Spec, folder: Path, tasks: int, jobs: int, backend: str,
          max_memory: str | int | None, fresh: bool) -> Sizing:  # fmt: skip
    """The costliest task's sizing (shard 0 holds the most chunks)."""
    best = None
    for i in range(min(tasks, 4)):
        s = plan_cost(spec, folder, fresh=fresh, jobs=jobs, backend=backend, shard=(i, tasks),
                      max_memory=max_memory)  # fmt: skip
        if best is None or s.cost.seconds > best.cost.seconds:
            best = s
    assert best is not None
    return best


def suggest(c: Cost) -> dict[str, str]:
    """sbatch --mem and --time with room over the estimate: MiB rounded up, whole minutes."""
    mem = math.ceil(c.peak_bytes * MEM_MARGIN / (1 << 20) / 64) * 64
    minutes = max(5, math.ceil(c.seconds * TIME_MARGIN / 60) + 2)
    return {"mem": f"{mem}M", "time": f"{minutes // 60:02d}:{minutes % 60:02d}:00"}


def render(found: dict[str, Any], as_json: bool) -> str:
    if as_json:
        return json.dumps({k: v for k, v in found.items() if k != "lines"}, indent=2)
    head = f"plan of {found['sweep']} ({found['jobs']} jobs, {found['backend']}):"
    return "\n".join([head, *(f"  {line}" for line in found["lines"])])


__all__ = ["plan", "render", "size", "suggest"]
