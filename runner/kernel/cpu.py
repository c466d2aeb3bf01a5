"""Numba kernels: numbers in, numbers out. No I/O, no pandas.

Layout: a batch of R runs of one shape trains in one call. Weights are
``Wh[inputs, hidden, R]`` and ``Wz[hidden, outputs, R]`` (each one row more with a
bias): the run index is the innermost, contiguous axis, so every hot loop runs across
runs and vectorises. Runs are processed in tiles of up to ``TILE`` runs
(``runner.kernel.tiles`` picks the width per shape) that stay in cache for all epochs.

Variants: one source, ``_train``, and one compiled function per variant (hidden
activation, output layer, update order, fastmath; ``kernel``), whose choices are
constants when Numba compiles it, so each holds only its own branches. Each is made on
first use and compiled (or loaded from Numba's cache, an entry of its own) on its first
call with a dtype; the arrays' dtype (float64 or float32) picks the exp's constants and
polynomial at compile time (see docs/precision.md). The rest of the model family is
numbers of the call: a bias is a row of ones in X (given so) and a hidden unit of
constant 1 (the scratch's shapes say so), and the scalings and learning rates are the
factors ``c_h``, ``c_o`` and the per-run steps ``s_o``, ``s_h`` (docs/numerics.md).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numba import njit

from runner.kernel.activations import HIDDEN
from runner.kernel.codes import (  # noqa: F401  (re-exported: the kernel's numbers)
    ASTATS,
    CONVERGED,
    DIVERGED,
    EPOCHS_RUN,
    FINAL_LOSS,
    FINAL_VAL_LOSS,
    FIRST_LOSS,
    FSTATS,
    MIN_EPOCH,
    MIN_LOSS,
    MIN_VAL_EPOCH,
    MIN_VAL_LOSS,
    RAN_ALL,
    STATUS,
    STOPPED_EARLY,
    TAIL_MEAN,
    TILE,
    VSTATS,
)
from runner.kernel.exp import sigmoid4, sigmoid4_cheap
from runner.kernel.lanes import (
    _converged,
    _finish,
    _hits,
    _losses,
    _out_of_patience,
    _start,
    _val_losses,
    slot_of,  # noqa: F401  (re-exported)
)
from runner.kernel.numba_ext import (
    FASTMATH,
    JIT,
    clone_function,
    compiler_for,
    has_cache_index,
    vector_width,
)
from runner.kernel.sums import delta_update_wh, sample_delta, sum_rows, update_wz


class Scratch(NamedTuple):
    """A tile's own arrays (``T`` lanes): weights, activations, deltas, accumulators
    and per-lane statistics. The one definition of their order (see ``scratch``).
    ``ni`` counts X's ones column and ``nb`` is hidden + 1 with a bias, else hidden."""

    wh: np.ndarray  # (ni, hidden, T)
    wz: np.ndarray  # (nb, outputs, T)
    a: np.ndarray  # (T,) s_o, the output layer's step; 0 on idle lanes
    ah: np.ndarray  # (T,) s_h, the hidden layer's step; 0 on idle lanes
    act: np.ndarray  # (T,) bool, lane is training
    h: np.ndarray  # (n, nb, T) the bias unit, if any, is 1
    dh: np.ndarray  # (2, hidden, T) two samples' dA (``sums.delta_update_wh``)
    dz: np.ndarray  # (n, outputs, T) dZ of the output layer's step
    dzh: np.ndarray  # (n, outputs, T) dZ of the hidden layer's step
    accw: np.ndarray  # (hidden * T,)
    accwh: np.ndarray  # (ni, hidden * T)
    acc: np.ndarray  # (T,)
    zs: np.ndarray  # (T,)
    sq: np.ndarray  # (T,) sum of squared errors, then the epoch's loss
    min_loss: np.ndarray  # (T,) float64
    last_loss: np.ndarray  # (T,) float64
    min_epoch: np.ndarray  # (T,) int64
    last: np.ndarray  # (T,) int64
    status: np.ndarray  # (T,) int64
    first_loss: np.ndarray  # (T,) float64
    tail_sum: np.ndarray  # (T,) float64, the losses of the tail's epochs
    tail_n: np.ndarray  # (T,) int64, the tail's epochs run
    hv: np.ndarray  # (nb, T) one held-out row's hidden layer; the bias unit, if any, is 1
    vsq: np.ndarray  # (T,) held-out sum of squared errors, then the epoch's held-out loss
    vlast: np.ndarray  # (T,) float64, the last held-out loss
    vmin: np.ndarray  # (T,) float64, the least held-out loss
    vmin_epoch: np.ndarray  # (T,) int64, its epoch
    bwh: np.ndarray  # (ni, hidden, T) the weights of the least held-out loss (patience),
    bwz: np.ndarray  # (nb, outputs, T) else (0, 0, T)
    hit: np.ndarray  # (T,) int64, the epoch's right answers (accuracy) on the training rows
    vhit: np.ndarray  # (T,) int64, on the held-out rows


