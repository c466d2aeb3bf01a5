"""SLURM job arrays: task k of N runs `runner sweep SPEC --shard auto` (chunks c mod N == k).

``submit`` writes ``<out>/<name>/slurm/sweep.sbatch``, hands it to ``sbatch --parsable``
and returns at once. All tasks write into the one results folder; re-submitting runs
only the chunks not yet done. With ``requeue`` a task stopped by its time limit or a
preemption requeues itself (see ``runner.run.requeue``); with ``then`` a second job
(``<command>.sbatch``) runs ``runner <command>`` and ``runner status`` on the results
folder once every task of the array has ended.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from runner.errors import RunnerError
from runner.plan.spec import MAX_RUNS, Spec, load_spec
from runner.results.growth import open_sweep
from runner.results.jobs import ARRAY_RE, JOBS, SCRIPT, SLURM_DIR, array_tasks, job_ids  # noqa: F401
from runner.run.requeue import DEFAULT_GRACE, DEFAULT_MAX_REQUEUES
from runner.run.slurm_env import config, config_number

THEN_COMMANDS = ("report", "plot", "summary")
CACHE_DIR = "numba-cache"  # in slurm/: the tasks' shared Numba cache, unless --cache
MAX_SIGNAL_TIME = 65535  # sbatch --signal=...@S takes 0..65535 seconds


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
class Requeue:
    """--requeue: stop at a chunk boundary on USR1 (time limit) or preemption, requeue."""

    grace: int = DEFAULT_GRACE  # USR1 this many seconds before the time limit
    max_requeues: int = DEFAULT_MAX_REQUEUES  # then exit 130 with the resume hint


@dataclass
class Submission:
    script: Path  # the sbatch script written
    text: str  # its contents
    tasks: int
    job_id: str | None  # None for a dry run
    then_script: Path | None = None  # the follow-up job's script (--then), if any
    then_text: str | None = None
    then_job_id: str | None = None


def sbatch_script(
    spec: Spec,
    spec_path: Path,
    root: Path,
    tasks: int,
    overrides: list[str],
    options: SlurmOptions,
    python: str,
    yes: bool = False,
    requeue: Requeue | None = None,
    cache: Path | None = None,
) -> str:
    """The job array script; every path in it is absolute. ``cache``: the tasks' Numba
    cache (--cache); None: $NUMBA_CACHE_DIR where the task runs, else ``slurm/numba-cache``."""
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
    if requeue is not None:
        lines += [
            "#SBATCH --requeue",
            f"#SBATCH --signal=B:USR1@{requeue.grace}",
            "#SBATCH --open-mode=append",
            f"# USR1 {requeue.grace} s before the time limit, or a preemption, stops a task at "
            "a chunk boundary;",
            f"# it requeues itself up to {requeue.max_requeues} times (one log file per task).",
        ]
        argv += ["--requeue", "--grace", str(requeue.grace)]
        argv += ["--max-requeues", str(requeue.max_requeues)]
    for o in overrides:
        argv += ["--set", o]
    lines += ["set -eu", *cache_lines(root / spec.name, cache)]
    # exec: runner is the batch shell, so that SLURM's USR1 (--signal=B:...) reaches it
    lines += ["exec " + shlex.join(argv), ""]
    return "\n".join(lines)


def cache_lines(folder: Path, cache: Path | None) -> list[str]:
    """The script's NUMBA_CACHE_DIR, exported before Python starts (Numba reads it at
    import): ``cache`` if given, else the job's own $NUMBA_CACHE_DIR, else the sweep's."""
    note = "# one Numba cache for all tasks: the first on each CPU model compiles (docs/hpc.md)"
    if cache is not None:
        return [note, f"export NUMBA_CACHE_DIR={shlex.quote(str(cache))}"]
    default = re.sub(r'([\\"$`}])', r"\\\1", str(folder / SLURM_DIR / CACHE_DIR))
    return [note, f'export NUMBA_CACHE_DIR="${{NUMBA_CACHE_DIR:-{default}}}"']


def check_cache(cache: str | Path) -> Path:
    """--cache as an absolute path: a directory, or one that can be made; RunnerError."""
    path = Path(cache).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise RunnerError(f"{path} is not a directory", key="--cache")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise RunnerError(f"{existing} is not a directory", key="--cache")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RunnerError(f"{existing} is not writable", key="--cache")
    return path


def then_script(name: str, folder: Path, command: str, options: SlurmOptions, python: str) -> str:
    """The follow-up job: ``runner COMMAND DIR`` then ``runner status DIR``, once the
    array has ended (the dependency is given to sbatch on its command line)."""
    logs = folder / SLURM_DIR / "logs"
    lines = [
        "#!/bin/bash",
        f"# Written by `runner slurm --then {command}`: submitted with "
        "--dependency=afterany:<array job>,",
        "# it runs once every task of the job array has ended (requeued tasks included).",
        f"#SBATCH --job-name=runner-{name}-{command}",
        f"#SBATCH --output={logs}/{command}-%j.out",
    ]
    named = {"partition": options.partition, "account": options.account}
    lines += [f"#SBATCH --{k}={v}" for k, v in named.items() if v is not None]
    lines += [f"#SBATCH {_sbatch_arg(a)}" for a in options.extra]
    run = [python, "-m", "runner"]
    lines += [
        "set -u",
        "rc=0",
        shlex.join([*run, command, str(folder)]) + " || rc=$?",
        shlex.join([*run, "status", str(folder)]) + " || rc=$?",
        "exit $rc",
        "",
    ]
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
    requeue: Requeue | None = None,
    then: str | None = None,
    cache: str | Path | None = None,
) -> Submission:
    """Validate the spec, write the job array script and submit it (unless ``dry_run``).

    ``then``: also submit a follow-up job running ``runner THEN DIR`` after the array.
    ``cache``: the tasks' shared Numba cache folder (default: see ``cache_lines``).
    """
    overrides = list(overrides or [])
    options = options or SlurmOptions()
    _check_requeue(requeue, options.time)
    cache = check_cache(cache) if cache is not None else None
    if then is not None and then not in THEN_COMMANDS:
        raise RunnerError(f"must be one of {', '.join(THEN_COMMANDS)}, got {then!r}", key="--then")
    spec_path = Path(spec_path).resolve()
    spec = load_spec(spec_path, overrides)
    if tasks < 1:
        raise RunnerError(f"must be >= 1, got {tasks}", key="--tasks")
    if spec.n_runs > MAX_RUNS and not yes:
        raise RunnerError(f"the grid has {spec.n_runs:,} runs; pass --yes", key="grid")
    root = Path(out).resolve()
    folder = root / spec.name
    chunks = open_sweep(folder, spec, write=False).n_chunks  # a grown sweep: every layer's
    if tasks > chunks:
        raise RunnerError(
            f"{tasks} tasks for {chunks} chunks would leave tasks idle; "
            f"use at most {chunks} (or a smaller sweep.chunk_runs)",
            key="--tasks",
        )
    text = sbatch_script(
        spec, spec_path, root, tasks, overrides, options, sys.executable, yes, requeue, cache
    )
    follow = then_script(spec.name, folder, then, options, sys.executable) if then else None
    if not dry_run:
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
        # sweep.json (or the growth's file) now: every task plans the same chunks
        open_sweep(folder, spec)
        if cache is not None:
            cache.mkdir(parents=True, exist_ok=True)
    script = folder / SLURM_DIR / SCRIPT
    (script.parent / "logs").mkdir(parents=True, exist_ok=True)
    script.write_text(text)
    sub = Submission(script, text, tasks, None)
    if follow is not None:
        sub.then_script, sub.then_text = script.with_name(f"{then}.sbatch"), follow
        sub.then_script.write_text(follow)
    if dry_run:
        return sub
    sub.job_id = _sbatch(sbatch, script)
    with open(script.parent / JOBS, "a") as fh:
        fh.write(f"{sub.job_id} {tasks} {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n")
    if sub.then_script is not None:
        after = f"--dependency=afterany:{sub.job_id}"
        sub.then_job_id = _sbatch(sbatch, sub.then_script, after, submitted=sub.job_id)
    return sub


def _sbatch(sbatch: str, script: Path, *args: str, submitted: str | None = None) -> str:
    """Submit; the job id. ``submitted``: the array already running, for the message."""
    proc = subprocess.run(
        [sbatch, "--parsable", *args, str(script)], capture_output=True, text=True, timeout=120
    )
    if proc.returncode != 0:
        msg = " ".join(proc.stderr.split()) or f"exit code {proc.returncode}"
        also = f" (job array {submitted} is submitted)" if submitted else ""
        raise RunnerError(f"sbatch refused the job{also}: {msg}", file=str(script))
    return proc.stdout.strip().split(";")[0]


def _check_requeue(requeue: Requeue | None, limit: str | None) -> None:
    if requeue is None:
        return
    if not 1 <= requeue.grace <= MAX_SIGNAL_TIME:
        raise RunnerError(
            f"must be 1..{MAX_SIGNAL_TIME} seconds, got {requeue.grace}", key="--grace"
        )
    seconds = time_seconds(limit) if limit else None
    if seconds is not None and requeue.grace >= seconds:
        raise RunnerError(
            f"{requeue.grace} s is not shorter than --time {limit}: every task would be "
            "signalled as it starts",
            key="--grace",
        )
    if requeue.max_requeues < 0:
        raise RunnerError(f"must be >= 0, got {requeue.max_requeues}", key="--max-requeues")


def max_array_size() -> int | None:
    """MaxArraySize from ``scontrol show config``; None when it cannot be read."""
    return config_number(config().get("MaxArraySize"))


def time_seconds(text: str) -> int | None:
    """sbatch --time (M, M:S, H:M:S, D-H, D-H:M, D-H:M:S) in seconds; None if not one."""
    days, _, rest = text.strip().rpartition("-")
    parts = rest.split(":")
    if not all(p.isdigit() for p in parts) or (days and not days.isdigit()) or len(parts) > 3:
        return None
    nums = [int(p) for p in parts]
    if days:  # D-H, D-H:M, D-H:M:S
        h, m, sec = [*nums, 0, 0][:3]
        return ((int(days) * 24 + h) * 60 + m) * 60 + sec
    if len(nums) == 1:
        return nums[0] * 60
    if len(nums) == 2:
        return nums[0] * 60 + nums[1]
    return (nums[0] * 60 + nums[1]) * 60 + nums[2]
