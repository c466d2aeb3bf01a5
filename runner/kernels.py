"""Numba kernels: numbers in, numbers out. No I/O, no pandas.

Layout: a batch of R runs of one shape trains in one call. Weights are
``Wh[inputs, hidden, R]`` and ``Wz[hidden, outputs, R]``: the run index is the
innermost, contiguous axis, so every hot loop runs across runs and vectorises.
Runs are processed in tiles of ``TILE`` runs that stay in cache for all epochs.
"""

from __future__ import annotations

import math
import re

import numpy as np
from llvmlite import binding as llvm
from llvmlite import ir
from numba import njit, types
from numba.core import compiler, config
from numba.core.codegen import get_host_cpu_features
from numba.extending import intrinsic

# Every Numba flag in one place. error_model="numpy" drops the division-by-zero
# branch that would stop LLVM vectorising the loops.
JIT = {"nogil": True, "cache": True, "error_model": "numpy", "boundscheck": False}

# Runs per tile: a multiple of 32 (four sigmoid streams of whole 8-lane vectors).
# 64 measured best at hidden 4 and 32 (32: loop overheads; 128: spills out of L1/L2).
TILE = 64


class _NoAliasCompiler(compiler.Compiler):
    """Numba's pipeline, with every array argument's data pointer marked ``noalias``.

    The tile kernel's arrays never overlap (train_batch's arguments are distinct
    arrays, the rest is its own scratch); telling LLVM so lets it vectorise the run
    loops without run-time overlap checks (Numba's ``parfors`` does the same).
    """

    def define_pipelines(self):
        self.state.flags.noalias = True
        return super().define_pipelines()


# istats columns
EPOCHS_RUN, MIN_EPOCH, STATUS = 0, 1, 2
# fstats columns
FINAL_LOSS, MIN_LOSS = 0, 1
# STATUS values
RAN_ALL, DIVERGED, CONVERGED = 0, 1, 2


# exp(x) = 2**k * exp(r): k = rint(x / ln2), r = x - k*ln2 (Cody-Waite, fdlibm's split
# of ln2), exp(r) = 1 + r + r**2 * q(r) by a degree-11 polynomial fitted at Chebyshev
# nodes of |r| <= ln2/2, q by Estrin's scheme (half the latency of Horner's). Within
# 1 ulp of the correctly rounded exp on that interval; measured within 1 ulp of np.exp
# and math.exp over the whole range (5M points). runner.reference.exp computes the same
# operations in NumPy, bit for bit.
LOG2E = 1.4426950408889634
LN2_HI = 6.93147180369123816490e-01
LN2_LO = 1.90821492927058770002e-10
EXP_COEFFS = (  # highest degree first
    2.5100375832561234e-08,
    2.7620075879983367e-07,
    2.7557268480310024e-06,
    2.4801521322368692e-05,
    0.00019841269863040545,
    0.0013888888917196719,
    0.008333333333330065,
    0.041666666666624164,
    0.16666666666666669,
    0.5000000000000001,
    1.0,
    1.0,
)
EXP_HI, EXP_LO = 710.0, -746.0  # beyond these exp is inf or 0


