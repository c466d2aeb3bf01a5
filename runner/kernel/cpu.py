"""Numba kernels: numbers in, numbers out. No I/O, no pandas.

Layout: a batch of R runs of one shape trains in one call. Weights are
``Wh[inputs, hidden, R]`` and ``Wz[hidden, outputs, R]``: the run index is the
innermost, contiguous axis, so every hot loop runs across runs and vectorises.
Runs are processed in tiles of up to ``TILE`` runs (``runner.kernel.tiles`` picks the
width per shape) that stay in cache for all epochs.

Variants: one source, ``_train``, and one compiled function per variant (output
layer, update order, fastmath; ``kernel``), whose choices are constants when Numba
compiles it, so each holds only its own branches. Each is made on first use and
compiled (or loaded from Numba's cache, an entry of its own) on its first call with
a dtype; the arrays' dtype (float64 or float32) picks the exp's constants and
polynomial at compile time (see docs/precision.md).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from numba import njit
from numba.extending import overload

from runner.kernel.codes import (  # noqa: F401  (re-exported: the kernel's numbers)
    CONVERGED,
    DIVERGED,
    EPOCHS_RUN,
    FINAL_LOSS,
    MIN_EPOCH,
    MIN_LOSS,
    RAN_ALL,
    STATUS,
    TILE,
)
from runner.kernel.exp import sigmoid4, sigmoid4_cheap
from runner.kernel.numba_ext import (
    FASTMATH,
    JIT,
    NoAliasCompiler,
    clone_function,
    has_cache_index,
)


@njit(**JIT)
def slot_of(epoch, every):
    """Row of ``loss_out`` for a recorded epoch (epoch 1 and multiples of every)."""
    if every == 1:
        return epoch - 1
    return epoch // every


class Scratch(NamedTuple):
    """A tile's own arrays (``T`` lanes): weights, activations, deltas, accumulators
    and per-lane statistics. The one definition of their order (see ``scratch``)."""

    wh: np.ndarray  # (inputs, hidden, T)
    wz: np.ndarray  # (hidden, outputs, T)
    a: np.ndarray  # (T,) alpha, 0 on idle lanes
    act: np.ndarray  # (T,) bool, lane is training
    h: np.ndarray  # (n, hidden, T)
    dh: np.ndarray  # (n, hidden, T)
    dz: np.ndarray  # (n, outputs, T)
    accw: np.ndarray  # (hidden * T,)
    accwh: np.ndarray  # (inputs, hidden * T)
    acc: np.ndarray  # (T,)
    zs: np.ndarray  # (T,)
    sq: np.ndarray  # (T,) sum of squared errors, then the epoch's loss
    min_loss: np.ndarray  # (T,) float64
    last_loss: np.ndarray  # (T,) float64
    min_epoch: np.ndarray  # (T,) int64
    last: np.ndarray  # (T,) int64
    status: np.ndarray  # (T,) int64


class FastScratch(Scratch):
    """Scratch of a fastmath tile: its type selects the fastmath kernel and exp."""

    __slots__ = ()


def scratch(
    n: int, ni: int, nh: int, no: int, T: int, dtype=np.float64, fast: bool = False
) -> Scratch:
    """Scratch arrays of one tile of T lanes, training in ``dtype``."""
    f, f8, i8 = np.dtype(dtype), np.float64, np.int64
    return (FastScratch if fast else Scratch)(
        np.empty((ni, nh, T), f), np.empty((nh, no, T), f), np.empty(T, f),
        np.empty(T, np.bool_), np.empty((n, nh, T), f), np.empty((n, nh, T), f),
        np.empty((n, no, T), f), np.empty(nh * T, f), np.empty((ni, nh * T), f),
        np.empty(T, f), np.empty(T, f),
        np.empty(T, f), np.empty(T, f8), np.empty(T, f8),
        np.empty(T, i8), np.empty(T, i8), np.empty(T, i8),
    )  # fmt: skip


@njit(inline="always", **JIT)
def _sum_rows(acc, C, c0, cs, M, m0, ms, count):
    """acc[u] = sum over i < count of C(i) * M[m0 + i * ms, u], where C(i) is the scalar
    ``C[c0 + i * cs]`` (C 1-D) or the lane value ``C[c0 + i * cs, u]`` (C 2-D).

    Summed left to right from 0, as the reference's dot does: ((0 + p0) + p1) + p2 ...,
    two terms a pass (fewer loads and stores of acc; the same roundings)."""
    L = acc.shape[0]
    zero = acc.dtype.type(0)
    if count == 1:
        for u in range(L):
            acc[u] = zero + _at(C, c0, u) * M[m0, u]
    else:
        c1, m1 = c0 + cs, m0 + ms
        for u in range(L):
            acc[u] = (zero + _at(C, c0, u) * M[m0, u]) + _at(C, c1, u) * M[m1, u]
    i = 2
    while i + 1 < count:
        ca, ma = c0 + i * cs, m0 + i * ms
        cb, mb = ca + cs, ma + ms
        for u in range(L):
            acc[u] = (acc[u] + _at(C, ca, u) * M[ma, u]) + _at(C, cb, u) * M[mb, u]
        i += 2
    if i < count:
        ca, ma = c0 + i * cs, m0 + i * ms
        for u in range(L):
            acc[u] += _at(C, ca, u) * M[ma, u]


@njit(inline="always", **JIT)
def _sum_outer(acc, X, D, n):
    """acc[k, u] = sum over s < n of X[s, k] * D[s, u]: the same sums, in the same
    order, as ``_sum_rows`` for each k, but sample by sample for all k at once, so
    that D (samples x hidden x lanes, often past the cache) is read once, not once
    per input."""
    ni, L = acc.shape
    zero = acc.dtype.type(0)
    for k in range(ni):
        x0 = X[0, k]
        if n == 1:
            for u in range(L):
                acc[k, u] = zero + x0 * D[0, u]
        else:
            x1 = X[1, k]
            for u in range(L):
                acc[k, u] = (zero + x0 * D[0, u]) + x1 * D[1, u]
    s = 2
    while s + 1 < n:
        for k in range(ni):
            x0, x1 = X[s, k], X[s + 1, k]
            for u in range(L):
                acc[k, u] = (acc[k, u] + x0 * D[s, u]) + x1 * D[s + 1, u]
        s += 2
    if s < n:
        for k in range(ni):
            x0 = X[s, k]
            for u in range(L):
                acc[k, u] += x0 * D[s, u]


def _at(C, i, u):
    """C[i] for a 1-D C (a coefficient shared by every u), C[i, u] for a 2-D C."""


@overload(_at, jit_options=JIT)
def _at_impl(C, i, u):
    if C.ndim == 1:
        return lambda C, i, u: C[i]
    return lambda C, i, u: C[i, u]


# A variant's choices: globals of its own copy of ``_train`` (see ``kernel``), so
# constants when Numba compiles that copy, which holds only its own branches.
SIGMOID_OUT = False
SEQUENTIAL = True


def _train(
    X, Y, Wh, Wz, alpha, epochs, every, stop_below, diverge_above, loss_out, istats, fstats, w
):  # fmt: skip
    """Train R runs in place, tile by tile, in the scratch ``w`` of one tile of T lanes.

    Every hot loop runs across the lanes (or across hidden units and lanes at
    once, ``u = j * T + t``) with no branch inside, so LLVM vectorises it. A run
    that stops hands its weights back to ``Wh``, ``Wz`` at once and its lane is
    reset to zero weights and zero alpha, where it idles, so the updates need no
    mask; padding lanes (``nt <= t < T``) idle from the start.
    """
    a, dz, accw, acc, zs, sq = w.a, w.dz, w.accw, w.acc, w.zs, w.sq
    n, ni = X.shape
    no = Y.shape[1]
    nh = w.wh.shape[1]
    R, T = alpha.shape[0], a.shape[0]
    m = nh * T
    q, T4 = m // 4, T // 4  # T is a multiple of 4
    Xf = X.reshape(n * ni)  # X[s, k] = Xf[s * ni + k]
    whf = w.wh.reshape(ni, m)
    hf = w.h.reshape(n, m)
    h2 = w.h.reshape(n * nh, T)  # h[s, j] = h2[s * nh + j]
    wz2 = w.wz.reshape(nh * no, T)  # wz[j, o] = wz2[j * no + o]
    zero, one = a.dtype.type(0), a.dtype.type(1)  # of the training dtype
    for r0 in range(0, R, T):
        nt = min(T, R - r0)
        _start(Wh, Wz, alpha, r0, nt, w)
        n_active = nt
        for epoch in range(1, epochs + 1):
            if n_active == 0:
                break
            # forward pass, error and output delta (dZ is not needed for the loss)
            for t in range(T):
                sq[t] = zero
            for s in range(n):
                _sum_rows(accw, Xf, s * ni, 1, whf, 0, 1, ni)  # X[s] @ Wh
                for u in range(q):
                    hf[s, u], hf[s, q + u], hf[s, 2 * q + u], hf[s, 3 * q + u] = sigmoid4(
                        accw[u], accw[q + u], accw[2 * q + u], accw[3 * q + u]
                    )
                for o in range(no):
                    _sum_rows(acc, h2, s * nh, 1, wz2, o, no, nh)  # H[s] @ Wz[:, o]
                    y = Y[s, o]
                    if SIGMOID_OUT:
                        for t in range(T4):
                            zs[t], zs[T4 + t], zs[2 * T4 + t], zs[3 * T4 + t] = sigmoid4(
                                acc[t], acc[T4 + t], acc[2 * T4 + t], acc[3 * T4 + t]
                            )
                        for t in range(T):
                            zt = zs[t]
                            e = y - zt
                            sq[t] += e * e
                            dz[s, o, t] = (e * a[t]) * (zt * (one - zt))
                    else:
                        for t in range(T):
                            e = y - acc[t]
                            sq[t] += e * e
                            dz[s, o, t] = e * a[t]
            n_active -= _losses(Wh, Wz, epoch, every, diverge_above, loss_out, r0, nt, w)
            if SEQUENTIAL:  # dH from the updated Wz
                _update_wz(w)
                _hidden_delta(w.h, dz, w.wz, w.dh)
            else:
                _hidden_delta(w.h, dz, w.wz, w.dh)
                _update_wz(w)
            _update_wh(X, w)
            if stop_below > -np.inf:  # convergence (the epoch's update is kept)
                n_active -= _converged(Wh, Wz, stop_below, r0, nt, w)
        _finish(Wh, Wz, istats, fstats, r0, nt, w)


@njit(inline="always", **JIT)
def _start(Wh, Wz, alpha, r0, nt, w):
    """Load runs ``r0 .. r0 + nt`` into the tile's lanes; the others idle from the start."""
    wh, wz, a = w.wh, w.wz, w.a
    ni, nh, T = wh.shape
    no = wz.shape[1]
    zero = a.dtype.type(0)
    for t in range(T):
        wt = t < nt
        w.act[t] = wt
        a[t] = alpha[r0 + t] if wt else zero
        w.min_loss[t] = np.inf
        w.last_loss[t] = np.nan
        w.min_epoch[t] = 0
        w.last[t] = 0
        w.status[t] = RAN_ALL
    for k in range(ni):
        for j in range(nh):
            for t in range(T):
                wh[k, j, t] = Wh[k, j, r0 + t] if t < nt else zero
    for j in range(nh):
        for o in range(no):
            for t in range(T):
                wz[j, o, t] = Wz[j, o, r0 + t] if t < nt else zero


