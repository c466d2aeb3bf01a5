"""The command line's arguments: one parser per command, checks of their combinations."""

from __future__ import annotations

import argparse

from runner.errors import RunnerError


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, no usage dump
        raise RunnerError(" ".join(message.split()), key=self.prog)


def _parser() -> Parser:
    p = Parser(
        prog="runner", description="Train many tiny neural networks fast; keep every result."
    )
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    _sweep_parser(sub)
    _plan_parser(sub)
    _status_parser(sub)
    _bench_parser(sub)
    _analysis_parsers(sub)
    _slurm_parser(sub)
    return p


def _sweep_parser(sub) -> None:
    from runner.run.backends import BACKENDS, DEFAULT_BACKEND

    s = sub.add_parser(
        "sweep",
        help="run or resume a sweep",
        description="Run (or resume) every run of a spec's grid; results go to OUT/<name>/.",
        epilog="example: runner sweep experiments/seed-sweep.toml --jobs 2 "
        "--set grid.alpha=0.01,0.1 --set train.epochs=500",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("spec", help="experiment spec (TOML)")
    s.add_argument("--out", default="results", help="results root (default: results)")
    s.add_argument("--jobs", type=int, default=None, help="parallel workers (default: all cores)")
    kinds = "; ".join(f"{name}: {cls.help}" for name, cls in BACKENDS.items())
    s.add_argument(
        "--backend",
        choices=list(BACKENDS),
        default=None,
        help=f"how chunks run (default: {DEFAULT_BACKEND}): {kinds}",
    )
    s.add_argument("--scheduler", default=None, help="Dask scheduler address (backend dask)")
    s.add_argument("--shard", default=None, help="I/N: run chunks c with c mod N == I; or auto")
    _set_option(s, help="override a spec key, e.g. grid.alpha=0.01,0.1 (repeatable)")
    s.add_argument("--fresh", action="store_true", help="delete earlier results of this name")
    s.add_argument("--quiet", action="store_true", help="no progress output")
    s.add_argument("--yes", action="store_true", help="allow a grid of over a million runs")
    _budget_options(s)
    s.add_argument("--dry-run", action="store_true", help="print the plan (runner plan) only")
    s.add_argument(
        "--requeue",
        action="store_true",
        help="in a SLURM job (written by `runner slurm --requeue`): on USR1 or a preemption "
        "stop at a chunk boundary and requeue this task",
    )
    _requeue_options(s)


def _set_option(p: argparse.ArgumentParser, help: str | None = None) -> None:
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help
    )


