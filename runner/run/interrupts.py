"""Ctrl-C and SIGTERM, remembered. Python drops a KeyboardInterrupt raised inside a
``__del__`` (it prints "Exception ignored in ..."), so a signal that lands in, say, a
Parquet writer's finaliser would be lost; the sweep also checks this flag between chunks.
"""

from __future__ import annotations

import threading

_seen = threading.Event()


def handler(signum, frame) -> None:
    """A signal handler: remember the signal, then raise KeyboardInterrupt."""
    _seen.set()
    raise KeyboardInterrupt


def seen() -> bool:
    """Whether a Ctrl-C or SIGTERM came since ``clear``."""
    return _seen.is_set()


def clear() -> None:
    _seen.clear()