@njit(inline="always", **JIT)
def _losses(Wh, Wz, epoch, every, diverge_above, loss_out, r0, nt, w):
    """The epoch's losses: recorded, best and last kept; a diverged run stops before its
    update. Returns how many runs stopped."""
    a, act, sq, status = w.a, w.act, w.sq, w.status
    min_loss, last_loss, min_epoch, last = w.min_loss, w.last_loss, w.min_epoch, w.last
    size = a.dtype.type(w.dz.shape[0] * w.dz.shape[1])
    row = slot_of(epoch, every)
    n_stop = 0
    for t in range(a.shape[0]):
        on = act[t]
        loss = sq[t] / size
        sq[t] = loss
        last[t] = epoch if on else last[t]
        last_loss[t] = loss if on else last_loss[t]
        better = on and loss < min_loss[t]
        min_loss[t] = loss if better else min_loss[t]
        min_epoch[t] = epoch if better else min_epoch[t]
        bad = on and not (math.isfinite(loss) and loss <= diverge_above)
        status[t] = DIVERGED if bad else status[t]
        n_stop += bad
    if epoch == 1 or epoch % every == 0:
        for t in range(nt):
            if act[t]:
                loss_out[row, r0 + t] = sq[t]
    if n_stop:
        for t in range(nt):
            if act[t] and status[t] == DIVERGED:
                _retire(Wh, Wz, w.wh, w.wz, a, act, r0, t)
    return n_stop


