"""The SLURM job this process runs in: its SLURM_* variables in one typed object
(submitit's JobEnvironment is the model) and the controller's configuration, read once
each, from the one place that calls ``scontrol``."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

from runner.errors import RunnerError


def _count(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None


@dataclass(frozen=True)
class JobEnvironment:
    """The SLURM_* variables runner reads; None where unset (outside a job, or not an array)."""

    job_id: str | None = None  # SLURM_JOB_ID
    array_job_id: str | None = None  # SLURM_ARRAY_JOB_ID
    array_task_id: int | None = None  # SLURM_ARRAY_TASK_ID
    array_task_count: int | None = None  # SLURM_ARRAY_TASK_COUNT
    array_task_min: int | None = None  # SLURM_ARRAY_TASK_MIN
    array_task_max: int | None = None  # SLURM_ARRAY_TASK_MAX
    cpus_per_task: int | None = None  # SLURM_CPUS_PER_TASK
    restart_count: int = 0  # SLURM_RESTART_COUNT: requeues so far

    @classmethod
    def read(cls, environ: Mapping[str, str] | None = None) -> JobEnvironment:
        env = os.environ if environ is None else environ
        return cls(
            job_id=env.get("SLURM_JOB_ID") or None,
            array_job_id=env.get("SLURM_ARRAY_JOB_ID") or None,
            array_task_id=_count(env.get("SLURM_ARRAY_TASK_ID")),
            array_task_count=_count(env.get("SLURM_ARRAY_TASK_COUNT")),
            array_task_min=_count(env.get("SLURM_ARRAY_TASK_MIN")),
            array_task_max=_count(env.get("SLURM_ARRAY_TASK_MAX")),
            cpus_per_task=_count(env.get("SLURM_CPUS_PER_TASK")),
            restart_count=_count(env.get("SLURM_RESTART_COUNT")) or 0,
        )

    @property
    def job_task(self) -> str | None:
        """This array task as scontrol names it (``JOB_TASK``), or the job id; None outside
        SLURM."""
        if self.array_job_id and self.array_task_id is not None:
            return f"{self.array_job_id}_{self.array_task_id}"
        return self.job_id

    def shard(self, where: str = "--shard") -> tuple[int, int]:
        """(i, n): this task's place in its job array, counted from the array's first index."""
        if self.array_task_id is None:
            raise RunnerError(
                "--shard auto needs SLURM_ARRAY_TASK_ID (run it in a job array)", key=where
            )
        lo = self.array_task_min or 0
        count = self.array_task_count
        if count is None:
            if self.array_task_max is None:
                raise RunnerError("--shard auto needs SLURM_ARRAY_TASK_COUNT", key=where)
            count = self.array_task_max - lo + 1
        return self.array_task_id - lo, count


def scontrol(*args: str) -> str:
    """``scontrol ARGS``'s output; empty when it cannot run."""
    try:
        proc = subprocess.run(["scontrol", *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return ""
    return proc.stdout


def config() -> dict[str, str]:
    """``scontrol show config`` as KEY -> VALUE (e.g. ``KillWait`` -> ``30 sec``); empty
    when it cannot be read."""
    found = {}
    for line in scontrol("show", "config").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            found[key.strip()] = value.strip()
    return found


def config_number(value: str | None) -> int | None:
    """The leading whole number of a config value (``30 sec`` -> 30); None if none."""
    words = (value or "").split()
    return int(words[0]) if words and words[0].isdigit() else None
