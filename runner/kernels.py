"""Numba kernels: numbers in, numbers out. No I/O, no pandas.

Layout: a batch of R runs of one shape trains in one call. Weights are
``Wh[inputs, hidden, R]`` and ``Wz[hidden, outputs, R]``: the run index is the
innermost, contiguous axis, so every hot loop runs across runs and vectorises.
Runs are processed in tiles of ``TILE`` runs that stay in cache for all epochs.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

# Every Numba flag in one place. error_model="numpy" drops the division-by-zero
# branch that would stop LLVM vectorising the loops.
JIT = {"nogil": True, "cache": True, "error_model": "numpy", "boundscheck": False}

TILE = 32

# istats columns
EPOCHS_RUN, MIN_EPOCH, STATUS = 0, 1, 2
# fstats columns
FINAL_LOSS, MIN_LOSS = 0, 1
# STATUS values
RAN_ALL, DIVERGED, CONVERGED = 0, 1, 2


# exp(x) = 2**k * exp(r), r = x - k*ln2 (Cody-Waite, fdlibm's split of ln2),
# exp(r) by a degree-13 Taylor polynomial; within 1 ulp of np.exp and libm.
# runner.reference.exp computes the same operations in NumPy, bit for bit.
LOG2E = 1.4426950408889634
LN2_HI = 6.93147180369123816490e-01
LN2_LO = 1.90821492927058770002e-10
EXP_COEFFS = tuple(1.0 / math.factorial(n) for n in range(13, -1, -1))  # highest first
EXP_HI, EXP_LO = 710.0, -746.0  # beyond these exp is inf or 0


@intrinsic
def _bits_as_float(typingctx, bits):
    """Reinterpret int64 bits as float64 (a plain bitcast, so loops vectorise)."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))

    return types.float64(types.int64), codegen


@njit(inline="always", **JIT)
def fexp(x):
    x = EXP_HI if x > EXP_HI else x
    x = EXP_LO if x < EXP_LO else x
    kf = math.floor(x * LOG2E + 0.5)
    kf = kf if kf == kf else 0.0  # NaN stays NaN through the polynomial
    r = (x - kf * LN2_HI) - kf * LN2_LO
    c = EXP_COEFFS
    p = c[0]
    p = p * r + c[1]
    p = p * r + c[2]
    p = p * r + c[3]
    p = p * r + c[4]
    p = p * r + c[5]
    p = p * r + c[6]
    p = p * r + c[7]
    p = p * r + c[8]
    p = p * r + c[9]
    p = p * r + c[10]
    p = p * r + c[11]
    p = p * r + c[12]
    p = p * r + c[13]
    k = np.int64(kf)
    k1 = k >> 1
    k2 = k - k1
    return (p * _bits_as_float((k1 + 1023) << 52)) * _bits_as_float((k2 + 1023) << 52)


@njit(inline="always", **JIT)
def sigmoid(x):
    return 1.0 / (1.0 + fexp(-x))


@njit(**JIT)
def slot_of(epoch, every):
    """Row of ``loss_out`` for a recorded epoch (epoch 1 and multiples of every)."""
    if every == 1:
        return epoch - 1
    return epoch // every