def _plan_parser(sub) -> None:
    from runner.run.backends import BACKENDS

    pn = sub.add_parser(
        "plan",
        help="what a sweep will cost: runs, memory, disk, time (nothing run or written)",
        description="Runs, chunks, epoch-runs, loss rows, peak memory per worker and in all, "
        "disk for losses/ and runs/, and the estimated time of `runner sweep` with these "
        "options; with --tasks, one SLURM task's and a suggested --mem and --time.",
        epilog="example: runner plan experiments/seed-sweep.toml --jobs 2 --tasks 8",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pn.add_argument("spec", help="experiment spec (TOML)")
    pn.add_argument("--out", default="results", help="results root (default: results)")
    _set_option(pn, help="override a spec key (repeatable)")
    pn.add_argument("--jobs", type=int, default=None, help="parallel workers (default: all cores)")
    pn.add_argument("--backend", choices=list(BACKENDS), default=None)
    pn.add_argument("--tasks", type=int, default=None, help="SLURM array tasks: per-task figures")
    pn.add_argument("--json", action="store_true", help="print JSON")
    _budget_options(pn)


def _status_parser(sub) -> None:
    st = sub.add_parser(
        "status",
        help="done and pending chunks of a results folder",
        description="Done / pending chunks and runs; exit 0 only when the sweep is complete.",
        epilog="example: runner status results/seed-sweep",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    st.add_argument("dir", help="results folder, e.g. results/seed-sweep")
    st.add_argument("--shards", type=int, default=None, help="also show progress per shard of N")
    st.add_argument(
        "--watch", action="store_true", help="live view until complete (Ctrl-C ends it)"
    )
    st.add_argument(
        "--interval", type=float, default=None, help="seconds between updates (default: 2)"
    )


def _bench_parser(sub) -> None:
    b = sub.add_parser(
        "bench",
        help="side-by-side benchmark against the peers",
        description="Times runner's kernel in each precision mode against the notebook's "
        "NumPy loop, a plain @njit port and JAX in the same dtype (if installed), with the "
        "core's floor per mode; then `runner sweep` against a JAX + pyarrow script as whole "
        "processes, and the peak memory of sweeps. Prints medians, ratios and the figures "
        "of the speed targets with whether each holds.",
        epilog="example: runner bench --shapes --markdown   (make bench installs JAX first)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    b.add_argument("--shapes", action="store_true", help="the kernel table over problem shapes")
    b.add_argument("--against", metavar="REV", help="commit REV's kernel (a git worktree) "
                   "timed beside this one's at every (shape, mode) of the run, and REV's "
                   "sweep end to end: every figure, old against new")  # fmt: skip
    b.add_argument(
        "--compile", action="store_true",
        help="time to the first result: cold and warm Numba cache in fresh processes",
    )  # fmt: skip
    b.add_argument(
        "--workload", choices=["trainability"],
        help="trainability: a learning-rate map of experiments/trainability.toml, runner "
        "against JAX as whole processes (agreement and speed ratio)",
    )  # fmt: skip
    b.add_argument("--json", action="store_true", help="print JSON instead of tables")
    b.add_argument(
        "--markdown", action="store_true", help="the README's block: machine, date, tables"
    )
    b.add_argument("--quick", action="store_true", help="smaller workloads (a smoke test)")


def _slurm_parser(sub) -> None:
    sl = sub.add_parser(
        "slurm",
        help="submit a sweep as a SLURM job array (never waits)",
        description="Write OUT/<name>/slurm/sweep.sbatch, a job array whose task k runs "
        "`runner sweep SPEC --shard auto`, and submit it with sbatch. Submit again after "
        "failures: finished chunks are skipped.",
        epilog="example: runner slurm experiments/seed-sweep.toml --tasks 8 --time 01:00:00 "
        "--cpus-per-task 4 --sbatch-arg=--qos=short",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sl.add_argument("spec", help="experiment spec (TOML)")
    sl.add_argument("--tasks", type=int, required=True, help="array tasks (shards) N")
    sl.add_argument("--out", default="results", help="results root, shared by all nodes")
    _set_option(sl)
    for opt in ("partition", "time", "mem", "account"):
        sl.add_argument(f"--{opt}", default=None, help=f"sbatch --{opt}")
    sl.add_argument("--cpus-per-task", type=int, default=None, help="sbatch --cpus-per-task")
    sl.add_argument(
        "--gpus-per-task",
        type=int,
        default=None,
        help="sbatch --gpus-per-task; the tasks then sweep with --backend cuda",
    )
    sl.add_argument(
        "--sbatch-arg",
        dest="extra",
        action="append",
        default=[],
        metavar="ARG",
        help="another sbatch option, e.g. --sbatch-arg=--qos=high (repeatable)",
    )
    sl.add_argument("--yes", action="store_true", help="allow a grid of over a million runs")
    sl.add_argument("--dry-run", action="store_true", help="write and print, do not submit")
    sl.add_argument(
        "--requeue",
        action="store_true",
        help="a task stopped by its time limit (USR1 S s before) or a preemption requeues itself",
    )
    _requeue_options(sl)
    sl.add_argument(
        "--cache",
        default=None,
        metavar="DIR",
        help="the tasks' shared Numba cache (default: $NUMBA_CACHE_DIR in the job, else "
        "OUT/<name>/slurm/numba-cache); see docs/hpc.md",
    )
    sl.add_argument(
        "--then",
        choices=("report", "plot", "summary"),
        default=None,
        help="a follow-up job running this command (and status) once the array has ended",
    )


def _budget_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-memory",
        default=None,
        metavar="SIZE",
        help="memory budget, e.g. 400M or 18G: narrows the kernel's tiles to fit (default: "
        "80%% of MemAvailable, the cgroup limit or SLURM's --mem)",
    )


def _requeue_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--grace",
        type=int,
        default=None,
        metavar="S",
        help="with --requeue: seconds between USR1 and the time limit (default: 120)",
    )
    p.add_argument(
        "--max-requeues",
        type=int,
        default=None,
        metavar="K",
        help="with --requeue: requeue at most K times, then exit 130 (default: 3)",
    )


def _requeue_args(args: argparse.Namespace) -> tuple[int, int] | None:
    """(grace, max_requeues) with --requeue; None without (and then neither may be given)."""
    from runner.run.requeue import DEFAULT_GRACE, DEFAULT_MAX_REQUEUES

    if not args.requeue:
        for key in ("grace", "max_requeues"):
            if getattr(args, key) is not None:
                raise RunnerError("needs --requeue", key=f"--{key.replace('_', '-')}")
        return None
    grace = DEFAULT_GRACE if args.grace is None else args.grace
    most = DEFAULT_MAX_REQUEUES if args.max_requeues is None else args.max_requeues
    if grace < 1:
        raise RunnerError(f"must be >= 1 second, got {grace}", key="--grace")
    if most < 0:
        raise RunnerError(f"must be >= 0, got {most}", key="--max-requeues")
    return grace, most


def _analysis_parsers(sub) -> None:
    """summary, plot and report: read a results folder (runner.results.analysis)."""
    su = sub.add_parser(
        "summary",
        help="per grid point, aggregated over seeds",
        description="Runs, share diverged, final loss median and quartiles, best loss and "
        "median convergence epoch per grid point (the grid axes other than seed).",
        epilog="example: runner summary results/seed-sweep --by alpha --sort final_loss_median",
    )
    su.add_argument("dir", help="results folder, e.g. results/seed-sweep")
    su.add_argument("--by", default=None, help="comma-separated axes (default: all but seed)")
    su.add_argument("--sort", default=None, help="order by this column, ascending")
    su.add_argument(
        "--format", choices=("table", "csv", "markdown"), default="table", help="output format"
    )
    pl = sub.add_parser(
        "plot",
        help="PNG figures of a results folder",
        description="Loss curves (median over seeds, quartile band), a heatmap of median "
        "final loss, a map of the share diverged and, when two numeric axes vary, a "
        "trainability map (docs/trainability.md).",
        epilog="example: runner plot results/seed-sweep --map alpha,hidden",
    )
    pl.add_argument("dir", help="results folder, e.g. results/seed-sweep")
    pl.add_argument("--out", default=None, help="folder for the PNG files (default: DIR/plots)")
    pl.add_argument(
        "--map",
        default=None,
        metavar="X,Y",
        help="only the trainability map of two numeric axes, e.g. alpha,hidden (map.png)",
    )
    rp = sub.add_parser(
        "report",
        help="one self-contained HTML report",
        description="Figures, summary, best runs, spec and versions in one HTML file "
        "that opens offline.",
        epilog="example: runner report results/seed-sweep --out seed-sweep.html",
    )
    rp.add_argument("dir", help="results folder, e.g. results/seed-sweep")
    rp.add_argument("--out", default=None, help="HTML file (default: DIR/report.html)")


def _version() -> str:
    import runner

    return f"runner {runner.__version__}"