@njit(inline="always", **JIT)
def _update_wz(w):
    """Wz += H.T @ dZ."""
    h, dz, wz, acc = w.h, w.dz, w.wz, w.acc
    n, nh, T = h.shape
    no = dz.shape[1]
    h2 = h.reshape(n * nh, T)
    dz2 = dz.reshape(n * no, T)
    for j in range(nh):
        for o in range(no):
            _sum_rows(acc, h2, j, nh, dz2, o, no, n)  # H[:, j] . dZ[:, o]
            for t in range(T):
                wz[j, o, t] += acc[t]


@njit(inline="always", **JIT)
def _update_wh(X, w):
    """Wh += X.T @ dH, across hidden units and lanes at once."""
    n, nh, T = w.h.shape
    ni, m = X.shape[1], nh * T
    whf = w.wh.reshape(ni, m)
    _sum_outer(w.accwh, X, w.dh.reshape(n, m), n)
    for k in range(ni):
        for u in range(m):
            whf[k, u] += w.accwh[k, u]


@njit(inline="always", **JIT)
def _converged(Wh, Wz, stop_below, r0, nt, w):
    """Stop the runs whose loss fell below stop_below; returns how many."""
    n_stop = 0
    for t in range(nt):
        if w.act[t] and w.last_loss[t] < stop_below:
            w.status[t] = CONVERGED
            _retire(Wh, Wz, w.wh, w.wz, w.a, w.act, r0, t)
            n_stop += 1
    return n_stop


