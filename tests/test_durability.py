"""What reaches the disk, in which order, and what a quiet sweep prints."""

import os

import numpy as np
import pyarrow as pa
import pytest
from helpers import write_spec

import runner
from runner.results import store


@pytest.fixture
def disk_log(monkeypatch):
    """Every os.fsync and os.replace, in order: ("fsync", inode) and ("replace", src, dst)."""
    log = []
    fsync, replace = os.fsync, os.replace

    def logged_fsync(fd):
        log.append(("fsync", os.fstat(fd).st_ino))
        fsync(fd)

    def logged_replace(src, dst):
        log.append(("replace", str(src), str(dst)))
        replace(src, dst)

    monkeypatch.setattr(os, "fsync", logged_fsync)
    monkeypatch.setattr(os, "replace", logged_replace)
    return log


def test_chunk_files_are_durable_losses_before_runs(tmp_path, disk_log):
    """file bytes, rename, folder: for losses, and only then for the runs file."""
    out = tmp_path / "sweep"
    for sub in (store.LOSSES, store.RUNS):
        (out / sub).mkdir(parents=True)
    table = pa.table({"run_id": pa.array(np.arange(3, dtype=np.int32))})
    store.write_chunk(out, 7, table, table)
    losses, runs = (
        out / store.LOSSES / "chunk-000007.parquet",
        out / store.RUNS / "chunk-000007.parquet",
    )
    ino = {p: p.stat().st_ino for p in (losses, runs, losses.parent, runs.parent)}
    steps = []
    for entry in disk_log:
        if entry[0] == "fsync":
            steps.append(("fsync", next(p for p, i in ino.items() if i == entry[1])))
        else:
            steps.append(("replace", entry[2]))
    assert steps == [
        ("fsync", losses),  # the bytes, under the temporary name
        ("replace", str(losses)),
        ("fsync", losses.parent),  # the new name
        ("fsync", runs),
        ("replace", str(runs)),
        ("fsync", runs.parent),
    ]


def test_a_sweep_syncs_every_chunk_and_its_folders(tmp_path, disk_log):
    spec = write_spec(tmp_path, chunk_runs=12)  # 36 runs in 4 chunks
    runner.sweep(spec, out=tmp_path / "out", jobs=1, quiet=True)
    folder = tmp_path / "out" / "small"
    dirs = {(folder / d).stat().st_ino: d for d in ("", store.LOSSES, store.WEIGHTS, store.RUNS)}
    synced = [dirs.get(e[1]) for e in disk_log if e[0] == "fsync"]
    assert synced.count(store.LOSSES) == synced.count(store.WEIGHTS) == 4
    assert synced.count(store.RUNS) == 4
    assert synced.count("") == 2  # the new folders, then sweep.json
    renamed = [
        os.path.basename(os.path.dirname(e[2]))
        for e in disk_log
        if e[0] == "replace" and e[2].startswith(str(folder))
    ]
    assert renamed == [store.LOSSES, store.WEIGHTS, store.RUNS] * 4


def test_quiet_sweep_prints_nothing(tmp_path, capfd):
    spec = write_spec(tmp_path, chunk_runs=12)
    report = runner.sweep(spec, out=tmp_path, jobs=1, quiet=True)
    assert report.complete
    captured = capfd.readouterr()
    assert captured.err == ""
    assert captured.out == ""
    runner.sweep(spec, out=tmp_path / "loud", jobs=1)  # the same sweep, not quiet, does print
    assert "36/36 runs" in capfd.readouterr().err