class FastScratch(Scratch):
    """Scratch of a fastmath tile: its type selects the fastmath kernel and exp."""

    __slots__ = ()


def scratch(
    n: int, ni: int, nh: int, no: int, T: int, dtype=np.float64, fast: bool = False,
    bias: bool = False, best: bool = False,
) -> Scratch:  # fmt: skip
    """Scratch arrays of one tile of T lanes, training in ``dtype``; ``ni`` is the number
    of X's columns (the ones column included), ``bias`` adds the constant hidden unit,
    ``best`` keeps the weights of each run's least held-out loss (``patience``)."""
    f, f8, i8 = np.dtype(dtype), np.float64, np.int64
    nb = nh + bool(bias)
    kb = (ni, nh, nb, no) if best else (0, 0, 0, 0)
    return (FastScratch if fast else Scratch)(
        np.empty((ni, nh, T), f), np.empty((nb, no, T), f), np.empty(T, f), np.empty(T, f),
        np.empty(T, np.bool_), np.empty((n, nb, T), f), np.empty((2, nh, T), f),
        np.empty((n, no, T), f), np.empty((n, no, T), f), np.empty(nh * T, f),
        np.empty((ni, nh * T), f), np.empty(T, f), np.empty(T, f),
        np.empty(T, f), np.empty(T, f8), np.empty(T, f8),
        np.empty(T, i8), np.empty(T, i8), np.empty(T, i8),
        np.empty(T, f8), np.empty(T, f8), np.empty(T, i8),
        np.empty((nb, T), f), np.empty(T, f), np.empty(T, f8), np.empty(T, f8),
        np.empty(T, i8), np.empty((kb[0], kb[1], T), f), np.empty((kb[2], kb[3], T), f),
        np.zeros(T, i8), np.zeros(T, i8),
    )  # fmt: skip


