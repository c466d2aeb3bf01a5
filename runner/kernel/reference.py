"""The notebook's algorithm in plain NumPy, line for line: the slow, obvious truth.

Used by tests and benchmarks, and by ``runner.kernel.numpy_batch`` (its activations).
docs/numerics.md and docs/precision.md say what it fixes and why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from runner.kernel import codes as k  # constants of the shared exp only
from runner.kernel.codes import TANH_HALF, TANH_ONE, TANH_P, TANH_P32


def _consts(f32: bool):
    return (k.EXP32, k.EXP_COEFFS32) if f32 else (k.EXP64, k.EXP_COEFFS)


def _reduce(x: np.ndarray, f32: bool) -> tuple[np.ndarray, np.ndarray]:
    """kf = rint(x / ln2) and r = x - kf * ln2 (Cody-Waite), x clamped to exp's range."""
    (hi, lo, log2e, ln2_hi, ln2_lo), _ = _consts(f32)
    x = np.where(x > hi, hi, x)  # min(x, HI), a NaN kept
    x = np.where(x < lo, lo, x)
    kf = np.rint(x * log2e)
    return kf, (x - kf * ln2_hi) - kf * ln2_lo


def _em1(r: np.ndarray, f32: bool) -> np.ndarray:
    """exp(r) - 1 = r + r**2 * q(r) for |r| <= ln2/2, q by the kernel's Estrin scheme."""
    _, c = _consts(f32)
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
    return c[-2] * r + r2 * q


def _scales(kf: np.ndarray, f32: bool) -> tuple[np.ndarray, np.ndarray]:
    """2**n1 and 2**n2 with n1 + n2 = kf, built from their bits (no overflow at 1024)."""
    bias, shift = (127, 23) if f32 else (1023, 52)
    with np.errstate(invalid="ignore"):  # a NaN's kf: any integer, p carries the NaN
        n = kf.astype(np.int64)
    n1 = n >> 1
    n2 = n - n1
    ints, floats = (np.int32, np.float32) if f32 else (np.int64, np.float64)
    s1 = ((n1 + bias) << shift).astype(ints).view(floats)
    s2 = ((n2 + bias) << shift).astype(ints).view(floats)
    return s1, s2


def _float(x) -> tuple[np.ndarray, bool]:
    x = np.asarray(x)
    f32 = x.dtype == np.float32
    return (x if f32 else x.astype(np.float64)), f32


def exp(x: np.ndarray) -> np.ndarray:
    """The kernel's exp, in NumPy, same operations in the same order (within 1 ulp of
    the correctly rounded exp). A float32 array gets the float32 exp: its own
    constants and polynomial, every operation in float32; anything else float64.

    Chaotic runs amplify a last-bit difference, so kernel and reference share it.
    """
    x, f32 = _float(x)
    _, c = _consts(f32)
    kf, r = _reduce(x, f32)
    p = c[-1] + _em1(r, f32)
    s1, s2 = _scales(kf, f32)
    return (p * s1) * s2


def tanh(x: np.ndarray) -> np.ndarray:
    """tanh from runner's exp and a polynomial, within 2 ulp of np.tanh over the whole range.

    a = |x|. Below atanh(1/2): a + a * (s * P(s)), s = a * a, P by Horner. From there on,
    1 - 2 / (t + 2) with t = exp(2a) - 1 = 2**k * (exp(r) - 1) + (2**k - 1), a first
    clamped at TANH_ONE (past it tanh rounds to 1). The sign is x's; a NaN stays NaN.
    """
    x, f32 = _float(x)
    f = x.dtype.type
    one, two = f(1), f(2)
    a = np.abs(x)
    c = TANH_P32 if f32 else tuple(map(f, TANH_P))
    with np.errstate(over="ignore", invalid="ignore"):  # large |x|: the branch not taken
        s = a * a
        q = c[-1]
        for ci in c[-2::-1]:
            q = q * s + ci
        small = a + a * (s * q)
    b = np.where(a > TANH_ONE[f32], f(TANH_ONE[f32]), a)  # min(|x|, ONE), a NaN kept
    kf, r = _reduce(b + b, f32)
    s1, s2 = _scales(kf, f32)
    scale = s1 * s2  # 2**k, exact
    t = _em1(r, f32) * scale + (scale - one)
    th = np.where(a < f(TANH_HALF), small, one - two / (t + two))
    return np.copysign(th, x)


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


def relu(x: np.ndarray) -> np.ndarray:
    """max(x, 0), a NaN kept."""
    return np.where(x > 0, x, np.where(np.isnan(x), x, 0 * x))


ACTIVATIONS = ("sigmoid", "tanh", "relu", "identity")


def activate(name: str, A: np.ndarray) -> np.ndarray:
    if name == "sigmoid":
        return sigmoid(A)
    if name == "tanh":
        return tanh(A)
    if name == "relu":
        return relu(A)
    return A


