"""The notebook's algorithm in plain NumPy, line for line: the slow, obvious truth.

Used by tests and benchmarks only. docs/numerics.md and docs/precision.md say what it
fixes and why.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from runner.kernel import codes as k  # constants of the shared exp only


def exp(x: np.ndarray) -> np.ndarray:
    """The kernel's exp, in NumPy, same operations in the same order (within 1 ulp of
    the correctly rounded exp). A float32 array gets the float32 exp: its own
    constants and polynomial, every operation in float32; anything else float64.

    Chaotic runs amplify a last-bit difference, so kernel and reference share it.
    """
    x = np.asarray(x)
    f32 = x.dtype == np.float32
    x = x if f32 else x.astype(np.float64)
    (hi, lo, log2e, ln2_hi, ln2_lo), c = (
        (k.EXP32, k.EXP_COEFFS32) if f32 else (k.EXP64, k.EXP_COEFFS)
    )
    x = np.where(x > hi, hi, x)  # min(x, HI), a NaN kept
    x = np.where(x < lo, lo, x)
    kf = np.rint(x * log2e)
    r = (x - kf * ln2_hi) - kf * ln2_lo
    r2 = r * r  # the kernel's Estrin scheme, step by step (kernels._q9, kernels._q4)
    if f32:
        b0 = c[4] + c[3] * r
        b1 = c[2] + c[1] * r
        r4 = r2 * r2
        q = (b0 + b1 * r2) + c[0] * r4
    else:
        b0 = c[9] + c[8] * r
        b1 = c[7] + c[6] * r
        b2 = c[5] + c[4] * r
        b3 = c[3] + c[2] * r
        b4 = c[1] + c[0] * r
        r4 = r2 * r2
        d0 = b0 + b1 * r2
        d1 = b2 + b3 * r2
        r8 = r4 * r4
        q = (d0 + d1 * r4) + b4 * r8
    p = c[-1] + (c[-2] * r + r2 * q)
    bias, shift = (127, 23) if f32 else (1023, 52)
    with np.errstate(invalid="ignore"):  # a NaN's kf: any integer, p carries the NaN
        n = kf.astype(np.int64)
    n1 = n >> 1
    n2 = n - n1
    ints = np.int32 if f32 else np.int64
    s1 = ((n1 + bias) << shift).astype(ints).view(p.dtype)
    s2 = ((n2 + bias) << shift).astype(ints).view(p.dtype)
    return (p * s1) * s2


def dot(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """A @ B summed left to right with no fused multiply-add, as the kernel sums."""
    out = A[:, 0:1] * B[0:1, :]
    for i in range(1, A.shape[1]):
        out = out + A[:, i : i + 1] * B[i : i + 1, :]
    return out


def mean(E2: np.ndarray) -> float:
    """Mean summed left to right (cumsum is sequential; np.mean sums pairwise)."""
    return float(np.cumsum(E2.ravel())[-1] / E2.size)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + exp(-x))


def sigmoid_derivative(x: np.ndarray) -> np.ndarray:
    return x * (1 - x)


def init_weights(
    seed: int, inputs: int, hidden: int, outputs: int, init: tuple[float, float] = (0.0, 1.0)
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded initial weights: Wh first, then Wz, from one default_rng(seed)."""
    rng = np.random.default_rng(seed)
    lo, hi = init
    Wh = rng.uniform(lo, hi, size=(inputs, hidden))
    Wz = rng.uniform(lo, hi, size=(hidden, outputs))
    return Wh, Wz


@dataclass
class ReferenceResult:
    loss: np.ndarray
    Wh: np.ndarray
    Wz: np.ndarray
    diverged_epoch: int | None
    converged_epoch: int | None


def train_reference(
    X: np.ndarray,
    Y: np.ndarray,
    Wh: np.ndarray,
    Wz: np.ndarray,
    alpha: float,
    epochs: int,
    output: str = "linear",
    update: str = "sequential",
    stop_below: float | None = None,
    diverge_above: float | None = None,
    dtype: str = "float64",
) -> ReferenceResult:
    """Train one run from the given initial weights (copied, not modified).

    ``dtype="float32"`` rounds X, Y, the weights and alpha to float32 once and does
    every operation in float32 (NumPy keeps float32 with Python scalars); losses and
    weights come back as float32 values (the losses widened to float64).
    """
    f = np.dtype(dtype)
    X = np.asarray(X, dtype=f)
    Y = np.asarray(Y, dtype=f)
    Wh = np.array(Wh, dtype=f)
    Wz = np.array(Wz, dtype=f)
    alpha = f.type(alpha)
    losses = []
    diverged = converged = None
    with np.errstate(all="ignore"):
        for epoch in range(1, epochs + 1):
            H = sigmoid(dot(X, Wh))  # hidden layer results
            if output == "linear":
                Z = dot(H, Wz)  # output layer, no activation (notebook code)
            else:
                Z = sigmoid(dot(H, Wz))  # output layer, sigmoid (notebook prose)
            E = Y - Z  # how much we missed
            loss = mean(E**2)
            losses.append(loss)
            if not np.isfinite(loss) or (diverge_above is not None and loss > diverge_above):
                diverged = epoch  # recorded, then stop before this epoch's update
                break
            if output == "linear":
                dZ = E * alpha  # delta Z
            else:
                dZ = E * alpha * sigmoid_derivative(Z)
            if update == "sequential":
                Wz += dot(H.T, dZ)  # update output layer weights
                dH = dot(dZ, Wz.T) * sigmoid_derivative(H)  # delta H, with the new Wz
                Wh += dot(X.T, dH)  # update hidden layer weights
            else:
                dH = dot(dZ, Wz.T) * sigmoid_derivative(H)  # delta H, with the old Wz
                Wz += dot(H.T, dZ)
                Wh += dot(X.T, dH)
            if stop_below is not None and loss < stop_below:
                converged = epoch  # the epoch completes, then the run stops
                break
    return ReferenceResult(np.array(losses), Wh, Wz, diverged, converged)