def _train_pass(Xf, Y, whf, hf, h2, wz2, c_h, c_o, count_hits, w):
    """The epoch's forward pass on the training rows, its sum of squared errors per lane
    (``w.sq``), the output deltas (dZ is not needed for the loss) and, with ``count_hits``,
    the right answers (``w.hit``). Cloned with each variant's choices, as ``_train``."""
    a, ah, dz, dzh, accw, acc, zs, sq = w.a, w.ah, w.dz, w.dzh, w.accw, w.acc, w.zs, w.sq
    n, no = Y.shape
    ni, nh, T = w.wh.shape
    nb = w.wz.shape[0]
    q, T4 = nh * T // 4, T // 4  # T is a multiple of 4
    zero, one, half = a.dtype.type(0), a.dtype.type(1), a.dtype.type(0.5)
    for t in range(T):
        sq[t] = zero
        w.hit[t] = 0
    for s in range(n):
        sum_rows(accw, Xf, s * ni, 1, whf, 0, 1, ni)  # Xb[s] @ Wh
        for u in range(q):
            hf[s, u], hf[s, q + u], hf[s, 2 * q + u], hf[s, 3 * q + u] = act4(
                accw[u] * c_h, accw[q + u] * c_h, accw[2 * q + u] * c_h, accw[3 * q + u] * c_h,
            )  # fmt: skip
        for o in range(no):
            sum_rows(acc, h2, s * nb, 1, wz2, o, no, nb)  # Hb[s] @ Wz[:, o]
            y = Y[s, o]
            if SIGMOID_OUT:
                for t in range(T4):
                    zs[t], zs[T4 + t], zs[2 * T4 + t], zs[3 * T4 + t] = sigmoid4(
                        acc[t] * c_o, acc[T4 + t] * c_o, acc[2 * T4 + t] * c_o,
                        acc[3 * T4 + t] * c_o,
                    )  # fmt: skip
                for t in range(T):
                    zt = zs[t]
                    e = y - zt
                    sq[t] += e * e
                    dz[s, o, t] = (e * a[t]) * (zt * (one - zt))
                    dzh[s, o, t] = (e * ah[t]) * (zt * (one - zt))
                if count_hits:
                    for t in range(T):
                        w.hit[t] += (zs[t] > half) == (y > half)
            else:
                for t in range(T):
                    e = y - acc[t] * c_o
                    sq[t] += e * e
                    dz[s, o, t] = e * a[t]
                    dzh[s, o, t] = e * ah[t]


def _held_out_pass(Xv, Yv, whf, wz2, c_h, c_o, count_hits, w):
    """The epoch's sum of squared errors on the held-out rows, per lane, into ``w.vsq`` (and
    the right answers into ``w.vhit``): the training rows' forward pass and error, with no
    deltas. Cloned with each variant's choices, as ``_train`` (see ``kernel``)."""
    accw, acc, zs, vsq = w.accw, w.acc, w.zs, w.vsq
    ni, nh, T = w.wh.shape
    nb, no = w.wz.shape[0], w.wz.shape[1]
    q, T4 = nh * T // 4, T // 4
    nv = Xv.shape[0]
    Xvf = Xv.reshape(nv * ni)
    hvf = w.hv.reshape(nb * T)
    half = vsq.dtype.type(0.5)
    for t in range(T):
        vsq[t] = vsq.dtype.type(0)
        w.vhit[t] = 0
    for s in range(nv):
        sum_rows(accw, Xvf, s * ni, 1, whf, 0, 1, ni)  # Xv[s] @ Wh
        for u in range(q):
            hvf[u], hvf[q + u], hvf[2 * q + u], hvf[3 * q + u] = act4(
                accw[u] * c_h, accw[q + u] * c_h, accw[2 * q + u] * c_h, accw[3 * q + u] * c_h,
            )  # fmt: skip
        for o in range(no):
            sum_rows(acc, w.hv, 0, 1, wz2, o, no, nb)  # Hv[s] @ Wz[:, o]
            y = Yv[s, o]
            if SIGMOID_OUT:
                for t in range(T4):
                    zs[t], zs[T4 + t], zs[2 * T4 + t], zs[3 * T4 + t] = sigmoid4(
                        acc[t] * c_o, acc[T4 + t] * c_o, acc[2 * T4 + t] * c_o,
                        acc[3 * T4 + t] * c_o,
                    )  # fmt: skip
                for t in range(T):
                    e = y - zs[t]
                    vsq[t] += e * e
                if count_hits:
                    for t in range(T):
                        w.vhit[t] += (zs[t] > half) == (y > half)
            else:
                for t in range(T):
                    e = y - acc[t] * c_o
                    vsq[t] += e * e


@njit(inline="always", **JIT)
def _no_held_out_pass(Xv, Yv, whf, wz2, c_h, c_o, count_hits, w):
    return None


@njit(inline="always", **JIT)
def _no_val_losses(epoch, every, patience, val_out, nv, r0, nt, w):
    return None


@njit(inline="always", **JIT)
def _no_patience(Wh, Wz, epoch, patience, r0, nt, w):
    return 0


