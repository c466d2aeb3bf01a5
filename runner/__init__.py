"""runner: train many tiny neural networks fast and keep every result.

The public names load on first use, so that ``import runner`` and the command line
start fast: numba, pandas and matplotlib are imported only by what needs them.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "BatchResult", "Results", "RunnerError", "TrainResult", "__version__", "load", "sweep",
    "train", "train_many",
]  # fmt: skip

_HOME = {
    "Results": "runner.results.analysis",
    "load": "runner.results.analysis",
    "sweep": "runner.run.driver",
    "RunnerError": "runner.errors",
    "TrainResult": "runner.run.notebook",
    "train": "runner.run.notebook",
    "train_many": "runner.run.notebook",
    "BatchResult": "runner.run.train",
}

if TYPE_CHECKING:
    from runner.errors import RunnerError
    from runner.results.analysis import Results, load
    from runner.run.driver import sweep
    from runner.run.notebook import TrainResult, train, train_many
    from runner.run.train import BatchResult


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'runner' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    setattr(sys.modules[__name__], name, value)
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
