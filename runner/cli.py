"""The command line: a thin layer over the library. Exit codes: 0 ok, 1 failure, 2 bad input."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from runner.errors import RunnerError

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, no usage dump
        raise RunnerError(" ".join(message.split()), key=self.prog)


def command(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    COMMANDS[func.__name__.removeprefix("cmd_")] = func
    return func


def _parser() -> Parser:
    p = Parser(
        prog="runner", description="Train many tiny neural networks fast; keep every result."
    )
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)

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
    s.add_argument(
        "--backend",
        choices=("loky", "threading", "dask", "cuda"),
        default=None,
        help="joblib backend (default: threading), or cuda: the visible GPUs (runner[cuda])",
    )
    s.add_argument("--scheduler", default=None, help="Dask scheduler address (backend dask)")
    s.add_argument("--shard", default=None, help="I/N: run chunks c with c mod N == I; or auto")
    s.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a spec key, e.g. grid.alpha=0.01,0.1 (repeatable)",
    )
    s.add_argument("--fresh", action="store_true", help="delete earlier results of this name")
    s.add_argument("--quiet", action="store_true", help="no progress output")
    s.add_argument("--yes", action="store_true", help="allow a grid of over a million runs")
    s.add_argument(
        "--requeue",
        action="store_true",
        help="in a SLURM job (written by `runner slurm --requeue`): on USR1 or a preemption "
        "stop at a chunk boundary and requeue this task",
    )
    _requeue_options(s)

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
    b.add_argument(
        "--compile", action="store_true",
        help="time to the first result: cold and warm Numba cache in fresh processes",
    )  # fmt: skip
    b.add_argument("--json", action="store_true", help="print JSON instead of tables")
    b.add_argument(
        "--markdown", action="store_true", help="the README's block: machine, date, tables"
    )
    b.add_argument("--quick", action="store_true", help="smaller workloads (a smoke test)")
    _analysis_parsers(sub)
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
    sl.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
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
        "--then",
        choices=("report", "plot", "summary"),
        default=None,
        help="a follow-up job running this command (and status) once the array has ended",
    )
    return p


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
        "final loss and a map of the share diverged.",
        epilog="example: runner plot results/seed-sweep --out figures",
    )
    pl.add_argument("dir", help="results folder, e.g. results/seed-sweep")
    pl.add_argument("--out", default=None, help="folder for the PNG files (default: DIR/plots)")
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


@command
def cmd_sweep(args: argparse.Namespace) -> int:
    from contextlib import nullcontext

    from runner.run import requeue

    policy = _requeue_args(args)
    stop = requeue.Graceful(policy[0]) if policy else None
    # the handlers first: a USR1 during start-up must not kill the task
    with requeue.handling(stop) if stop else nullcontext():
        if stop is not None:
            stop.term_grace = requeue.kill_wait()
        from runner.run.driver import Interrupted, sweep

        try:
            report = sweep(
                args.spec,
                out=args.out,
                jobs=args.jobs,
                backend=args.backend,
                scheduler=args.scheduler,
                shard=args.shard,
                overrides=args.overrides,
                fresh=args.fresh,
                quiet=args.quiet,
                yes=args.yes,
                stop=stop,
            )
        except Interrupted as exc:
            if policy is None or stop is None or not stop.requested:
                raise
            code = requeue.after_stop(stop, exc.done, exc.total, policy[1])
            if stop.abandoned:  # worker threads still hold the given-up chunks: no waiting
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
            return code
    if report.chunks_run == 0:
        print(
            f"{report.out}: complete, nothing to train ({report.runs_before} runs already there; "
            f"{report.chunks_done_before} of {report.chunks} chunks already done)"
        )
        return 0
    rate = report.rows / report.seconds if report.seconds > 0 else float("nan")
    print(
        f"done: {report.runs_trained} runs trained now ({report.diverged} diverged), "
        f"{report.runs_before} already there, in {report.seconds:.1f} s, "
        f"{report.rows:,} loss rows, {rate / 1e6:.1f}M rows/s -> {report.out}"
    )
    return 0


@command
def cmd_status(args: argparse.Namespace) -> int:
    from runner.results.status import status, watch

    if args.interval is not None and not args.watch:
        raise RunnerError("needs --watch", key="--interval")
    if args.watch:
        interval = 2.0 if args.interval is None else args.interval
        if not interval > 0:
            raise RunnerError(f"must be > 0 seconds, got {interval}", key="--interval")
        try:
            watch(args.dir, interval=interval, shards=args.shards)
        except KeyboardInterrupt:
            return 130  # Ctrl-C ends the view, quietly
        return 0
    st = status(args.dir)
    print("\n".join(st.lines(args.shards)))
    return 0 if st.complete else 1


@command
def cmd_bench(args: argparse.Namespace) -> int:
    import json

    from runner.bench import harness as bench

    def log(message: str) -> None:
        print(f"bench: {message}", file=sys.stderr)

    if args.compile:
        from runner.bench import compile as compile_bench

        figures = compile_bench.run(log=log, sweep=not args.quick)
        print(json.dumps(figures, indent=2) if args.json else compile_bench.table(figures))
        return 0
    result = (bench.run_shapes if args.shapes else bench.run)(quick=args.quick, log=log)
    if args.json:
        print(json.dumps(result, indent=2))
    elif args.markdown:
        print(bench.markdown(result, shapes=args.shapes))
    else:
        print(bench.shapes_table(result) if args.shapes else bench.table(result))
    return 0


@command
def cmd_summary(args: argparse.Namespace) -> int:
    from runner.results.analysis import load
    from runner.results.report import format_table

    table = load(args.dir).summary(by=args.by, sort=args.sort)
    print(format_table(table, args.format).rstrip("\n"))
    return 0


@command
def cmd_plot(args: argparse.Namespace) -> int:
    from runner.results.plots import plot

    for path in plot(args.dir, out=args.out):
        print(path)
    return 0


@command
def cmd_report(args: argparse.Namespace) -> int:
    from runner.results.report import write_report

    print(write_report(args.dir, out=args.out))
    return 0


@command
def cmd_slurm(args: argparse.Namespace) -> int:
    from runner.run.slurm import Requeue, SlurmOptions, submit

    opts = SlurmOptions(args.partition, args.time, args.cpus_per_task, args.mem, args.account)
    opts.extra = args.extra
    policy = _requeue_args(args)
    if args.gpus_per_task is not None:
        if args.gpus_per_task < 1:
            raise RunnerError(f"must be >= 1, got {args.gpus_per_task}", key="--gpus-per-task")
        opts.gpus_per_task = args.gpus_per_task
    sub = submit(
        args.spec,
        args.tasks,
        out=args.out,
        overrides=args.overrides,
        options=opts,
        dry_run=args.dry_run,
        yes=args.yes,
        requeue=Requeue(*policy) if policy else None,
        then=args.then,
    )
    if sub.job_id is None:
        print(sub.text, end="")
        written = [sub.script]
        if sub.then_script is not None:
            print(f"# ----- {sub.then_script.name}: sbatch --dependency=afterany:<array job>")
            print(sub.then_text, end="")
            written.append(sub.then_script)
        where = " and ".join(map(str, written))
        print(f"# dry run: written to {where}, not submitted", file=sys.stderr)
        return 0
    print(f"submitted job {sub.job_id} ({sub.tasks} tasks): {sub.script}")
    if sub.then_job_id is not None:
        print(
            f"submitted job {sub.then_job_id} ({args.then} once job {sub.job_id} has ended): "
            f"{sub.then_script}"
        )
    print(f"follow it: runner status {sub.script.parent.parent} --watch")
    return 0


def _sigterm(signum, frame):  # SLURM and kill send SIGTERM: stop as on Ctrl-C
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _sigterm)
    try:
        args = _parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except RunnerError as exc:
        print(f"runner: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"runner: {exc or 'interrupted'}", file=sys.stderr)
        return 130
    except Exception as exc:  # a failure while running: one line, exit 1
        from runner.run.driver import ChunkFailed

        if isinstance(exc, ChunkFailed):
            print(f"runner: failed: {exc}", file=sys.stderr)
            return 1
        if os.environ.get("RUNNER_DEBUG"):
            raise
        print(
            f"runner: failed: {type(exc).__name__}: {exc} (RUNNER_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
