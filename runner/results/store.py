"""Parquet results: tables built from a chunk's kernel output, files written whole.

Layout (docs/results.md): ``sweep.json``, ``losses/`` and ``runs/``, one file per
chunk in each. A file appears whole or not at all (temporary name in the same folder,
fsync, ``os.replace``, fsync of the folder); the ``runs`` file is written last, once
the ``losses`` file is durable, and marks its chunk done (docs/guarantees.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from runner.errors import RunnerError
from runner.kernel import codes as kernels
from runner.plan import params

LOSSES, RUNS, META = "losses", "runs", "sweep.json"
GROWN = "grown"  # one JSON file per invocation that grew the sweep (docs/growth.md)


def chunk_name(c: int) -> str:
    return f"chunk-{c:06d}.parquet"


def chunk_of(name: str) -> int | None:
    if name.startswith("chunk-") and name.endswith(".parquet"):
        try:
            return int(name[6:-8])
        except ValueError:
            return None
    return None


# ----- columns -----
def axis_columns(axes: list[str]) -> list[str]:
    """Table columns of parameters (grid axes): ``init`` is ``init_lo`` and ``init_hi``."""
    return params.columns_of(axes)


def param_columns(columns: dict[str, np.ndarray]) -> dict[str, pa.Array]:
    """Arrow columns of the plan's columns (params.COLUMNS), typed by the parameter table."""
    out: dict[str, pa.Array] = {}
    for col in params.COLUMNS:
        values = columns[col]
        kind = params.COLUMN_DTYPE[col]
        if kind == "category":
            names = np.array(params.OWNER[col].choices, dtype=object)
            out[col] = categories(list(names[values]))
        elif kind == "float64" and params.OWNER[col].default is None:
            out[col] = arrow(values, mask=np.isnan(values))  # None when absent
        else:
            out[col] = arrow(values)
    return out


# ----- Arrow arrays from NumPy buffers and back -----
# (pa.array and Array.to_numpy import pandas on first use, to look for pandas objects;
# these do not, so that a sweep never loads pandas)
def arrow(values: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    """A numeric or bool Arrow array of ``values``; where ``mask`` is True, null."""
    values = np.ascontiguousarray(values)
    valid = None
    if mask is not None and mask.any():
        valid = pa.py_buffer(np.packbits(~mask, bitorder="little"))
    if values.dtype == np.bool_:
        bits = pa.py_buffer(np.packbits(values, bitorder="little"))
        return pa.Array.from_buffers(pa.bool_(), len(values), [valid, bits])
    kind = pa.from_numpy_dtype(values.dtype)
    return pa.Array.from_buffers(kind, len(values), [valid, pa.py_buffer(values)])


def categories(values: list[str]) -> pa.Array:
    """A dictionary-encoded string array (int32 indices, in order of first appearance)."""
    words = list(dict.fromkeys(values))
    data = [w.encode() for w in words]
    offsets = np.cumsum([0] + [len(b) for b in data], dtype=np.int32)
    buffers = [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(data))]
    dictionary = pa.Array.from_buffers(pa.string(), len(words), buffers)
    where = {w: i for i, w in enumerate(words)}
    return pa.DictionaryArray.from_arrays(arrow(np.array([where[v] for v in values])), dictionary)