@intrinsic
def _bits_as_float(typingctx, bits):
    """Reinterpret int64 bits as float64 (a plain bitcast, so loops vectorise)."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))

    return types.float64(types.int64), codegen


def _frozen_fptosi(builder, x, ty):
    """fptosi, then ``freeze``: a NaN gives some integer rather than LLVM's poison
    (the NaN is carried by the polynomial, so the scale factor does not matter)."""
    k = builder.fptosi(x, ty)
    frozen = ir.instructions.Instruction(builder.block, ty, "freeze", [k])
    builder._insert(frozen)
    return frozen


@intrinsic
def _to_int(typingctx, kf):
    """int64(kf) for an integral kf, defined (if arbitrary) for NaN."""

    def codegen(context, builder, signature, args):
        return _frozen_fptosi(builder, args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def _ldexp(typingctx, x, kf):
    """x * 2**kf for an integral float kf, one rounding (llvm.ldexp: AVX-512's vscalefpd
    once vectorised)."""
    f8, i4 = ir.DoubleType(), ir.IntType(32)

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(f8, [f8, i4])
        fn = builder.module.declare_intrinsic("llvm.ldexp", [f8, i4], fnty)
        return builder.call(fn, [args[0], _frozen_fptosi(builder, args[1], i4)])

    return types.float64(types.float64, types.float64), codegen


def _has_avx512() -> bool:
    """Whether Numba compiles for a CPU with AVX-512F (the host, unless overridden).

    A function of NUMBA_CPU_NAME, NUMBA_CPU_FEATURES and the host's features as Numba
    sees them, all of which key Numba's cache: code compiled for one choice is never
    loaded for another target."""
    features = config.CPU_FEATURES
    if features is None:
        if config.CPU_NAME not in (None, "host"):
            return False
        features = get_host_cpu_features()
    return "+avx512f" in features.split(",")


AVX512 = _has_avx512()


@njit(inline="always", **JIT)
def _exp_reduce(x):
    """exp(x) = 2**kf * exp(r): clamp x, then kf and r (Cody-Waite)."""
    x = EXP_HI if x > EXP_HI else x  # a NaN stays NaN (vminpd's operand order)
    x = EXP_LO if x < EXP_LO else x
    kf = np.rint(x * LOG2E)
    r = (x - kf * LN2_HI) - kf * LN2_LO
    return r, kf


@njit(inline="always", **JIT)
def _scale_bits(p, kf):
    """p * 2**kf as two exact-or-once-rounded products by bitcast powers of two."""
    k = _to_int(kf)
    k1 = k >> 1
    k2 = k - k1
    return (p * _bits_as_float((k1 + 1023) << 52)) * _bits_as_float((k2 + 1023) << 52)


@njit(inline="always", **JIT)
def _scale_ldexp(p, kf):
    """The same number as ``_scale_bits``: |kf| <= 1077 and 0.7 < p < 1.5, so
    p * 2**(kf >> 1) is exact and the second product is the only rounding, which
    ldexp does once, for normal, subnormal and overflowing results alike."""
    return _ldexp(p, kf)


# vscalefpd is one instruction for the eight integer and two multiply steps;
# without AVX-512 LLVM would call libm's ldexp, so there the bit tricks stay. LLVM
# vectorises llvm.ldexp from version 22 (llvmlite 0.48); LLVM 20 left the loop scalar.
LDEXP_VECTORISES = llvm.llvm_version_info >= (22,)
_exp_scale = _scale_ldexp if AVX512 and LDEXP_VECTORISES else _scale_bits


@njit(inline="always", **JIT)
def _exp_poly(r):
    """exp(r) = 1 + (r + r**2 * q(r)), q's degree 9 by Estrin: pairs, then powers r**2,
    r**4, r**8 (short dependency chains; the small terms first keep it accurate)."""
    c = EXP_COEFFS  # c[9] .. c[0]: q's coefficients of r**0 .. r**9
    r2 = r * r
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
    return c[11] + (c[10] * r + r2 * q)


@njit(inline="always", **JIT)
def fexp(x):
    r, kf = _exp_reduce(x)
    return _exp_scale(_exp_poly(r), kf)


@njit(inline="always", **JIT)
def sigmoid(x):
    return 1.0 / (1.0 + fexp(-x))


@njit(inline="always", **JIT)
def _exp_neg_reduce(x):
    """``_exp_reduce(-x)`` without negating x: returns s = -r and kf, bit for bit.

    Round to nearest is symmetric, so -(a*b) = a*(-b), -a - b = -(a + b) and
    rint(-a) = -rint(a) exactly; clamping -x to [LO, HI] is clamping x to [-HI, -LO]."""
    x = -EXP_HI if x < -EXP_HI else x  # a NaN stays NaN
    x = -EXP_LO if x > -EXP_LO else x
    kf = np.rint(x * -LOG2E)
    s = (x + kf * LN2_HI) + kf * LN2_LO
    return s, kf


@njit(inline="always", **JIT)
def _exp_poly_neg(s):
    """``_exp_poly(-s)`` bit for bit: each c + c' * r is c - c' * s, and r + t is t - s."""
    c = EXP_COEFFS
    s2 = s * s
    b0 = c[9] - c[8] * s
    b1 = c[7] - c[6] * s
    b2 = c[5] - c[4] * s
    b3 = c[3] - c[2] * s
    b4 = c[1] - c[0] * s
    s4 = s2 * s2
    d0 = b0 + b1 * s2
    d1 = b2 + b3 * s2
    s8 = s4 * s4
    q = (d0 + d1 * s4) + b4 * s8
    return c[11] + (s2 * q - c[10] * s)


@njit(inline="always", **JIT)
def _sigmoid_fast(x):
    """``sigmoid(x)``, bit for bit, with exp(-x) computed without negations."""
    s, kf = _exp_neg_reduce(x)
    return 1.0 / (1.0 + _exp_scale(_exp_poly_neg(s), kf))


@njit(inline="always", **JIT)
def _sigmoid4(x0, x1, x2, x3):
    """Four sigmoids side by side: independent dependency chains for the FP pipes."""
    return _sigmoid_fast(x0), _sigmoid_fast(x1), _sigmoid_fast(x2), _sigmoid_fast(x3)


@njit(**JIT)
def slot_of(epoch, every):
    """Row of ``loss_out`` for a recorded epoch (epoch 1 and multiples of every)."""
    if every == 1:
        return epoch - 1
    return epoch // every


@njit(pipeline_class=_NoAliasCompiler, **JIT)
def _train_tile(
    X, Y, Wh, Wz, alpha, epochs, sigmoid_out, sequential, every, stop_below, diverge_above,
    loss_out, istats, fstats, r0, nt, wh, wz, a, act, h, dh, dz, accw, acc, zs, sq,
    min_loss, last_loss, min_epoch, last, status,
):  # fmt: skip
    """Train runs ``r0 .. r0 + nt`` of the batch in one tile of ``T`` lanes.

    Every hot loop runs across the lanes (or across hidden units and lanes at
    once, ``u = j * T + t``) with no branch inside, so LLVM vectorises it. A run
    that stops hands its weights back to ``Wh``, ``Wz`` at once and its lane is
    reset to zero weights and zero alpha, where it idles, so the updates need no
    mask; padding lanes (``nt <= t < T``) idle from the start.
    """
    n, ni = X.shape
    no = Y.shape[1]
    nh = wh.shape[1]
    T = a.shape[0]
    m = nh * T
    q, T4 = m // 4, T // 4  # T is a multiple of 4
    whf = wh.reshape(ni, m)
    hf = h.reshape(n, m)
    dhf = dh.reshape(n, m)
    size = n * no
    for t in range(T):
        wt = t < nt
        act[t] = wt
        a[t] = alpha[r0 + t] if wt else 0.0
        min_loss[t] = np.inf
        last_loss[t] = np.nan
        min_epoch[t] = 0
        last[t] = 0
        status[t] = RAN_ALL
    for k in range(ni):
        for j in range(nh):
            for t in range(T):
                wh[k, j, t] = Wh[k, j, r0 + t] if t < nt else 0.0
    for j in range(nh):
        for o in range(no):
            for t in range(T):
                wz[j, o, t] = Wz[j, o, r0 + t] if t < nt else 0.0
    n_active = nt
    for epoch in range(1, epochs + 1):
        if n_active == 0:
            break
        # forward pass, error and output delta (dZ is not needed for the loss)
        for t in range(T):
            sq[t] = 0.0
        for s in range(n):
            # sums of products two terms a pass (same order: ((0 + p0) + p1) + ...)
            x0 = X[s, 0]
            if ni == 1:
                for u in range(m):
                    accw[u] = 0.0 + x0 * whf[0, u]
            else:
                x1 = X[s, 1]
                for u in range(m):
                    accw[u] = (0.0 + x0 * whf[0, u]) + x1 * whf[1, u]
            k = 2
            while k + 1 < ni:
                x0, x1 = X[s, k], X[s, k + 1]
                for u in range(m):
                    accw[u] = (accw[u] + x0 * whf[k, u]) + x1 * whf[k + 1, u]
                k += 2
            if k < ni:
                x0 = X[s, k]
                for u in range(m):
                    accw[u] += x0 * whf[k, u]
            for u in range(q):
                hf[s, u], hf[s, q + u], hf[s, 2 * q + u], hf[s, 3 * q + u] = _sigmoid4(
                    accw[u], accw[q + u], accw[2 * q + u], accw[3 * q + u]
                )
            for o in range(no):
                if nh == 1:
                    for t in range(T):
                        acc[t] = 0.0 + h[s, 0, t] * wz[0, o, t]
                else:
                    for t in range(T):
                        acc[t] = (0.0 + h[s, 0, t] * wz[0, o, t]) + h[s, 1, t] * wz[1, o, t]
                j = 2
                while j + 1 < nh:
                    for t in range(T):
                        acc[t] = (acc[t] + h[s, j, t] * wz[j, o, t]) + h[s, j + 1, t] * wz[
                            j + 1, o, t
                        ]
                    j += 2
                if j < nh:
                    for t in range(T):
                        acc[t] += h[s, j, t] * wz[j, o, t]
                y = Y[s, o]
                if sigmoid_out:
                    for t in range(T4):
                        zs[t], zs[T4 + t], zs[2 * T4 + t], zs[3 * T4 + t] = _sigmoid4(
                            acc[t], acc[T4 + t], acc[2 * T4 + t], acc[3 * T4 + t]
                        )
                    for t in range(T):
                        zt = zs[t]
                        e = y - zt
                        sq[t] += e * e
                        dz[s, o, t] = (e * a[t]) * (zt * (1.0 - zt))
                else:
                    for t in range(T):
                        e = y - acc[t]
                        sq[t] += e * e
                        dz[s, o, t] = e * a[t]
        # loss, record, divergence (a diverged run stops before its update)
        record = epoch == 1 or epoch % every == 0
        row = slot_of(epoch, every)
        n_stop = 0
        for t in range(T):
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
        if record:
            for t in range(nt):
                if act[t]:
                    loss_out[row, r0 + t] = sq[t]
        if n_stop:
            for t in range(nt):
                if act[t] and status[t] == DIVERGED:
                    _retire(Wh, Wz, wh, wz, a, act, r0, t)
            n_active -= n_stop
        if not sequential:
            _hidden_delta(h, dz, wz, dh)
        # Wz += H.T @ dZ
        for j in range(nh):
            for o in range(no):
                if n == 1:
                    for t in range(T):
                        acc[t] = 0.0 + h[0, j, t] * dz[0, o, t]
                else:
                    for t in range(T):
                        acc[t] = (0.0 + h[0, j, t] * dz[0, o, t]) + h[1, j, t] * dz[1, o, t]
                s = 2
                while s + 1 < n:
                    for t in range(T):
                        acc[t] = (acc[t] + h[s, j, t] * dz[s, o, t]) + h[s + 1, j, t] * dz[
                            s + 1, o, t
                        ]
                    s += 2
                if s < n:
                    for t in range(T):
                        acc[t] += h[s, j, t] * dz[s, o, t]
                for t in range(T):
                    wz[j, o, t] += acc[t]
        if sequential:
            _hidden_delta(h, dz, wz, dh)
        # Wh += X.T @ dH, across hidden units and lanes at once
        for k in range(ni):
            x0 = X[0, k]
            if n == 1:
                for u in range(m):
                    accw[u] = 0.0 + x0 * dhf[0, u]
            else:
                x1 = X[1, k]
                for u in range(m):
                    accw[u] = (0.0 + x0 * dhf[0, u]) + x1 * dhf[1, u]
            s = 2
            while s + 1 < n:
                x0, x1 = X[s, k], X[s + 1, k]
                for u in range(m):
                    accw[u] = (accw[u] + x0 * dhf[s, u]) + x1 * dhf[s + 1, u]
                s += 2
            if s < n:
                x0 = X[s, k]
                for u in range(m):
                    accw[u] += x0 * dhf[s, u]
            for u in range(m):
                whf[k, u] += accw[u]
        # convergence (the epoch's update is kept)
        if stop_below > -np.inf:
            for t in range(nt):
                if act[t] and last_loss[t] < stop_below:
                    status[t] = CONVERGED
                    _retire(Wh, Wz, wh, wz, a, act, r0, t)
                    n_active -= 1
    for t in range(nt):
        if act[t]:
            _retire(Wh, Wz, wh, wz, a, act, r0, t)
        istats[r0 + t, EPOCHS_RUN] = last[t]
        istats[r0 + t, MIN_EPOCH] = min_epoch[t]
        istats[r0 + t, STATUS] = status[t]
        fstats[r0 + t, FINAL_LOSS] = last_loss[t]
        fstats[r0 + t, MIN_LOSS] = min_loss[t]


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
    if no == 1:  # the common case in one pass
        for s in range(n):
            for j in range(nh):
                for t in range(T):
                    ht = h[s, j, t]
                    dh[s, j, t] = (0.0 + dz[s, 0, t] * wz[j, 0, t]) * (ht * (1.0 - ht))
        return
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


def _work(n: int, ni: int, nh: int, no: int, T: int):
    """Scratch arrays of one tile, in ``_train_tile``'s argument order (from ``wh`` on)."""
    f8, i8 = np.float64, np.int64
    return (
        np.empty((ni, nh, T)), np.empty((nh, no, T)), np.empty(T), np.empty(T, np.bool_),
        np.empty((n, nh, T)), np.empty((n, nh, T)), np.empty((n, no, T)), np.empty(nh * T),
        np.empty(T), np.empty(T), np.empty(T), np.empty(T, f8), np.empty(T, f8),
        np.empty(T, i8), np.empty(T, i8), np.empty(T, i8),
    )  # fmt: skip


