"""Files written whole or not at all, and durably: bytes under a temporary name in the
same folder, fsync, ``os.replace`` (or ``os.link``, first writer wins), fsync of the
folder (docs/guarantees.md)."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


def tmp_name(path: Path) -> Path:
    """The temporary name of ``path`` for this process: ``.NAME.HOST.PID.tmp``."""
    return path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.tmp")


def fsync_dir(folder: Path) -> None:
    """Make the entries of ``folder`` (a rename, a new file) durable."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_tmp(table: pa.Table, tmp: Path, options: dict[str, Any]) -> None:
    """A Parquet file's bytes, durable under its temporary name."""
    with open(tmp, "wb") as fh:
        pq.write_table(table, fh, **options)
        fh.flush()
        os.fsync(fh.fileno())


def write_atomic(table: pa.Table, path: Path, **options: Any) -> None:
    """Write a Parquet file whole or not at all, and durably: its bytes reach the disk
    before its name does, and its name before this returns."""
    tmp = tmp_name(path)
    try:
        write_tmp(table, tmp, options)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def write_once(path: Path, text: str) -> bool:
    """Write ``path`` unless it exists (whoever comes first); True if this call wrote it."""
    tmp = tmp_name(path)
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    try:
        os.link(tmp, path)  # atomic: fails if another process created it first
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink()
        fsync_dir(path.parent)


def describe_os_error(exc: OSError) -> str:
    where = exc.filename or ""
    if exc.errno == errno.ENOSPC:
        return f"{where}: disk full ({exc.strerror}); free space and run the same command"
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"{where}: cannot write ({exc.strerror})"
    return f"{where}: {exc.strerror or exc}"
