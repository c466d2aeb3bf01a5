"""runner: train many tiny neural networks fast and keep every result.

The public names load on first use, so that ``import runner`` and the command line
start fast: numba, pandas and matplotlib are imported only by what needs them.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Results", "RunnerError", "TrainResult", "__version__", "load", "sweep", "train"]

_HOME = {
    "Results": "runner.analysis",
    "load": "runner.analysis",
    "sweep": "runner.driver",
    "RunnerError": "runner.errors",
    "TrainResult": "runner.train",
    "train": "runner.train",
}

if TYPE_CHECKING:
    from runner.analysis import Results, load
    from runner.driver import sweep
    from runner.errors import RunnerError
    from runner.train import TrainResult, train


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'runner' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    setattr(sys.modules[__name__], name, value)
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        # importing the submodule runner.train binds it here: keep the function instead
        if name == "train" and isinstance(value, types.ModuleType):
            value = value.train
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