# A variant without held-out rows: its held-out pass, held-out losses and patience
_NO_HELD_OUT = (_no_held_out_pass, _no_val_losses, _no_patience)


# A variant's choices: globals of its own copy of ``_train`` (see ``kernel``), so
# constants when Numba compiles that copy, which holds only its own branches.
SIGMOID_OUT = False
SEQUENTIAL = True
act4 = sigmoid4  # the hidden activation, four at a time
_delta_update_wh = delta_update_wh  # with act4's derivative (``_delta``)
_held_out = _held_out_pass  # with the variant's choices (see ``kernel``)
_train_rows = _train_pass  # with the variant's choices


def _train(
    X, Y, Xv, Yv, Wh, Wz, s_o, s_h, c_h, c_o, epochs, every, tail, stop_below,
    diverge_above, diverge_factor, patience, loss_out, val_out, istats, fstats, vstats,
    count_hits, hits, w,
):  # fmt: skip
    """Train R runs in place, tile by tile, in the scratch ``w`` of one tile of T lanes.

    Every hot loop runs across the lanes (or across hidden units and lanes at
    once, ``u = j * T + t``) with no branch inside, so LLVM vectorises it. A run
    that stops hands its weights back to ``Wh``, ``Wz`` at once and its lane is
    reset to zero weights and zero steps, where it idles, so the updates need no
    mask; padding lanes (``nt <= t < T``) idle from the start. Held-out rows: Xv, Yv.
    """
    n, ni = X.shape
    no = Y.shape[1]
    nh, nb = w.wh.shape[1], w.wz.shape[0]  # nb = nh + 1 with a bias unit
    R, T = s_o.shape[0], w.a.shape[0]
    Xf = X.reshape(n * ni)  # X[s, k] = Xf[s * ni + k]
    whf = w.wh.reshape(ni, nh * T)
    hf = w.h.reshape(n, nb * T)
    h2 = w.h.reshape(n * nb, T)  # h[s, j] = h2[s * nb + j]
    wz2 = w.wz.reshape(nb * no, T)  # wz[j, o] = wz2[j * no + o]
    nv = Xv.shape[0]
    for r0 in range(0, R, T):
        nt = min(T, R - r0)
        _start(Wh, Wz, s_o, s_h, r0, nt, w)
        n_active = nt
        for epoch in range(1, epochs + 1):
            if n_active == 0:
                break
            _train_rows(Xf, Y, whf, hf, h2, wz2, c_h, c_o, count_hits, w)
            if nv > 0:  # the held-out rows: the same forward pass and error, no deltas
                _held_out(Xv, Yv, whf, wz2, c_h, c_o, count_hits, w)
                _val_losses(epoch, every, patience, val_out, nv, r0, nt, w)
            if count_hits:
                _hits(epoch, every, hits, nv, r0, nt, w)
            n_active -= _losses(Wh, Wz, epoch, every, epoch > epochs - tail, diverge_above,
                                diverge_factor, loss_out, r0, nt, w)  # fmt: skip
            if patience > 0:  # no better held-out loss for patience epochs: stop, best kept
                n_active -= _out_of_patience(Wh, Wz, epoch, patience, r0, nt, w)
            if SEQUENTIAL:  # dA from the updated Wz
                update_wz(w)
                _delta_update_wh(X, w)
            else:  # Wz's update needs H and dZ only
                _delta_update_wh(X, w)
                update_wz(w)
            if stop_below > -np.inf:  # convergence (the epoch's update is kept)
                n_active -= _converged(Wh, Wz, stop_below, r0, nt, w)
        _finish(Wh, Wz, istats, fstats, vstats, nv > 0, r0, nt, w)


def variant_name(
    sigmoid_out: bool, sequential: bool, fastmath: bool, activation: str = "sigmoid",
    held_out: bool = False,
) -> str:  # fmt: skip
    """The name of a variant's function (its own Numba cache entry)."""
    output = "sigmoid" if sigmoid_out else "linear"
    update = "sequential" if sequential else "simultaneous"
    name = f"_train_{activation}_{output}_{update}" + ("_fastmath" if fastmath else "")
    return name + ("_held_out" if held_out else "")