_work_jit = njit(**JIT)(_work)


@njit(**JIT)
def train_batch(
    X, Y, Wh, Wz, alpha, epochs, sigmoid_out, sequential, every,
    stop_below, diverge_above, loss_out, istats, fstats,
):  # fmt: skip
    """Train R runs in place.

    X (n, inputs), Y (n, outputs), Wh (inputs, hidden, R), Wz (hidden, outputs, R),
    alpha (R,). Writes the loss of each recorded epoch to ``loss_out[slot, r]``,
    and per run ``istats[r] = (epochs_run, min_epoch, status)`` and
    ``fstats[r] = (final_loss, min_loss)``. Final weights are left in Wh, Wz.
    """
    R = alpha.shape[0]
    n, ni = X.shape
    nh, no = Wz.shape[0], Wz.shape[1]
    T = TILE
    work = _work_jit(n, ni, nh, no, T)
    for r0 in range(0, R, T):
        _train_tile(
            X, Y, Wh, Wz, alpha, epochs, sigmoid_out, sequential, every, stop_below,
            diverge_above, loss_out, istats, fstats, r0, min(T, R - r0), *work,
        )  # fmt: skip


_VECTOR_OP = re.compile(r"\bv(mul|add|sub|div)pd\b.*\b([yz]mm)")
_SCALAR_OP = re.compile(r"\bv(mul|add|sub|div)sd\b")
_CALL = re.compile(r"\bcall[lq]?\s+(\S+)")


