"""SLURM job arrays: task k of N runs `runner sweep SPEC --shard auto` (chunks c mod N == k).

``submit`` writes ``<out>/<name>/slurm/sweep.sbatch``, hands it to ``sbatch --parsable``
and returns at once. All tasks write into the one results folder; re-submitting runs
only the chunks not yet done.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from runner import store
from runner.errors import RunnerError
from runner.spec import MAX_RUNS, Spec, load_spec

SLURM_DIR, SCRIPT, JOBS = "slurm", "sweep.sbatch", "jobs.txt"
ARRAY_RE = re.compile(r"^#SBATCH --array=0-(\d+)\s*$", re.MULTILINE)


@dataclass
class SlurmOptions:
    """sbatch options written as ``#SBATCH`` lines; None leaves the cluster's default."""

    partition: str | None = None  # --partition
    time: str | None = None  # --time, per task, e.g. 01:00:00
    cpus_per_task: int | None = None  # --cpus-per-task; each task uses that many workers
    mem: str | None = None  # --mem, per task, e.g. 4G
    account: str | None = None  # --account
    gpus_per_task: int | None = None  # --gpus-per-task; each task then sweeps with --backend cuda
    extra: list[str] = field(default_factory=list)  # more sbatch options, e.g. --qos=high


@dataclass
class Submission:
    script: Path  # the sbatch script written
    text: str  # its contents
    tasks: int
    job_id: str | None  # None for a dry run


def sbatch_script(
    spec: Spec,
    spec_path: Path,
    root: Path,
    tasks: int,
    overrides: list[str],
    options: SlurmOptions,
    python: str,
    yes: bool = False,
) -> str:
    """The job array script; every path in it is absolute."""
    logs = root / spec.name / SLURM_DIR / "logs"
    lines = [
        "#!/bin/bash",
        "# Written by `runner slurm`: array task k runs shard k of the sweep.",
        "# Submit again after failures: finished chunks are skipped.",
        f"#SBATCH --job-name=runner-{spec.name}",
        f"#SBATCH --array=0-{tasks - 1}",
        f"#SBATCH --output={logs}/%A_%a.out",
    ]
    named = {
        "partition": options.partition,
        "time": options.time,
        "cpus-per-task": options.cpus_per_task,
        "mem": options.mem,
        "account": options.account,
        "gpus-per-task": options.gpus_per_task,
    }
    lines += [f"#SBATCH --{k}={v}" for k, v in named.items() if v is not None]
    lines += [f"#SBATCH {_sbatch_arg(a)}" for a in options.extra]
    argv = [python, "-m", "runner", "sweep", str(spec_path), "--out", str(root)]
    argv += ["--shard", "auto", "--quiet"] + (["--yes"] if yes else [])
    if options.gpus_per_task:
        argv += ["--backend", "cuda"]  # one worker per GPU SLURM gives the task
    for o in overrides:
        argv += ["--set", o]
    lines += ["set -eu", "exec " + shlex.join(argv), ""]
    return "\n".join(lines)


def _sbatch_arg(arg: str) -> str:
    if "\n" in arg or not arg.strip():
        raise RunnerError(f"must be one sbatch option, got {arg!r}", key="--sbatch-arg")
    arg = arg.strip()
    return arg if arg.startswith("-") else f"--{arg}"


def submit(
    spec_path: str | Path,
    tasks: int,
    *,
    out: str | Path = "results",
    overrides: list[str] | None = None,
    options: SlurmOptions | None = None,
    dry_run: bool = False,
    yes: bool = False,
) -> Submission:
    """Validate the spec, write the job array script and submit it (unless ``dry_run``)."""
    overrides = list(overrides or [])
    spec_path = Path(spec_path).resolve()
    spec = load_spec(spec_path, overrides)
    if tasks < 1:
        raise RunnerError(f"must be >= 1, got {tasks}", key="--tasks")
    if tasks > spec.n_chunks:
        raise RunnerError(
            f"{tasks} tasks for {spec.n_chunks} chunks would leave tasks idle; "
            f"use at most {spec.n_chunks} (or a smaller sweep.chunk_runs)",
            key="--tasks",
        )
    if spec.n_runs > MAX_RUNS and not yes:
        raise RunnerError(f"the grid has {spec.n_runs:,} runs; pass --yes", key="grid")
    root = Path(out).resolve()
    folder = root / spec.name
    text = sbatch_script(
        spec, spec_path, root, tasks, overrides, options or SlurmOptions(), sys.executable, yes
    )
    if dry_run:
        _check_same_sweep(folder, spec)
    else:
        sbatch = shutil.which("sbatch")
        if sbatch is None:
            raise RunnerError("sbatch not found on PATH (is this a SLURM login node?)", key="slurm")
        limit = max_array_size()
        if limit is not None and tasks > limit:
            raise RunnerError(
                f"{tasks} tasks exceed the cluster's MaxArraySize {limit} "
                f"(array indices must be < {limit})",
                key="--tasks",
            )
        # sweep.json now: a folder holding another sweep is refused before any job starts
        meta = store.new_meta(spec.resolved(), spec.hash, spec.n_runs, spec.n_chunks)
        store.prepare(folder, meta, fresh=False)
    script = folder / SLURM_DIR / SCRIPT
    (script.parent / "logs").mkdir(parents=True, exist_ok=True)
    script.write_text(text)
    if dry_run:
        return Submission(script, text, tasks, None)
    proc = subprocess.run(
        [sbatch, "--parsable", str(script)], capture_output=True, text=True, timeout=120
    )
    if proc.returncode != 0:
        msg = " ".join(proc.stderr.split()) or f"exit code {proc.returncode}"
        raise RunnerError(f"sbatch refused the job: {msg}", file=str(script))
    job_id = proc.stdout.strip().split(";")[0]
    with open(script.parent / JOBS, "a") as fh:
        fh.write(f"{job_id} {tasks} {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n")
    return Submission(script, text, tasks, job_id)


def _check_same_sweep(folder: Path, spec: Spec) -> None:
    if (folder / store.META).is_file():
        found = store.read_meta(folder).get("spec_hash")
        if found != spec.hash:
            raise RunnerError(f"holds a different sweep (spec hash {found})", file=str(folder))


def max_array_size() -> int | None:
    """MaxArraySize from ``scontrol show config``; None when it cannot be read."""
    try:
        proc = subprocess.run(
            ["scontrol", "show", "config"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"^MaxArraySize\s*=\s*(\d+)", proc.stdout, re.MULTILINE)
    return int(found.group(1)) if found else None


def array_tasks(folder: str | Path) -> int | None:
    """N of the job array last written for this results folder, if any."""
    try:
        text = (Path(folder) / SLURM_DIR / SCRIPT).read_text()
    except OSError:
        return None
    found = ARRAY_RE.search(text)
    return int(found.group(1)) + 1 if found else None


def job_ids(folder: str | Path) -> list[str]:
    """Job ids submitted for this results folder, oldest first."""
    try:
        lines = (Path(folder) / SLURM_DIR / JOBS).read_text().splitlines()
    except OSError:
        return []
    return [line.split()[0] for line in lines if line.strip()]
