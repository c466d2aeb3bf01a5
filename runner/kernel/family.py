"""The model family's numbers that the host computes for a kernel call (no Numba).

docs/numerics.md, "The model family": the scalings ``c_h``, ``c_o``, the step's factor
``k``, and each layer's learning rate with every scalar factor folded into one number
per run, ``s_o = (alpha_output * k) * c_o`` and ``s_h = ((alpha_hidden * k) * c_o) * c_h``,
rounded to the training dtype after each product, as ``runner.kernel.reference`` does.
With the defaults (standard scaling, the notebook's step, one alpha) both are alpha.
"""

from __future__ import annotations

import math

import numpy as np

ACTIVATIONS = ("sigmoid", "tanh", "relu", "identity")
SCALINGS = ("standard", "mean-field")
STEPS = ("notebook", "gradient")


def scales(scaling: str, activation: str, inputs: int, hidden: int) -> tuple[float, float]:
    """(c_h, c_o) in float64: 1, 1 standard; g / sqrt(inputs), 1 / hidden mean-field, with
    g = sqrt(2) for tanh and relu and 1 otherwise (bias column and unit not counted)."""
    if scaling == "standard":
        return 1.0, 1.0
    g = math.sqrt(2.0) if activation in ("tanh", "relu") else 1.0
    return g / math.sqrt(inputs), 1.0 / hidden


def step_factor(step: str, samples: int, outputs: int) -> float:
    """k: 1 for the notebook's step, 2 / (samples * outputs) for the gradient's."""
    return 1.0 if step == "notebook" else 2.0 / (samples * outputs)


def fold(
    alpha_output: np.ndarray, alpha_hidden: np.ndarray, k: float, c_h: float, c_o: float,
    dtype: str = "float64",
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(s_o, s_h) per run in ``dtype``: each factor rounded to dtype, each product too."""
    f = np.dtype(dtype).type
    a_o = np.asarray(alpha_output, dtype=f)
    a_h = np.asarray(alpha_hidden, dtype=f)
    s_o = (a_o * f(k)) * f(c_o)
    s_h = ((a_h * f(k)) * f(c_o)) * f(c_h)
    return np.ascontiguousarray(s_o), np.ascontiguousarray(s_h)