_KERNELS: dict[tuple[bool, bool, bool, str, bool], Any] = {}
_DELTAS: dict[str, Any] = {}


# The modules the CPU kernel is compiled from (tests/test_numba_ext.py checks that they
# import no other module of runner.kernel).
KERNEL_SOURCES = ("activations", "codes", "cpu", "exp", "family", "lanes", "numba_ext", "sums")


def source_tag() -> str:
    """A hash of the kernel's sources (``KERNEL_SOURCES``), in every variant's name:
    Numba's cache checks only the file that defines a function (this one), so without it
    an edit of ``sums.py`` or ``exp.py`` would load the kernel compiled before."""
    global _SOURCE_TAG
    if _SOURCE_TAG is None:
        h = hashlib.sha1()
        for name in KERNEL_SOURCES:
            h.update((Path(__file__).parent / f"{name}.py").read_bytes())
        _SOURCE_TAG = h.hexdigest()[:10]
    return _SOURCE_TAG


_SOURCE_TAG: str | None = None


def _delta(activation: str):
    """``sums.delta_update_wh`` with the activation's derivative as a constant."""
    fn = _DELTAS.get(activation)
    if fn is None:
        one = clone_function(sample_delta, f"sample_delta_{activation}",
                             dact=HIDDEN[activation][2])  # fmt: skip
        py = clone_function(delta_update_wh, f"delta_update_wh_{activation}",
                            _sample_delta=njit(inline="always", **JIT)(one))  # fmt: skip
        fn = _DELTAS[activation] = njit(inline="always", **JIT)(py)
    return fn


def kernel(
    sigmoid_out: bool, sequential: bool, fastmath: bool, activation: str = "sigmoid",
    held_out: bool = False,
):  # fmt: skip
    """The batch trainer of one variant: ``_train`` with the variant's choices as
    constants (and fastmath's flags and sigmoid), made on first use; Numba compiles
    it (or loads it from its cache) on the first call with each dtype. ``held_out``:
    with the held-out rows' pass and patience (without, they compile to nothing)."""
    if activation not in HIDDEN:
        raise ValueError(f"activation must be one of {tuple(HIDDEN)}, got {activation!r}")
    key = (bool(sigmoid_out), bool(sequential), bool(fastmath), activation, bool(held_out))
    fn = _KERNELS.get(key)
    if fn is None:
        exact, fast, _ = HIDDEN[activation]
        choices = dict(SIGMOID_OUT=key[0], sigmoid4=sigmoid4_cheap if key[2] else sigmoid4,
                       act4=fast if key[2] else exact)  # fmt: skip
        width = vector_width()  # 512 bits: a cache entry of its own
        name = f"{variant_name(*key)}_{source_tag()}" + ("_zmm" if width == 512 else "")
        held, rows = (njit(inline="always", **JIT)(clone_function(f, f"{name}_{f.__name__}",
                                                                  **choices))
                      for f in (_held_out_pass, _train_pass))  # fmt: skip
        if not key[4]:  # no held-out rows: their steps compile to nothing
            held, choices["_val_losses"], choices["_out_of_patience"] = _NO_HELD_OUT
        py = clone_function(
            _train, name, SEQUENTIAL=key[1], _delta_update_wh=_delta(activation),
            _held_out=held, _train_rows=rows, **choices,
        )  # fmt: skip
        flags = {**JIT, "fastmath": FASTMATH} if key[2] else JIT
        fn = _KERNELS[key] = njit(pipeline_class=compiler_for(width), **flags)(py)
    return fn


def is_cached(
    sigmoid_out: bool, sequential: bool, fastmath: bool, activation: str = "sigmoid",
    held_out: bool = False,
) -> bool:  # fmt: skip
    """Whether this variant was compiled before on this machine (Numba's cache has it)."""
    return has_cache_index(kernel(sigmoid_out, sequential, fastmath, activation, held_out))