@njit(inline="always", **JIT)
def _finish(Wh, Wz, istats, fstats, r0, nt, w):
    """Hand the tile's runs back: weights, then per-run statistics."""
    for t in range(nt):
        if w.act[t]:
            _retire(Wh, Wz, w.wh, w.wz, w.a, w.act, r0, t)
        istats[r0 + t, EPOCHS_RUN] = w.last[t]
        istats[r0 + t, MIN_EPOCH] = w.min_epoch[t]
        istats[r0 + t, STATUS] = w.status[t]
        fstats[r0 + t, FINAL_LOSS] = w.last_loss[t]
        fstats[r0 + t, MIN_LOSS] = w.min_loss[t]


@njit(inline="always", **JIT)
def _retire(Wh, Wz, wh, wz, a, act, r0, t):
    """Stop lane t: hand its weights back to the batch, then let the lane idle."""
    ni, nh, _ = wh.shape
    no = wz.shape[1]
    for k in range(ni):
        for j in range(nh):
            Wh[k, j, r0 + t] = wh[k, j, t]
            wh[k, j, t] = 0.0
    for j in range(nh):
        for o in range(no):
            Wz[j, o, r0 + t] = wz[j, o, t]
            wz[j, o, t] = 0.0
    a[t] = 0.0
    act[t] = False


