"""The tile kernel's sums: matrix products summed left to right, and the two updates.

Every sum starts from 0 and adds one product at a time, in the order of the reference's
``dot`` (docs/numerics.md, "Sums"), two terms a pass over the lanes. ``sample_delta`` is
one source for every activation: ``runner.kernel.cpu.kernel`` clones it with its
activation's derivative ``dact`` as a constant (and ``delta_update_wh`` with that clone).
"""

from __future__ import annotations

from numba import njit
from numba.extending import overload

from runner.kernel.activations import d_sigmoid
from runner.kernel.numba_ext import JIT


@njit(inline="always", **JIT)
def sum_rows(acc, C, c0, cs, M, m0, ms, count):
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


def _at(C, i, u):
    """C[i] for a 1-D C (a coefficient shared by every u), C[i, u] for a 2-D C."""


@overload(_at, jit_options=JIT)
def _at_impl(C, i, u):
    if C.ndim == 1:
        return lambda C, i, u: C[i]
    return lambda C, i, u: C[i, u]


@njit(inline="always", **JIT)
def update_wz(w):
    """Wz += Hb.T @ dZ (Hb: H and, with a bias, a unit of constant 1)."""
    h, dz, wz, acc = w.h, w.dz, w.wz, w.acc
    n, nh, T = h.shape  # nh counts the bias unit
    no = dz.shape[1]
    h2 = h.reshape(n * nh, T)
    dz2 = dz.reshape(n * no, T)
    for j in range(nh):
        for o in range(no):
            sum_rows(acc, h2, j, nh, dz2, o, no, n)  # H[:, j] . dZ[:, o]
            for t in range(T):
                wz[j, o, t] += acc[t]


# The derivative of a clone's activation (a global of its own copy of ``sample_delta``).
dact = d_sigmoid


def sample_delta(h, dz, wz, buf, s, i):
    """buf[i] = sample s's dA = (dZ[s] @ Wz[:h].T) * act'(A, H), for the hidden units only
    (a bias unit's row of Wz feeds none): from 0, one output at a time, then the
    derivative."""
    _, nh, T = buf.shape
    no = dz.shape[1]
    zero, one = h.dtype.type(0), h.dtype.type(1)
    if no == 1:
        for j in range(nh):
            for t in range(T):
                d = dact(h[s, j, t], one, zero)
                buf[i, j, t] = (zero + dz[s, 0, t] * wz[j, 0, t]) * d
        return
    for j in range(nh):
        for t in range(T):
            buf[i, j, t] = zero
        for o in range(no):
            for t in range(T):
                buf[i, j, t] += dz[s, o, t] * wz[j, o, t]
        for t in range(T):
            buf[i, j, t] *= dact(h[s, j, t], one, zero)


# The clone's ``sample_delta`` (with its ``dact``), a global of ``delta_update_wh``'s clone.
_sample_delta = sample_delta


def delta_update_wh(X, w):
    """Wh += Xb.T @ dA, across hidden units and lanes at once, two samples at a time: each
    sample's dA (``sample_delta``) is made in a buffer of two samples' hidden units and
    lanes (``w.dh``, 2 x hidden x T) and added to the sums at once, so that dA is never
    stored for every sample (a samples x hidden x T array less in the tile's working
    set). acc[k, u] sums X[s, k] * dA[s, u] over the samples from 0, in their order, as
    ``sum_rows`` does, but sample by sample for all k at once."""
    h, dz, wz, buf, acc = w.h, w.dzh, w.wz, w.dh, w.accwh
    n = h.shape[0]
    _, nh, T = buf.shape
    ni, m = X.shape[1], nh * T
    b = buf.reshape(2, m)
    zero = acc.dtype.type(0)
    _sample_delta(h, dz, wz, buf, 0, 0)
    if n == 1:
        for k in range(ni):
            x0 = X[0, k]
            for u in range(m):
                acc[k, u] = zero + x0 * b[0, u]
    else:
        _sample_delta(h, dz, wz, buf, 1, 1)
        for k in range(ni):
            x0, x1 = X[0, k], X[1, k]
            for u in range(m):
                acc[k, u] = (zero + x0 * b[0, u]) + x1 * b[1, u]
    s = 2
    while s + 1 < n:
        _sample_delta(h, dz, wz, buf, s, 0)
        _sample_delta(h, dz, wz, buf, s + 1, 1)
        for k in range(ni):
            x0, x1 = X[s, k], X[s + 1, k]
            for u in range(m):
                acc[k, u] = (acc[k, u] + x0 * b[0, u]) + x1 * b[1, u]
        s += 2
    if s < n:
        _sample_delta(h, dz, wz, buf, s, 0)
        for k in range(ni):
            x0 = X[s, k]
            for u in range(m):
                acc[k, u] += x0 * b[0, u]
    whf = w.wh.reshape(ni, m)
    for k in range(ni):
        for u in range(m):
            whf[k, u] += acc[k, u]
