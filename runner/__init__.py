"""runner: train many tiny neural networks fast and keep every result."""

from runner.analysis import Results, load
from runner.driver import sweep
from runner.errors import RunnerError
from runner.train import TrainResult, train

__version__ = "0.1.0"

__all__ = ["Results", "RunnerError", "TrainResult", "__version__", "load", "sweep", "train"]