@njit(inline="always", **JIT)
def _hidden_delta(h, dz, wz, dh):
    """dH = (dZ @ Wz.T) * H * (1 - H)."""
    n, nh, T = h.shape
    no = dz.shape[1]
    zero, one = h.dtype.type(0), h.dtype.type(1)
    if no == 1:  # the common case in one pass
        for s in range(n):
            for j in range(nh):
                for t in range(T):
                    ht = h[s, j, t]
                    dh[s, j, t] = (zero + dz[s, 0, t] * wz[j, 0, t]) * (ht * (one - ht))
        return
    for s in range(n):
        for j in range(nh):
            for t in range(T):
                dh[s, j, t] = zero
            for o in range(no):
                for t in range(T):
                    dh[s, j, t] += dz[s, o, t] * wz[j, o, t]
            for t in range(T):
                ht = h[s, j, t]
                dh[s, j, t] *= ht * (one - ht)


def variant_name(sigmoid_out: bool, sequential: bool, fastmath: bool) -> str:
    """The name of a variant's function (its own Numba cache entry)."""
    output = "sigmoid" if sigmoid_out else "linear"
    update = "sequential" if sequential else "simultaneous"
    return f"_train_{output}_{update}" + ("_fastmath" if fastmath else "")


_KERNELS: dict[tuple[bool, bool, bool], Any] = {}


def kernel(sigmoid_out: bool, sequential: bool, fastmath: bool):
    """The batch trainer of one variant: ``_train`` with the variant's choices as
    constants (and fastmath's flags and sigmoid), made on first use; Numba compiles
    it (or loads it from its cache) on the first call with each dtype."""
    key = (bool(sigmoid_out), bool(sequential), bool(fastmath))
    fn = _KERNELS.get(key)
    if fn is None:
        py = clone_function(
            _train, variant_name(*key), SIGMOID_OUT=key[0], SEQUENTIAL=key[1],
            sigmoid4=sigmoid4_cheap if key[2] else sigmoid4,
        )  # fmt: skip
        flags = {**JIT, "fastmath": FASTMATH} if key[2] else JIT
        fn = _KERNELS[key] = njit(pipeline_class=NoAliasCompiler, **flags)(py)
    return fn


def is_cached(sigmoid_out: bool, sequential: bool, fastmath: bool) -> bool:
    """Whether this variant was compiled before on this machine (Numba's cache has it)."""
    return has_cache_index(kernel(sigmoid_out, sequential, fastmath))


def cache_stats() -> dict[str, int]:
    """Numba cache hits and misses of the variants used in this process."""
    hits = sum(sum(k.stats.cache_hits.values()) for k in _KERNELS.values())
    misses = sum(sum(k.stats.cache_misses.values()) for k in _KERNELS.values())
    return {"hits": hits, "misses": misses}


def train_batch(
    X, Y, Wh, Wz, alpha, epochs, sigmoid_out, sequential, every,
    stop_below, diverge_above, loss_out, istats, fstats, w,
):  # fmt: skip
    """Train R runs in place, tile by tile, in the scratch ``w`` of one tile.

    X (n, inputs), Y (n, outputs), Wh (inputs, hidden, R), Wz (hidden, outputs, R),
    alpha (R,), all of the training dtype (that of w). Writes the loss of each
    recorded epoch to ``loss_out[slot, r]``, and per run
    ``istats[r] = (epochs_run, min_epoch, status)`` and
    ``fstats[r] = (final_loss, min_loss)``. Final weights are left in Wh, Wz.
    A ``FastScratch`` w trains in fastmath.
    """
    fn = kernel(sigmoid_out, sequential, isinstance(w, FastScratch))
    fn(X, Y, Wh, Wz, alpha, epochs, every, stop_below, diverge_above, loss_out, istats, fstats, w)