@njit(**JIT)
def _train_tile(
    X,
    Y,
    wh,
    wz,
    a,
    epochs,
    sigmoid_out,
    sequential,
    every,
    stop_below,
    diverge_above,
    loss_out,
    r0,
    istats,
    fstats,
):
    n, ni = X.shape
    no = Y.shape[1]
    nh = wh.shape[1]
    T = a.shape[0]
    h = np.empty((n, nh, T))
    dh = np.empty((n, nh, T))
    z = np.empty((n, no, T))
    dz = np.empty((n, no, T))
    acc = np.empty(T)
    sq = np.empty(T)
    act = np.ones(T, dtype=np.bool_)
    min_loss = np.full(T, np.inf)
    min_epoch = np.zeros(T, dtype=np.int64)
    last = np.zeros(T, dtype=np.int64)
    last_loss = np.full(T, np.nan)
    status = np.zeros(T, dtype=np.int64)
    size = n * no
    n_active = T
    for epoch in range(1, epochs + 1):
        if n_active == 0:
            break
        # forward pass and error
        sq[:] = 0.0
        for s in range(n):
            for j in range(nh):
                acc[:] = 0.0
                for k in range(ni):
                    x = X[s, k]
                    for t in range(T):
                        acc[t] += x * wh[k, j, t]
                for t in range(T):
                    h[s, j, t] = sigmoid(acc[t])
            for o in range(no):
                acc[:] = 0.0
                for j in range(nh):
                    for t in range(T):
                        acc[t] += h[s, j, t] * wz[j, o, t]
                y = Y[s, o]
                for t in range(T):
                    zt = acc[t]
                    if sigmoid_out:
                        zt = sigmoid(zt)
                    e = y - zt
                    z[s, o, t] = zt
                    dz[s, o, t] = e
                    sq[t] += e * e
        # loss, record, divergence (a diverged run stops before its update)
        record = epoch == 1 or epoch % every == 0
        row = slot_of(epoch, every)
        for t in range(T):
            if not act[t]:
                continue
            loss = sq[t] / size
            if record:
                loss_out[row, r0 + t] = loss
            last[t] = epoch
            last_loss[t] = loss
            if loss < min_loss[t]:
                min_loss[t] = loss
                min_epoch[t] = epoch
            if not math.isfinite(loss) or loss > diverge_above:
                act[t] = False
                status[t] = DIVERGED
                n_active -= 1
        # deltas
        for s in range(n):
            for o in range(no):
                for t in range(T):
                    d = dz[s, o, t] * a[t]
                    if sigmoid_out:
                        zt = z[s, o, t]
                        d = d * (zt * (1.0 - zt))
                    dz[s, o, t] = d
        if not sequential:
            _hidden_delta(h, dz, wz, dh)
        # Wz += H.T @ dZ
        for j in range(nh):
            for o in range(no):
                acc[:] = 0.0
                for s in range(n):
                    for t in range(T):
                        acc[t] += h[s, j, t] * dz[s, o, t]
                for t in range(T):
                    w = wz[j, o, t]
                    wz[j, o, t] = w + acc[t] if act[t] else w
        if sequential:
            _hidden_delta(h, dz, wz, dh)
        # Wh += X.T @ dH
        for k in range(ni):
            for j in range(nh):
                acc[:] = 0.0
                for s in range(n):
                    x = X[s, k]
                    for t in range(T):
                        acc[t] += x * dh[s, j, t]
                for t in range(T):
                    w = wh[k, j, t]
                    wh[k, j, t] = w + acc[t] if act[t] else w
        # convergence (the epoch's update is kept)
        for t in range(T):
            if act[t] and last_loss[t] < stop_below:
                act[t] = False
                status[t] = CONVERGED
                n_active -= 1
    for t in range(T):
        istats[r0 + t, EPOCHS_RUN] = last[t]
        istats[r0 + t, MIN_EPOCH] = min_epoch[t]
        istats[r0 + t, STATUS] = status[t]
        fstats[r0 + t, FINAL_LOSS] = last_loss[t]
        fstats[r0 + t, MIN_LOSS] = min_loss[t]


@njit(**JIT)
def _hidden_delta(h, dz, wz, dh):
    """dH = (dZ @ Wz.T) * H * (1 - H)."""
    n, nh, T = h.shape
    no = dz.shape[1]
    for s in range(n):
        for j in range(nh):
            for t in range(T):
                dh[s, j, t] = 0.0
            for o in range(no):
                for t in range(T):
                    dh[s, j, t] += dz[s, o, t] * wz[j, o, t]
            for t in range(T):
                ht = h[s, j, t]
                dh[s, j, t] *= ht * (1.0 - ht)


@njit(**JIT)
def train_batch(
    X,
    Y,
    Wh,
    Wz,
    alpha,
    epochs,
    sigmoid_out,
    sequential,
    every,
    stop_below,
    diverge_above,
    loss_out,
    istats,
    fstats,
):
    """Train R runs in place.

    X (n, inputs), Y (n, outputs), Wh (inputs, hidden, R), Wz (hidden, outputs, R),
    alpha (R,). Writes the loss of each recorded epoch to ``loss_out[slot, r]``,
    and per run ``istats[r] = (epochs_run, min_epoch, status)`` and
    ``fstats[r] = (final_loss, min_loss)``. Final weights are left in Wh, Wz.
    """
    R = alpha.shape[0]
    for r0 in range(0, R, TILE):
        r1 = min(r0 + TILE, R)
        wh = np.ascontiguousarray(Wh[:, :, r0:r1])
        wz = np.ascontiguousarray(Wz[:, :, r0:r1])
        a = np.ascontiguousarray(alpha[r0:r1])
        _train_tile(
            X,
            Y,
            wh,
            wz,
            a,
            epochs,
            sigmoid_out,
            sequential,
            every,
            stop_below,
            diverge_above,
            loss_out,
            r0,
            istats,
            fstats,
        )
        Wh[:, :, r0:r1] = wh
        Wz[:, :, r0:r1] = wz