def tile_asm(hidden: int = 4, sigmoid_out: bool = False, sequential: bool = True) -> str:
    """Assembly of the tile kernel, compiled afresh (cached code cannot be inspected)."""
    fn = njit(pipeline_class=_NoAliasCompiler, **{**JIT, "cache": False})(_train_tile.py_func)
    n, ni, no, R = 4, 2, 1, TILE
    fn(
        np.ones((n, ni)), np.ones((n, no)), np.zeros((ni, hidden, R)), np.zeros((hidden, no, R)),
        np.zeros(R), 1, sigmoid_out, sequential, 1, -np.inf, np.inf, np.zeros((1, R)),
        np.zeros((R, 3), dtype=np.int64), np.zeros((R, 2)), 0, R, *_work(n, ni, hidden, no, TILE),
    )  # fmt: skip
    return "\n".join(fn.inspect_asm().values())


def vector_report() -> dict:
    """Count packed-double arithmetic in the tile kernel's assembly (does it vectorise?).

    ``packed``: lines of ``v{mul,add,sub,div}pd`` on ymm/zmm registers; ``zmm`` and
    ``ymm`` split them by width; ``scalar``: the same operations as ``...sd``;
    ``calls``: call targets; ``exp_call``: whether any call to a libm exp remains.
    """
    asm = tile_asm()
    widths = [m.group(2) for m in map(_VECTOR_OP.search, asm.splitlines()) if m]
    calls = sorted({m.group(1) for m in map(_CALL.search, asm.splitlines()) if m})
    return {
        "tile": TILE,
        "packed": len(widths),
        "zmm": widths.count("zmm"),
        "ymm": widths.count("ymm"),
        "scalar": sum(1 for line in asm.splitlines() if _SCALAR_OP.search(line)),
        "round": len(re.findall(r"\bv(rndscale|round)pd\b", asm)),
        "calls": calls,
        "exp_call": any("exp" in c for c in calls),
    }
