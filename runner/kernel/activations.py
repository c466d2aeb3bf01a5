"""The hidden layer's activations and their derivatives, as the CPU kernel computes them.

Each activation is four side by side (``act4``: independent dependency chains, as
``exp.sigmoid4``); each derivative ``act'(A, H)`` is a function of the unit's output H
alone, the reference's numbers (``runner.kernel.reference.derivative``):
sigmoid ``H * (1 - H)``, tanh ``1 - H * H``, relu ``1`` where ``A > 0`` else ``0`` (and
``A > 0`` exactly where ``H > 0``), identity ``1``. A variant of the kernel takes one
pair as constants (``runner.kernel.cpu.kernel``).
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import overload

from runner.kernel.exp import sigmoid4, sigmoid4_cheap, tanh4
from runner.kernel.family import ACTIVATIONS  # noqa: F401  (the names of HIDDEN's rows)
from runner.kernel.numba_ext import JIT


def _zero(x):
    """0 in x's float type."""


@overload(_zero, jit_options=JIT)
def _zero_impl(x):
    zero = np.float32(0) if x == types.float32 else 0.0
    return lambda x: zero


@njit(inline="always", **JIT)
def relu(x):
    """max(x, 0) as the reference: x where x > 0, a NaN kept, else 0 * x (-0.0 for a
    negative x, NaN for -inf)."""
    zero = _zero(x)
    return x if x > zero or x != x else zero * x


@njit(inline="always", **JIT)
def relu4(x0, x1, x2, x3):
    return relu(x0), relu(x1), relu(x2), relu(x3)


@njit(inline="always", **JIT)
def identity4(x0, x1, x2, x3):
    return x0, x1, x2, x3


@njit(inline="always", **JIT)
def d_sigmoid(h, one, zero):
    return h * (one - h)


@njit(inline="always", **JIT)
def d_tanh(h, one, zero):
    return one - h * h


@njit(inline="always", **JIT)
def d_relu(h, one, zero):
    return one if h > zero else zero


@njit(inline="always", **JIT)
def d_identity(h, one, zero):
    return one


# name -> (act4 of the exact kernels, act4 of fastmath's, derivative)
HIDDEN = {
    "sigmoid": (sigmoid4, sigmoid4_cheap, d_sigmoid),
    "tanh": (tanh4, tanh4, d_tanh),
    "relu": (relu4, relu4, d_relu),
    "identity": (identity4, identity4, d_identity),
}
