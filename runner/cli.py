"""The command line: a thin layer over the library. Exit codes: 0 ok, 1 failure, 2 bad input."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from runner.cli_args import _parser, _requeue_args
from runner.errors import RunnerError
from runner.run import interrupts

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def command(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    COMMANDS[func.__name__.removeprefix("cmd_")] = func
    return func


@command
def cmd_plan(args: argparse.Namespace) -> int:
    from runner.run.planning import plan, render

    if args.jobs is not None and args.jobs < 1:
        raise RunnerError(f"must be an integer >= 1, got {args.jobs}", key="--jobs")
    found = plan(
        args.spec, out=args.out, overrides=args.overrides, jobs=args.jobs, backend=args.backend,
        max_memory=args.max_memory, tasks=getattr(args, "tasks", None),
        fresh=getattr(args, "fresh", False),
    )  # fmt: skip
    print(render(found, getattr(args, "json", False)))
    return 0


@command
def cmd_sweep(args: argparse.Namespace) -> int:
    from contextlib import nullcontext

    if args.dry_run:
        return cmd_plan(args)

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
                max_memory=args.max_memory,
            )
        except Interrupted as exc:
            if policy is None or stop is None or not stop.requested:
                raise
            return _after_stop(stop, exc.done, exc.total, policy[1])
    if report.chunks_run == 0:
        print(
            f"{report.out}: complete, nothing to train ({report.runs_before} runs already there; "
            f"{report.chunks_done_before} of {report.chunks} chunks already done)"
        )
        return 0
    from runner.run.units import rate

    print(
        f"done: {report.runs_trained} runs trained now ({report.diverged} diverged), "
        f"{report.runs_before} already there, in {report.seconds:.1f} s, "
        + (f"{report.rows:,} loss rows, {rate(report.rows, report.seconds, 'rows')}"
           if report.rows else f"{rate(report.runs_trained, report.seconds, 'runs')}")
        + f" -> {report.out}"
    )  # fmt: skip
    return 0


def _after_stop(stop, done: int, total: int, max_requeues: int) -> int:
    """A --requeue sweep stopped by a signal: requeue the task or say why not."""
    from runner.run import requeue

    with requeue.ignoring(signal.SIGTERM):  # a requeue ends this run with SIGTERM
        code = requeue.after_stop(stop, done, total, max_requeues)
        # requeued: this run is over, before SLURM's SIGTERM comes; abandoned: worker
        # threads still hold the given-up chunks, so no waiting for them
        if code == 0 or stop.abandoned:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return code


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
    if args.workload == "trainability":
        from runner.bench import trainability

        found = trainability.run(grid=16 if args.quick else 64, log=log)
        print(json.dumps(found, indent=2) if args.json else trainability.table(found))
        return 0
    if args.against:
        from runner.bench import against

        try:
            result = against.run_against(args.against, args.shapes, quick=args.quick, log=log)
        except RuntimeError as exc:
            raise RunnerError(str(exc), key="--against") from None
    else:
        result = (bench.run_shapes if args.shapes else bench.run)(quick=args.quick, log=log)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
        return 0
    if args.markdown:
        print(bench.markdown(result, shapes=args.shapes))
    else:
        print(bench.shapes_table(result) if args.shapes else bench.table(result))
    if args.against:
        print("\n" + against.table(result["against"]))
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

    axes = None
    if args.map is not None:
        axes = tuple(a.strip() for a in args.map.split(","))
        if len(axes) != 2 or not all(axes):
            raise RunnerError(f"needs two axes X,Y, got {args.map!r}", key="--map")
    for path in plot(args.dir, out=args.out, map_axes=axes):
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

    policy = _requeue_args(args)
    if args.gpus_per_task is not None and args.gpus_per_task < 1:
        raise RunnerError(f"must be >= 1, got {args.gpus_per_task}", key="--gpus-per-task")
    opts = SlurmOptions(
        partition=args.partition,
        time=args.time,
        cpus_per_task=args.cpus_per_task,
        mem=args.mem,
        account=args.account,
        gpus_per_task=args.gpus_per_task,
        extra=args.extra,
    )
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
        cache=args.cache,
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


@contextmanager
def _sigterm_stops() -> Iterator[None]:
    """SIGTERM (SLURM's and kill's) stops as Ctrl-C does: both raise KeyboardInterrupt and
    are remembered (runner.run.interrupts) until the block ends (main thread only); then
    the handlers before it are back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    interrupts.clear()
    # an ignored SIGINT (a background job of a script) stays ignored, as Python leaves it
    sigs = [s for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) != signal.SIG_IGN]
    old = {s: signal.signal(s, interrupts.handler) for s in sigs}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        interrupts.clear()


def main(argv: Sequence[str] | None = None) -> int:
    with _sigterm_stops():
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
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
        from runner.run.worker import ChunkFailed

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