def to_numpy(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A numeric column without nulls as a NumPy array."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    data = np.frombuffer(column.buffers()[1], dtype=column.type.to_pandas_dtype())
    return data[column.offset : column.offset + len(column)]


def losses_table(
    run_ids: np.ndarray,
    axis_cols: dict[str, pa.Array],
    loss: np.ndarray,
    istats: np.ndarray,
    fstats: np.ndarray,
    every: int,
) -> pa.Table:
    """Tidy rows (run_id, axes..., epoch, loss) in run, then epoch, order.

    Kept: epoch 1, every multiple of ``every``, and each run's last epoch.
    """
    R = len(run_ids)
    S = loss.shape[0]
    rec = np.arange(S, dtype=np.int64) * every if every > 1 else np.arange(1, S + 1)
    if every > 1:
        rec[0] = 1
    last = istats[:, kernels.EPOCHS_RUN]
    keep = rec[None, :] <= last[:, None]  # (R, S)
    extra = ~np.isin(last, rec) & (last > 0)  # last epoch not on the record grid
    if keep.all() and not extra.any():
        values = np.ascontiguousarray(loss.T).ravel()
        epochs = np.tile(rec.astype(np.int32), R)
        counts = np.full(R, S)
    else:
        with np.errstate(over="ignore"):  # a huge float64 loss is inf in float32
            final = fstats[:, kernels.FINAL_LOSS, None].astype(loss.dtype)
        vals = np.concatenate([loss.T, final], 1)
        eps = np.concatenate([np.broadcast_to(rec, (R, S)), last[:, None]], 1)
        mask = np.concatenate([keep, extra[:, None]], 1)
        values = vals[mask]
        epochs = eps[mask].astype(np.int32)
        counts = mask.sum(1)
    cols = {"run_id": arrow(np.repeat(run_ids.astype(np.int32), counts))}
    for key, col in axis_cols.items():
        cols[key] = col.take(arrow(np.repeat(np.arange(R, dtype=np.int32), counts)))
    cols["epoch"] = arrow(epochs)
    cols["loss"] = arrow(values)
    return pa.table(cols)


# pandas metadata naming only the nullable epochs, so that pandas reads them back as Int32
# (written without importing pandas; pandas converts every other column from its Arrow type)
NULLABLE_INT32 = {
    b"pandas": json.dumps({
        "index_columns": [],
        "column_indexes": [],
        "columns": [
            {"name": key, "field_name": key, "pandas_type": "int32", "numpy_type": "Int32",
             "metadata": None}
            for key in ("diverged_epoch", "converged_epoch")
        ],
    }).encode()
}  # fmt: skip


def runs_table(
    run_ids: np.ndarray, param_cols: dict[str, pa.Array], istats: np.ndarray, fstats: np.ndarray
) -> pa.Table:
    status = istats[:, kernels.STATUS]
    run = istats[:, kernels.EPOCHS_RUN]
    diverged = status == kernels.DIVERGED
    converged = status == kernels.CONVERGED
    cols: dict[str, pa.Array] = {"run_id": arrow(run_ids.astype(np.int32))}
    cols.update(param_cols)
    cols["epochs_run"] = arrow(run.astype(np.int32))
    cols["final_loss"] = arrow(fstats[:, kernels.FINAL_LOSS])
    cols["min_loss"] = arrow(fstats[:, kernels.MIN_LOSS])
    cols["min_loss_epoch"] = arrow(istats[:, kernels.MIN_EPOCH].astype(np.int32))
    cols["diverged"] = arrow(diverged)
    cols["diverged_epoch"] = arrow(run.astype(np.int32), mask=~diverged)
    cols["converged_epoch"] = arrow(run.astype(np.int32), mask=~converged)
    return pa.table(cols).replace_schema_metadata(NULLABLE_INT32)


# ----- files -----
def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.tmp")


def fsync_dir(folder: Path) -> None:
    """Make the entries of ``folder`` (a rename, a new file) durable."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(
    table: pa.Table, path: Path, before_rename: Callable[[], None] | None = None, **options: Any
) -> None:
    """Write a Parquet file whole or not at all, and durably: its bytes reach the disk
    before its name does, and its name before this returns."""
    tmp = _tmp_name(path)
    try:
        with open(tmp, "wb") as fh:
            pq.write_table(table, fh, **options)
            fh.flush()
            os.fsync(fh.fileno())
        if before_rename is not None:
            before_rename()
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


# Tuned by measurement on the seed sweep (ns per row to write, bytes per row):
# pyarrow's defaults 108 ns, 6.4 B; zstd-1 70 ns, 4.5 B; lz4 with dictionaries
# for the axis columns (constant over a run), delta-encoded run_id and epoch and
# byte-stream-split losses 51 ns, 1.7 B, and reads back in 24 ns a row.
LOSS_ENCODING = {
    "run_id": "DELTA_BINARY_PACKED",
    "epoch": "DELTA_BINARY_PACKED",
    "loss": "BYTE_STREAM_SPLIT",
}
RUN_OPTIONS: dict[str, Any] = {"compression": "zstd"}


def loss_options(table: pa.Table) -> dict[str, Any]:
    return {
        "compression": "lz4",
        "use_dictionary": [c for c in table.column_names if c not in LOSS_ENCODING],
        "column_encoding": LOSS_ENCODING,
        "write_statistics": ["run_id", "epoch"],
        "row_group_size": 1 << 20,
    }


def write_chunk(out: Path, c: int, losses: pa.Table, runs: pa.Table) -> None:
    """Losses first, durable (bytes and name), then runs: the runs file marks the chunk
    done, so after a crash or a power loss a done chunk always has its losses."""
    fault_point(c, "trained")
    hook = lambda: fault_point(c, "losses-tmp")  # noqa: E731
    write_atomic(losses, out / LOSSES / chunk_name(c), hook, **loss_options(losses))
    fault_point(c, "losses")
    hook = lambda: fault_point(c, "runs-tmp")  # noqa: E731
    write_atomic(runs, out / RUNS / chunk_name(c), hook, **RUN_OPTIONS)
    fault_point(c, "runs")


# Test hook of the fault tests: RUNNER_TEST_KILL="C:POINT" SIGKILLs the whole sweep
# (its process group, when the sweep leads its own session) as chunk C reaches POINT;
# "C:POINT:self" kills only the process (a worker) writing chunk C.
FAULT_POINTS = ("trained", "losses-tmp", "losses", "runs-tmp", "runs")


def fault_point(c: int, point: str) -> None:
    target = os.environ.get("RUNNER_TEST_KILL")
    if target is None:
        return
    chunk, _, rest = target.partition(":")
    where, _, who = rest.partition(":")
    if chunk == str(c) and where == point:
        import signal

        group = os.getpgid(0)
        if who != "self" and group == os.getsid(0):
            os.killpg(group, signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)


def check_chunk(out: Path, c: int, run_range: tuple[int, int] | None = None) -> str | None:
    """None if chunk c's files are whole and agree with each other, else what is wrong."""
    runs_path, loss_path = out / RUNS / chunk_name(c), out / LOSSES / chunk_name(c)
    try:
        runs = pq.ParquetFile(runs_path).read(columns=["run_id", "epochs_run"])
    except Exception as exc:
        return f"{runs_path}: unreadable ({type(exc).__name__})"
    ids = to_numpy(runs.column("run_id"))
    if run_range is not None:
        start, stop = run_range
        if len(ids) != stop - start or ids.min() != start or ids.max() != stop - 1:
            return f"{runs_path}: holds the wrong runs"
    try:
        meta = pq.read_metadata(loss_path)
    except Exception as exc:
        return f"{loss_path}: unreadable ({type(exc).__name__})"
    if meta.num_rows == 0:
        return f"{loss_path}: empty"
    return None


def remove_chunk(out: Path, c: int) -> None:
    """Remove a chunk's files: the runs file (its done mark) first."""
    for sub in (RUNS, LOSSES):
        with contextlib.suppress(FileNotFoundError):
            (out / sub / chunk_name(c)).unlink()


CLAIMS = ".claims"


def claim(out: Path, c: int) -> Path | None:
    """Mark chunk c as being trained by this process (diagnostics only)."""
    path = out / CLAIMS / f"{c}.{socket.gethostname()}.{os.getpid()}"
    try:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"")
    except OSError:
        return None
    return path


