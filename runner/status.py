"""What a results folder holds: done and pending chunks, runs, divergence."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from runner import growth, slurm, store
from runner.errors import RunnerError


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
        if shards:
            done = set(self.done)
            needed = self.needed or range(self.chunks)
            for i in range(shards):
                mine = [c for c in needed if c % shards == i]
                k = sum(c in done for c in mine)
                out.append(f"shard {i}/{shards}: {k}/{len(mine)} chunks done")
        out.extend(f"damaged: {b} (the same sweep command recomputes it)" for b in self.bad)
        out.append(
            "complete" if self.complete else "incomplete: run the same sweep command to resume"
        )
        return out


def status(folder: str | Path) -> Status:
    """Read sweep.json and the runs files; damaged files are listed, not counted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RunnerError("no such results folder", file=str(folder))
    meta = store.read_meta(folder)
    latest = growth.plan_of(folder, store.layer_files(folder)).latest_runs()
    st = Status(folder, meta["spec"]["name"], 0, int(latest.sum()))
    st.needed = np.flatnonzero(latest > 0).tolist()
    st.chunks = len(st.needed)
    st.shards, st.jobs = slurm.array_tasks(folder), slurm.job_ids(folder)
    st.layers = meta["layers"]
    needed = set(st.needed)
    for c in sorted(store.done_chunks(folder)):
        if c >= len(latest):
            continue
        if c not in needed:  # only values removed since: kept, not counted
            st.kept_runs += _rows(folder, c)
            continue
        problem = store.check_chunk(folder, c)
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
