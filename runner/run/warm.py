"""The background compile of ``runner.run.first``: ``python -m runner.run.warm VARIANT``
compiles (or loads) one variant's kernel into Numba's cache, under the shared compile
lock, then removes its marker."""

from __future__ import annotations

import json
import os
import sys

import numpy as np

from runner.kernel.numba_ext import compile_target
from runner.run import first, shared_cache
from runner.run.train import run_batch


def compile_variant(variant: dict) -> None:
    """Compile (or load) ``variant``'s kernel (``run_batch``'s keywords that choose it and
    its argument types) by training one tiny run with it, under the compile lock."""
    v = dict(variant)
    held_out, metrics = v.pop("held_out"), v.pop("metrics")
    bias = v.get("bias", False)
    X, Y = np.zeros((2, 1)), np.zeros((2, 1))
    Wh, Wz = np.zeros((1 + bias, 1, 1)), np.zeros((1 + bias, 1, 1))
    with shared_cache.compile_lock(first.folder(), compile_target(), say=lambda m: None):
        run_batch(X, Y, Wh, Wz, np.array([0.1]), 2, validation=(X, Y) if held_out else None,
                  metrics=("accuracy",) if metrics else (), numpy_first=False,
                  loss_dtype=np.dtype(v.pop("loss_dtype")).type, **v)  # fmt: skip


if __name__ == "__main__":
    try:
        compile_variant(json.loads(sys.argv[1]))
    finally:
        first.marker(first.folder(), os.getpid()).unlink(missing_ok=True)