def release(path: Path | None) -> None:
    if path is not None:
        with contextlib.suppress(OSError):
            path.unlink()


def orphaned_claims(out: Path) -> list[int]:
    """Chunks claimed by processes of this host that no longer exist (and drop the claims)."""
    folder = out / CLAIMS
    host = socket.gethostname()
    lost = []
    with contextlib.suppress(OSError):
        for name in os.listdir(folder):
            c, _, rest = name.partition(".")
            claim_host, _, pid = rest.rpartition(".")
            if claim_host == host and pid.isdigit() and not _alive(int(pid)):
                lost.append(int(c))
                release(folder / name)
    return sorted(lost)


def describe_os_error(exc: OSError) -> str:
    import errno

    where = exc.filename or ""
    if exc.errno == errno.ENOSPC:
        return f"{where}: disk full ({exc.strerror}); free space and run the same command"
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"{where}: cannot write ({exc.strerror})"
    return f"{where}: {exc.strerror or exc}"


def done_chunks(out: Path) -> set[int]:
    """Chunks whose runs file exists (a chunk is done once its runs file is in place)."""
    folder = out / RUNS
    if not folder.is_dir():
        return set()
    found = (chunk_of(name) for name in os.listdir(folder))
    return {c for c in found if c is not None}


def clean_stale_tmp(out: Path) -> None:
    """Remove temporary files left by dead processes of this host."""
    host = socket.gethostname()
    for sub in (LOSSES, RUNS, ""):
        folder = out / sub
        if not folder.is_dir():
            continue
        for name in os.listdir(folder):
            parts = name.rsplit(".", 3)
            if not (name.startswith(".") and name.endswith(".tmp") and len(parts) == 4):
                continue
            if parts[1] == host and not _alive(int(parts[2]) if parts[2].isdigit() else -1):
                with contextlib.suppress(OSError):
                    (folder / name).unlink()