def cache_stats() -> dict[str, int]:
    """Numba cache hits and misses of the variants used in this process."""
    hits = sum(sum(k.stats.cache_hits.values()) for k in _KERNELS.values())
    misses = sum(sum(k.stats.cache_misses.values()) for k in _KERNELS.values())
    return {"hits": hits, "misses": misses}


def train_batch(
    X, Y, Wh, Wz, s_o, s_h, c_h, c_o, epochs, sigmoid_out, sequential, every,
    stop_below, diverge_above, loss_out, istats, fstats, w, activation="sigmoid", tail=1,
    diverge_factor=math.inf, held_out=None, patience=0, metrics=None,
):  # fmt: skip
    """Train R runs in place, tile by tile, in the scratch ``w`` of one tile.

    X (n, inputs [+1]), Y (n, outputs), Wh (inputs [+1], hidden, R), Wz (hidden [+1],
    outputs, R), s_o and s_h (R,) the steps of the output and hidden layers (alpha with
    every factor folded in, docs/numerics.md), c_h and c_o the scalings, all of the
    training dtype (that of w). With a bias, X's last column is ones and w was made with
    ``bias``. Writes the loss of each recorded epoch to ``loss_out[slot, r]``, and per
    run ``istats[r] = (epochs_run, min_epoch, status)`` and
    ``fstats[r] = (final_loss, min_loss, first_loss, tail_mean)``, the mean over the run's
    epochs among the last ``tail`` planned (runner.kernel.codes). ``every = 0`` records
    no losses. Final weights are left in Wh, Wz.
    A ``FastScratch`` w trains in fastmath.

    ``held_out = (Xv, Yv, val_out, vstats)``: rows that are not trained on, laid out as
    X and Y; each recorded epoch's loss on them goes to ``val_out`` as the losses go to
    ``loss_out``, and per run ``vstats[r] = (final_val_loss, min_val_loss,
    min_val_epoch)``. ``patience > 0`` (with held-out rows, and w made with ``best``)
    stops a run whose held-out loss has not improved for that many epochs, with the
    weights of its least one, status STOPPED_EARLY. ``metrics = (acc_out, val_acc_out,
    astats)``, float64, with a sigmoid output: each recorded epoch's accuracy (outputs
    above 1/2 where targets are, over every output of every row) on the training and the
    held-out rows, and per run ``astats[r] = (final_accuracy, final_val_accuracy)``.
    """
    fn = kernel(sigmoid_out, sequential, isinstance(w, FastScratch), activation,
                held_out is not None)  # fmt: skip
    f = w.a.dtype.type
    c_h, c_o = f(c_h), f(c_o)
    if held_out is None:
        held_out = no_held_out(X, Y, loss_out.dtype)
    Xv, Yv, val_out, vstats = held_out
    if patience > 0 and (Xv.shape[0] == 0 or w.bwh.shape[0] != w.wh.shape[0]):
        raise ValueError("patience needs held-out rows and a scratch made with best=True")
    count_hits = metrics is not None
    if not count_hits:
        metrics = (np.empty((1, 1)), np.empty((1, 1)), np.empty((1, ASTATS)))
    fn(X, Y, Xv, Yv, Wh, Wz, s_o, s_h, c_h, c_o, epochs, every, tail, stop_below,
       diverge_above, float(diverge_factor), int(patience), loss_out, val_out, istats, fstats,
       vstats, count_hits, metrics, w)  # fmt: skip


def no_held_out(X, Y, loss_dtype=np.float64):
    """``train_batch``'s ``held_out`` with no rows (arrays of its own, as the kernel's
    arguments must not overlap)."""
    return (np.empty((0, X.shape[1]), X.dtype), np.empty((0, Y.shape[1]), Y.dtype),
            np.empty((1, 1), loss_dtype), np.empty((1, VSTATS)))  # fmt: skip