def derivative(name: str, A: np.ndarray, H: np.ndarray) -> np.ndarray:
    """act'(A) from the activation's input A and output H."""
    if name == "sigmoid":
        return sigmoid_derivative(H)
    if name == "tanh":
        return 1 - H * H
    if name == "relu":
        return (A > 0).astype(A.dtype)
    return np.ones_like(A)


def scales(scaling: str, activation: str, inputs: int, hidden: int) -> tuple[float, float]:
    """(c_h, c_o): 1, 1 standard; g / sqrt(inputs), 1 / hidden mean-field (bias not counted)."""
    if scaling == "standard":
        return 1.0, 1.0
    g = np.sqrt(2.0) if activation in ("tanh", "relu") else 1.0
    return float(g / np.sqrt(inputs)), 1.0 / hidden


def init_weights(
    seed: int, inputs: int, hidden: int, outputs: int, init: tuple[float, float] = (0.0, 1.0)
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded initial weights: Wh first, then Wz, from one default_rng(seed)."""
    rng = np.random.default_rng(seed)
    lo, hi = init
    Wh = rng.uniform(lo, hi, size=(inputs, hidden))
    Wz = rng.uniform(lo, hi, size=(hidden, outputs))
    return Wh, Wz


def init_normal(
    seed: int, inputs: int, hidden: int, outputs: int, mean: float, std: float, bias: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """``init = {normal = [mean, std]}``: Wh, then Wz, from one default_rng(seed); with a bias,
    each has one more row (the last), drawn with the rest."""
    rng = np.random.default_rng(seed)
    Wh = rng.normal(mean, std, size=(inputs + bias, hidden))
    Wz = rng.normal(mean, std, size=(hidden + bias, outputs))
    return Wh, Wz


def random_data(
    samples: int, inputs: int, outputs: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``[data] random``: standard normal X, then Y, from default_rng(seed)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((samples, inputs))
    return X, rng.standard_normal((samples, outputs))


@dataclass
class ReferenceResult:
    loss: np.ndarray
    Wh: np.ndarray
    Wz: np.ndarray
    diverged_epoch: int | None
    converged_epoch: int | None
    val_loss: np.ndarray | None = None  # each epoch's loss on the held-out rows
    stopped_epoch: int | None = None  # out of patience
    accuracy: np.ndarray | None = None  # each epoch's, with accuracy=True
    val_accuracy: np.ndarray | None = None  # on the held-out rows

    def first_loss(self) -> float:
        """The loss of epoch 1."""
        return float(self.loss[0])

    def tail_mean(self, epochs: int, tail: int) -> float:
        """The mean loss over the run's epochs among the last ``tail`` of ``epochs``
        planned, summed in float64 in epoch order; the final loss if none ran."""
        total, n = 0.0, 0
        for epoch, loss in enumerate(self.loss, start=1):
            if epoch > epochs - tail:
                total += float(loss)
                n += 1
        return total / n if n else float(self.loss[-1])


def diverges(loss, first, diverge_above: float | None, diverge_factor: float) -> bool:
    """Not finite, above diverge_above, or above diverge_factor x the first loss (in
    float64; inf: no such rule)."""
    past = diverge_factor != math.inf and not float(loss) <= diverge_factor * float(first)
    above = diverge_above is not None and loss > diverge_above
    return bool(not np.isfinite(loss) or above or past)


def with_ones(M: np.ndarray, bias: bool) -> np.ndarray:
    """M with a last column of ones when there is a bias."""
    return np.hstack([M, np.ones((M.shape[0], 1), M.dtype)]) if bias else M


def _forward(Xb, Wh, Wz, c_h, c_o, activation: str, bias: bool, output: str):
    """(A, H, Hb, Z) of one forward pass."""
    A = dot(Xb, Wh) * c_h
    H = activate(activation, A)  # hidden layer results
    Hb = with_ones(H, bias)
    P = dot(Hb, Wz) * c_o
    Z = P if output == "linear" else sigmoid(P)  # notebook code / notebook prose
    return A, H, Hb, Z


def _update(Wh, Wz, Xb, Hb, dZo, dZh, act, update: str) -> None:
    """One epoch's update of both layers, in place (act: act'(A))."""
    hidden = Wh.shape[1]
    if update == "sequential":
        Wz += dot(Hb.T, dZo)  # update output layer weights
        dA = dot(dZh, Wz[:hidden].T) * act  # delta A, with the new Wz
        Wh += dot(Xb.T, dA)  # update hidden layer weights
    else:
        dA = dot(dZh, Wz[:hidden].T) * act  # delta A, with the old Wz
        Wz += dot(Hb.T, dZo)
        Wh += dot(Xb.T, dA)


def folded(f: np.dtype, scaling: str, activation: str, step: str, x_shape, y_shape,
           hidden: int, a_h: float, a_o: float):  # fmt: skip
    """(c_h, c_o, s_o, s_h) in dtype f: the scalings, and each layer's rate with every
    factor folded in, rounded after each product."""
    c_h, c_o = scales(scaling, activation, x_shape[1], hidden)
    k = 1.0 if step == "notebook" else 2.0 / (y_shape[0] * y_shape[1])
    s_o = f.type(f.type(f.type(a_o) * f.type(k)) * f.type(c_o))
    s_h = f.type(f.type(f.type(f.type(a_h) * f.type(k)) * f.type(c_o)) * f.type(c_h))
    return f.type(c_h), f.type(c_o), s_o, s_h


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
    *,
    diverge_factor: float = math.inf,
    activation: str = "sigmoid",
    bias: bool = False,
    scaling: str = "standard",
    step: str = "notebook",
    alpha_hidden: float | None = None,
    alpha_output: float | None = None,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    patience: int = 0,
    accuracy: bool = False,
) -> ReferenceResult:
    """Train one run from the given initial weights (copied, not modified).

    ``dtype="float32"`` rounds X, Y, the weights and alpha to float32 once and does
    every operation in float32 (NumPy keeps float32 with Python scalars); losses and
    weights come back as float32 values (the losses widened to float64).

    The model family (docs/numerics.md): ``activation``, ``bias`` (a last row of Wh and
    of Wz), ``scaling``, ``step`` and each layer's rate (``alpha`` by default), folded
    into s_o and s_h (``folded``); with the defaults both are alpha, exactly.

    ``validation = (Xv, Yv)``: held-out rows (``val_loss``, of the weights before each
    update); ``patience``: stop (``stopped_epoch``), after the divergence check, with the
    best weights, when the held-out loss has not improved for so many epochs;
    ``accuracy``: each epoch's share of outputs above 1/2 exactly where targets are.
    """
    f = np.dtype(dtype)
    X, Y = np.asarray(X, dtype=f), np.asarray(Y, dtype=f)
    Wh, Wz = np.array(Wh, dtype=f), np.array(Wz, dtype=f)  # copies
    hidden = Wz.shape[0] - bias
    c_h, c_o, s_o, s_h = folded(f, scaling, activation, step, X.shape, Y.shape, hidden,
                                alpha if alpha_hidden is None else alpha_hidden,
                                alpha if alpha_output is None else alpha_output)  # fmt: skip
    Xb = with_ones(X, bias)
    losses = []
    diverged = converged = stopped = None
    watch, hits = _Watch(validation, f, bias), []

    def forward(Xb):  # Wh and Wz change in place
        return _forward(Xb, Wh, Wz, c_h, c_o, activation, bias, output)

    with np.errstate(all="ignore"):
        for epoch in range(1, epochs + 1):
            A, H, Hb, Z = forward(Xb)
            E = Y - Z  # how much we missed
            loss = mean(E**2)
            losses.append(loss)
            hits.append(np.count_nonzero((Z > 0.5) == (Y > 0.5)) / Z.size)
            watch.see(epoch, forward, Wh, Wz)
            if diverges(loss, losses[0], diverge_above, diverge_factor):
                diverged = epoch  # recorded, then stop before this epoch's update
                break
            if patience and epoch - watch.best_epoch >= patience:
                stopped = epoch
                Wh, Wz = watch.best_w or (Wh, Wz)
                break
            dZo, dZh = E * s_o, E * s_h  # delta Z of each layer's step
            if output != "linear":
                dZo, dZh = dZo * sigmoid_derivative(Z), dZh * sigmoid_derivative(Z)
            _update(Wh, Wz, Xb, Hb, dZo, dZh, derivative(activation, A, H), update)
            if stop_below is not None and loss < stop_below:
                converged = epoch  # the epoch completes, then the run stops
                break
    val = np.array(watch.losses) if validation is not None else None
    acc = (np.array(hits), None if val is None else np.array(watch.hits)) if accuracy else (
        None, None)  # fmt: skip
    return ReferenceResult(np.array(losses), Wh, Wz, diverged, converged, val, stopped, *acc)


class _Watch:
    """The held-out rows' losses, and the best one's epoch and weights (none: no rows)."""

    def __init__(self, validation, f: np.dtype, bias: bool):
        self.rows = None
        if validation is not None:
            Xv, Yv = (np.asarray(v, dtype=f) for v in validation)
            self.rows = with_ones(Xv, bias), Yv
        self.losses: list = []
        self.hits: list = []
        self.best, self.best_epoch, self.best_w = np.inf, 0, None

    def see(self, epoch: int, forward, Wh: np.ndarray, Wz: np.ndarray) -> None:
        if self.rows is None:
            return
        Xv, Yv = self.rows
        Zv = forward(Xv)[3]
        loss = mean((Yv - Zv) ** 2)
        self.losses.append(loss)
        self.hits.append(np.count_nonzero((Zv > 0.5) == (Yv > 0.5)) / Zv.size)
        if loss < self.best:
            self.best, self.best_epoch, self.best_w = loss, epoch, (Wh.copy(), Wz.copy())
