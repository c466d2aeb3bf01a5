"""Who holds what on this host: a claim file per chunk being trained, and the temporary
files of processes that died (both named ``...HOST.PID``)."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterable
from pathlib import Path

from runner.results.layout import CLAIMS


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
            if claim_host == host and pid.isdigit() and not alive(int(pid)):
                lost.append(int(c))
                release(folder / name)
    return sorted(lost)


def remove_stale_tmp(folders: Iterable[Path]) -> None:
    """Remove the temporary files (``.NAME.HOST.PID.tmp``) of dead processes of this host."""
    host = socket.gethostname()
    for folder in folders:
        if not folder.is_dir():
            continue
        for name in os.listdir(folder):
            parts = name.rsplit(".", 3)
            if not (name.startswith(".") and name.endswith(".tmp") and len(parts) == 4):
                continue
            if parts[1] == host and not alive(int(parts[2]) if parts[2].isdigit() else -1):
                with contextlib.suppress(OSError):
                    (folder / name).unlink()


def alive(pid: int) -> bool:
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
