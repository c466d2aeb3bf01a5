"""What a results folder holds: done and pending chunks, runs, divergence; a live view."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np
import pyarrow.parquet as pq

from runner.errors import RunnerError
from runner.results import growth, meta, store
from runner.results import jobs as slurm


@dataclass
class Status:
    folder: Path
    name: str
    chunks: int
    runs: int
    done: list[int] = field(default_factory=list)
    runs_done: int = 0
    diverged: int = 0
    bad: list[str] = field(default_factory=list)  # unreadable files
    shards: int | None = None  # tasks of the SLURM job array written for this folder, if any
    jobs: list[str] = field(default_factory=list)  # SLURM job ids submitted for it
    layers: list[dict] = field(default_factory=list)  # one per invocation that planned runs
    needed: list[int] = field(default_factory=list)  # chunks holding runs of the latest spec
    kept_runs: int = 0  # runs on disk of values no longer in the spec

    @property
    def pending(self) -> int:
        return self.chunks - len(self.done)

    @property
    def complete(self) -> bool:
        return self.pending == 0 and not self.bad

    def lines(self, shards: int | None = None) -> list[str]:
        pct = 100.0 * self.runs_done / self.runs if self.runs else 100.0
        out = [
            f"{self.folder}: {self.name}",
            f"chunks: {len(self.done)} done, {self.pending} pending, {self.chunks} in all",
            f"runs:   {self.runs_done} done ({pct:.1f}%), {self.diverged} diverged, "
            f"{self.runs} in all",
        ]
        if len(self.layers) > 1:
            out.append(
                f"grown:  {len(self.layers) - 1} time(s); counts are of the latest spec"
                + (f"; {self.kept_runs} more runs of values it no longer has are kept"
                   if self.kept_runs else "")
            )  # fmt: skip
        shards = shards or self.shards
        if self.jobs:
            out.append(f"slurm:  jobs {', '.join(self.jobs)} (latest: {self.shards} tasks)")
        for i, (k, n) in enumerate(self.per_shard(shards)):
            out.append(f"shard {i}/{shards}: {k}/{n} chunks done")
        out.extend(f"damaged: {b} (the same sweep command recomputes it)" for b in self.bad)
        out.append(
            "complete" if self.complete else "incomplete: run the same sweep command to resume"
        )
        return out

    def per_shard(self, shards: int | None = None) -> list[tuple[int, int]]:
        """(chunks done, chunks) of each shard of N (default: the SLURM array's N)."""
        shards = shards or self.shards
        if not shards:
            return []
        done = set(self.done)
        needed = self.needed or range(self.chunks)
        mine = [[c for c in needed if c % shards == i] for i in range(shards)]
        return [(sum(c in done for c in m), len(m)) for m in mine]


def status(folder: str | Path) -> Status:
    """Read sweep.json and the runs files; damaged files are listed, not counted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RunnerError("no such results folder", file=str(folder))
    found = meta.read_meta(folder)
    latest = growth.plan_of(folder, meta.layer_files(folder)).latest_runs()
    st = Status(folder, found["spec"]["name"], 0, int(latest.sum()))
    st.needed = np.flatnonzero(latest > 0).tolist()
    st.chunks = len(st.needed)
    st.shards, st.jobs = slurm.array_tasks(folder), slurm.job_ids(folder)
    st.layers = found["layers"]
    needed = set(st.needed)
    for c in sorted(store.done_chunks(folder)):
        if c >= len(latest):
            continue
        if c not in needed:  # only values removed since: kept, not counted
            st.kept_runs += _rows(folder, c)
            continue
        record = found["spec"]["record"]
        problem = store.check_chunk(folder, c, every=int(record["every"]),
                                    weights="weights" in record)  # fmt: skip
        if problem is not None:
            st.bad.append(problem)
            continue
        table = pq.read_table(folder / store.RUNS / store.chunk_name(c), columns=["diverged"])
        st.done.append(c)
        st.runs_done += int(latest[c])
        st.kept_runs += table.num_rows - int(latest[c])
        st.diverged += int(table.column("diverged").to_numpy().sum())
    return st


def _rows(folder: Path, c: int) -> int:
    try:
        return pq.read_metadata(folder / store.RUNS / store.chunk_name(c)).num_rows
    except Exception:  # damaged: nothing to count
        return 0


def _duration(seconds: float) -> str:
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def _rate_line(st: Status, rate: float | None) -> str:
    if st.complete:
        return "complete"
    if rate is None:
        return "rate:   measuring (no run finished since the view started)"
    left = (st.runs - st.runs_done) / rate
    return f"rate:   {rate:.1f} runs/s, eta {_duration(left)}"


def one_line(st: Status, rate: float | None, shards: int | None = None) -> str:
    """The status in one line: time, runs, chunks, chunks per shard, rate and ETA."""
    pct = 100.0 * st.runs_done / st.runs if st.runs else 100.0
    parts = [
        time.strftime("%H:%M:%S"),
        f"runs {st.runs_done}/{st.runs} ({pct:.1f}%)",
        f"chunks {len(st.done)}/{st.chunks}",
    ]
    per = st.per_shard(shards)
    if per:
        parts.append("shards " + " ".join(f"{k}/{n}" for k, n in per))
    parts.append(_rate_line(st, rate).removeprefix("rate:").strip())
    if st.bad:
        parts.append(f"{len(st.bad)} damaged")
    return ", ".join(parts)


def watch(
    folder: str | Path,
    *,
    interval: float = 2.0,
    shards: int | None = None,
    out: TextIO | None = None,
    tty: bool | None = None,
) -> Status:
    """Show the status every ``interval`` seconds until the sweep is complete; returns it.

    On a terminal the view is redrawn in place; otherwise one line per interval. Runs/s
    is measured over the time this view has run. Ctrl-C raises KeyboardInterrupt.
    """
    out = sys.stdout if out is None else out
    tty = out.isatty() if tty is None else tty
    start: tuple[float, int] | None = None
    drawn = 0
    while True:
        st = status(folder)
        now = time.monotonic()
        if start is None:
            start = (now, st.runs_done)
        t0, r0 = start
        rate = (st.runs_done - r0) / (now - t0) if st.runs_done > r0 and now > t0 else None
        if tty:
            lines = [*st.lines(shards)[:-1], _rate_line(st, rate)]
            if drawn:  # back to the first line drawn, and clear to the end of the screen
                out.write(f"\x1b[{drawn}F\x1b[J")
            out.write("\n".join(lines) + "\n")
            drawn = len(lines)
        else:
            out.write(one_line(st, rate, shards) + "\n")
        out.flush()
        if st.complete:
            return st
        time.sleep(interval)