def _alive(pid: int) -> bool:
    """Whether process ``pid`` of this host runs (a zombie, killed but not yet reaped, not)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc: trust kill
    return state != "Z"


# ----- sweep.json -----
def versions() -> dict[str, str]:
    import numba

    import runner

    return {
        "runner": runner.__version__,
        "numba": numba.__version__,
        "numpy": np.__version__,
        "pyarrow": pa.__version__,
        "python": platform.python_version(),
    }


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def read_meta(out: Path) -> dict[str, Any]:
    """The sweep as it stands: sweep.json, with the latest spec and the totals of every layer.

    ``layers`` lists each invocation that planned runs (sweep.json first, then
    ``grown/NNNN.json``): its spec hash, runs, chunks and offsets.
    """
    files = layer_files(out)
    meta = dict(files[0])
    meta["spec"], meta["spec_hash"] = files[-1]["spec"], files[-1]["spec_hash"]
    meta["runs"] = sum(int(f["runs"]) for f in files)
    meta["chunks"] = sum(int(f["chunks"]) for f in files)
    meta["layers"] = [
        {k: f.get(k) for k in ("spec_hash", "runs", "chunks", "created")} for f in files
    ]
    return meta


def prepare(out: Path, meta: dict[str, Any], fresh: bool) -> dict[str, Any]:
    """Create ``out`` and its sweep.json once (whoever comes first), or check it matches.

    Raises RunnerError when ``out`` is not writable. Returns sweep.json as found
    (runner.results.growth checks that it is the same sweep, or one that may grow).
    """
    where = str(out)
    if out.exists() and not out.is_dir():
        raise RunnerError("results path exists and is not a folder", file=where)
    if fresh and out.is_dir():
        if not (out / META).is_file() and any(p.name != "slurm" for p in out.iterdir()):
            raise RunnerError("--fresh refuses to delete a folder that is not a sweep", file=where)
        shutil.rmtree(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for sub in (LOSSES, RUNS):
            (out / sub).mkdir(exist_ok=True)
        fsync_dir(out)  # the folders exist durably before any chunk is renamed into them
        probe = out / f".write-test.{socket.gethostname()}.{os.getpid()}.tmp"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise RunnerError(f"results folder is not writable ({exc.strerror})", file=where) from None
    path = out / META
    if not path.exists():
        tmp = path.with_name(f".{META}.{socket.gethostname()}.{os.getpid()}.tmp")
        with open(tmp, "w") as fh:
            fh.write(json.dumps(meta, indent=2, sort_keys=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # atomic: fails if another process created it first
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        fsync_dir(out)
    return read_json(path)


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RunnerError(
            "not a sweep results folder (no sweep.json)", file=str(path.parent)
        ) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise RunnerError(f"unreadable sweep file ({exc})", file=str(path)) from None


def layer_files(out: Path) -> list[dict[str, Any]]:
    """sweep.json, then the files of each growth, in order."""
    found = [read_json(out / META)]
    folder = out / GROWN
    if folder.is_dir():
        names = sorted(n for n in os.listdir(folder) if n.endswith(".json") and n[:4].isdigit())
        found.extend(read_json(folder / n) for n in names)
    return found


def add_layer(out: Path, k: int, meta: dict[str, Any]) -> bool:
    """Write growth k's file unless it exists (whoever comes first); True if written."""
    folder = out / GROWN
    folder.mkdir(exist_ok=True)
    path = folder / f"{k:04d}.json"
    tmp = path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        fh.write(json.dumps(meta, indent=2) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink()
        fsync_dir(folder)


def new_meta(resolved: dict[str, Any], spec_hash: str, n_runs: int, n_chunks: int) -> dict:
    return {
        "spec": resolved,
        "spec_hash": spec_hash,
        "runs": n_runs,
        "chunks": n_chunks,
        "versions": versions(),
        "git_commit": git_commit(),
        "host": socket.gethostname(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": sys.argv,
    }
