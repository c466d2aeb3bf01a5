"""Numba kernels: numbers in, numbers out. No I/O, no pandas.

Layout: a batch of R runs of one shape trains in one call. Weights are
``Wh[inputs, hidden, R]`` and ``Wz[hidden, outputs, R]``: the run index is the
innermost, contiguous axis, so every hot loop runs across runs and vectorises.
Runs are processed in tiles of up to ``TILE`` runs (``runner.kernel.tiles`` picks the
width per shape) that stay in cache for all epochs.

Precision modes come from one source: the arrays' dtype (float64 or float32) picks
the exp's constants and polynomial at compile time, and a ``FastScratch`` picks the
fastmath twin of the tile kernel (see docs/precision.md).
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

import numpy as np
from llvmlite import binding as llvm
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

from runner.kernel.codes import (  # noqa: F401  (re-exported: the kernel's numbers)
    CONVERGED,
    DIVERGED,
    EPOCHS_RUN,
    EXP32,
    EXP64,
    EXP_COEFFS,
    EXP_COEFFS32,
    EXP_HI,
    EXP_LO,
    FINAL_LOSS,
    LN2_HI,
    LN2_LO,
    LOG2E,
    MIN_EPOCH,
    MIN_LOSS,
    RAN_ALL,
    STATUS,
    TILE,
)
from runner.kernel.numba_ext import (
    NoAliasCompiler,
    clone_function,
    compiles_for_avx512,
    frozen_fptosi,
    is_type_of,
)

# Every Numba flag in one place. error_model="numpy" drops the division-by-zero
# branch that would stop LLVM vectorising the loops.
JIT = {"nogil": True, "cache": True, "error_model": "numpy", "boundscheck": False}

def _exp_consts(x):
    """(HI, LO, LOG2E, LN2_HI, LN2_LO), coefficients: the constants of x's float type."""


@overload(_exp_consts, inline="always", jit_options=JIT)
def _exp_consts_impl(x):
    consts = (EXP32, EXP_COEFFS32) if x == types.float32 else (EXP64, EXP_COEFFS)
    return lambda x: consts


def _float_bits(x):
    """(exponent bias, mantissa bits) of x's float type."""


@overload(_float_bits, inline="always", jit_options=JIT)
def _float_bits_impl(x):
    bits = (127, 23) if x == types.float32 else (1023, 52)
    return lambda x: bits


@intrinsic
def _bits_as_float(typingctx, bits, like):
    """Reinterpret the low bits of an int64 as a float of like's type (a bitcast)."""

    def codegen(context, builder, signature, args):
        fty = context.get_value_type(like)
        ity = ir.IntType(fty.get_abi_size(context.target_data) * 8)
        val = args[0] if ity.width == 64 else builder.trunc(args[0], ity)
        return builder.bitcast(val, fty)

    return like(types.int64, like), codegen


@intrinsic
def _to_int(typingctx, kf):
    """int64(kf) for an integral kf, defined (if arbitrary) for NaN."""

    def codegen(context, builder, signature, args):
        return frozen_fptosi(builder, args[0], ir.IntType(64))

    return types.int64(kf), codegen


@intrinsic
def _ldexp(typingctx, x, kf):
    """x * 2**kf for an integral float kf, one rounding (llvm.ldexp: AVX-512's
    vscalefpd/vscalefps once vectorised)."""
    i4 = ir.IntType(32)

    def codegen(context, builder, signature, args):
        fty = context.get_value_type(x)
        fnty = ir.FunctionType(fty, [fty, i4])
        fn = builder.module.declare_intrinsic("llvm.ldexp", [fty, i4], fnty)
        return builder.call(fn, [args[0], frozen_fptosi(builder, args[1], i4)])

    return x(x, x), codegen


def _has_avx512() -> bool:
    """Whether Numba compiles for a CPU with AVX-512F (keys Numba's cache)."""
    return compiles_for_avx512()


@njit(inline="always", **JIT)
def _exp_reduce(x):
    """exp(x) = 2**kf * exp(r): clamp x, then kf and r (Cody-Waite)."""
    (hi, lo, log2e, ln2_hi, ln2_lo), _ = _exp_consts(x)
    x = hi if x > hi else x  # a NaN stays NaN (vminpd's operand order)
    x = lo if x < lo else x
    kf = np.rint(x * log2e)
    r = (x - kf * ln2_hi) - kf * ln2_lo
    return r, kf


@njit(inline="always", **JIT)
def _scale_bits(p, kf):
    """p * 2**kf as two exact-or-once-rounded products by bitcast powers of two."""
    bias, shift = _float_bits(p)
    k = _to_int(kf)
    k1 = k >> 1
    k2 = k - k1
    return (p * _bits_as_float((k1 + bias) << shift, p)) * _bits_as_float((k2 + bias) << shift, p)


@njit(inline="always", **JIT)
def _scale_ldexp(p, kf):
    """The same number as ``_scale_bits``: |kf| <= 1077 (150 in float32) and
    0.7 < p < 1.5, so p * 2**(kf >> 1) is exact and the second product is the only
    rounding, which ldexp does once, for normal, subnormal and overflowing results."""
    return _ldexp(p, kf)


# LLVM vectorises llvm.ldexp from version 22 (llvmlite 0.48); LLVM 20 left the loop scalar.
LDEXP_VECTORISES = llvm.llvm_version_info >= (22,)


def _exp_scale(p, kf):
    """p * 2**kf: vscalefpd is one instruction for the eight integer and two multiply
    steps; without AVX-512 LLVM would call libm's ldexp, so there the bit tricks stay.
    Decided when the kernel is compiled, for the CPU Numba compiles for (the cache
    keeps code per CPU name and features)."""


def uses_ldexp() -> bool:
    """Whether kernels compiled now scale by ldexp (else by the bit tricks)."""
    return _has_avx512() and LDEXP_VECTORISES


@overload(_exp_scale, inline="always", jit_options=JIT)
def _exp_scale_impl(p, kf):
    f = _scale_ldexp if uses_ldexp() else _scale_bits
    return lambda p, kf: f(p, kf)


@njit(inline="always", **JIT)
def _q9(r, r2, c):
    """q(r) of degree 9 by Estrin: pairs, then powers r**2, r**4, r**8 (short
    dependency chains; the small terms first keep it accurate)."""
    b0 = c[9] + c[8] * r
    b1 = c[7] + c[6] * r
    b2 = c[5] + c[4] * r
    b3 = c[3] + c[2] * r
    b4 = c[1] + c[0] * r
    r4 = r2 * r2
    d0 = b0 + b1 * r2
    d1 = b2 + b3 * r2
    r8 = r4 * r4
    return (d0 + d1 * r4) + b4 * r8


@njit(inline="always", **JIT)
def _q9_neg(s, s2, c):
    """``_q9(-s)`` bit for bit: each c + c' * r is c - c' * s."""
    b0 = c[9] - c[8] * s
    b1 = c[7] - c[6] * s
    b2 = c[5] - c[4] * s
    b3 = c[3] - c[2] * s
    b4 = c[1] - c[0] * s
    s4 = s2 * s2
    d0 = b0 + b1 * s2
    d1 = b2 + b3 * s2
    s8 = s4 * s4
    return (d0 + d1 * s4) + b4 * s8


@njit(inline="always", **JIT)
def _q4(r, r2, c):
    """q(r) of degree 4 by Estrin."""
    b0 = c[4] + c[3] * r
    b1 = c[2] + c[1] * r
    r4 = r2 * r2
    return (b0 + b1 * r2) + c[0] * r4


@njit(inline="always", **JIT)
def _q4_neg(s, s2, c):
    """``_q4(-s)`` bit for bit."""
    b0 = c[4] - c[3] * s
    b1 = c[2] - c[1] * s
    s4 = s2 * s2
    return (b0 + b1 * s2) + c[0] * s4


def _q(r, r2, c):
    """q(r) for the coefficients c (their count picks the degree)."""


def _q_neg(s, s2, c):
    """q(-s) for the coefficients c, bit for bit, without negating s."""


@overload(_q, inline="always", jit_options=JIT)
def _q_impl(r, r2, c):
    f = _q9 if len(c) == len(EXP_COEFFS) else _q4
    return lambda r, r2, c: f(r, r2, c)


@overload(_q_neg, inline="always", jit_options=JIT)
def _q_neg_impl(s, s2, c):
    f = _q9_neg if len(c) == len(EXP_COEFFS) else _q4_neg
    return lambda s, s2, c: f(s, s2, c)


@njit(inline="always", **JIT)
def _exp_poly(r):
    """exp(r) = 1 + (r + r**2 * q(r))."""
    _, c = _exp_consts(r)
    r2 = r * r
    return c[-1] + (c[-2] * r + r2 * _q(r, r2, c))


@njit(inline="always", **JIT)
def fexp(x):
    r, kf = _exp_reduce(x)
    return _exp_scale(_exp_poly(r), kf)


@njit(inline="always", **JIT)
def sigmoid(x):
    one = _exp_consts(x)[1][-1]
    return one / (one + fexp(-x))


@njit(inline="always", **JIT)
def _exp_neg_reduce(x):
    """``_exp_reduce(-x)`` without negating x: returns s = -r and kf, bit for bit.

    Round to nearest is symmetric, so -(a*b) = a*(-b), -a - b = -(a + b) and
    rint(-a) = -rint(a) exactly; clamping -x to [LO, HI] is clamping x to [-HI, -LO]."""
    (hi, lo, log2e, ln2_hi, ln2_lo), _ = _exp_consts(x)
    x = -hi if x < -hi else x  # a NaN stays NaN
    x = -lo if x > -lo else x
    kf = np.rint(x * -log2e)
    s = (x + kf * ln2_hi) + kf * ln2_lo
    return s, kf


@njit(inline="always", **JIT)
def _exp_poly_neg(s):
    """``_exp_poly(-s)`` bit for bit: r + t is t - s."""
    _, c = _exp_consts(s)
    s2 = s * s
    return c[-1] + (s2 * _q_neg(s, s2, c) - c[-2] * s)


@njit(inline="always", **JIT)
def _sigmoid_fast(x):
    """``sigmoid(x)``, bit for bit, with exp(-x) computed without negations."""
    s, kf = _exp_neg_reduce(x)
    one = _exp_consts(x)[1][-1]
    return one / (one + _exp_scale(_exp_poly_neg(s), kf))


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


@overload(_at, inline="always", jit_options=JIT)
def _at_impl(C, i, u):
    if C.ndim == 1:
        return lambda C, i, u: C[i]
    return lambda C, i, u: C[i, u]


# fastmath mode (not bit-reproducible): exp(r) by a shorter polynomial (relative error
# 4e-14 in float64, 2e-7 in float32), Horner's scheme (FMA once contracted), and 1/d by
# Newton's iteration from a bit-trick guess instead of a division (vdivpd is the
# slowest instruction of an epoch). -x is clamped so that 1 + exp(-x) stays finite and
# its reciprocal normal: sigmoid(x) below -700 (float32: -87) is about 1e-304 (1e-38),
# not 0.
FAST64 = (
    (2.763274117983013e-06, 2.487616657893529e-05, 0.00019841190515951194,
     0.001388882167028695, 0.008333333367473737, 0.041666666891019576,
     0.16666666666615257, 0.4999999999979779, 1.000000000000001, 1.0),
    700.0, 0x7FDE623822FC16E6, 4,
)  # fmt: skip
_f4 = np.float32
FAST32 = (
    tuple(_f4(c) for c in (0.008369150571525097, 0.04187566787004471, 0.16666504740715027,
                           0.4999937117099762, 1.0, 1.0)),
    _f4(87.0), 0x7EF311C7, 3,
)  # fmt: skip


def _fast_consts(x):
    """(coefficients highest first, clamp of -x, reciprocal magic, Newton steps)."""


@overload(_fast_consts, inline="always", jit_options=JIT)
def _fast_consts_impl(x):
    consts = FAST32 if x == types.float32 else FAST64
    return lambda x: consts


@intrinsic
def _float_as_bits(typingctx, x):
    """The bits of a float as an int64 (a bitcast; float32's sign-extended)."""

    def codegen(context, builder, signature, args):
        fty = context.get_value_type(x)
        ity = ir.IntType(fty.get_abi_size(context.target_data) * 8)
        bits = builder.bitcast(args[0], ity)
        return bits if ity.width == 64 else builder.sext(bits, ir.IntType(64))

    return types.int64(x), codegen


@njit(inline="always", **JIT)
def _newton(y, d, one):
    return y + y * (one - d * y)


@njit(inline="always", **JIT)
def _recip(d):
    """1 / d for a finite d >= 1: a guess within 5% by subtracting the bits from a magic
    constant, then Newton steps y += y * (1 - d * y), each squaring the error (three
    for float32, four for float64)."""
    _, _, magic, steps = _fast_consts(d)
    one = _exp_consts(d)[1][-1]
    y = _bits_as_float(magic - _float_as_bits(d), d)
    y = _newton(_newton(_newton(y, d, one), d, one), d, one)
    return _newton(y, d, one) if steps == 4 else y


@njit(inline="always", **JIT)
def _horner6(r, c):
    return ((((c[0] * r + c[1]) * r + c[2]) * r + c[3]) * r + c[4]) * r + c[5]


@njit(inline="always", **JIT)
def _horner10(r, c):
    p = (((c[0] * r + c[1]) * r + c[2]) * r + c[3]) * r + c[4]
    return ((((p * r + c[5]) * r + c[6]) * r + c[7]) * r + c[8]) * r + c[9]


def _horner(r, c):
    """The polynomial c (highest degree first) at r by Horner's scheme."""


@overload(_horner, inline="always", jit_options=JIT)
def _horner_impl(r, c):
    f = _horner10 if len(c) == 10 else _horner6
    return lambda r, c: f(r, c)


@njit(inline="always", **JIT)
def _sigmoid_cheap(x):
    """1 / (1 + exp(-x)), fastmath's way."""
    c, clamp, _, _ = _fast_consts(x)
    z = -x
    z = clamp if z > clamp else z  # a NaN stays NaN
    r, kf = _exp_reduce(z)
    return _recip(c[-1] + _exp_scale(_horner(r, c), kf))


@njit(inline="always", **JIT)
def _sigmoid4_cheap(x0, x1, x2, x3):
    """``_sigmoid4`` of the fastmath kernel."""
    return _sigmoid_cheap(x0), _sigmoid_cheap(x1), _sigmoid_cheap(x2), _sigmoid_cheap(x3)


def _tile(
    X, Y, Wh, Wz, alpha, epochs, sigmoid_out, sequential, every, stop_below, diverge_above,
    loss_out, istats, fstats, r0, nt, w,
):  # fmt: skip
    """Train runs ``r0 .. r0 + nt`` of the batch in one tile of ``T`` lanes (scratch w).

    Every hot loop runs across the lanes (or across hidden units and lanes at
    once, ``u = j * T + t``) with no branch inside, so LLVM vectorises it. A run
    that stops hands its weights back to ``Wh``, ``Wz`` at once and its lane is
    reset to zero weights and zero alpha, where it idles, so the updates need no
    mask; padding lanes (``nt <= t < T``) idle from the start.
    """
    wh, wz, a, act, h, dh, dz = w.wh, w.wz, w.a, w.act, w.h, w.dh, w.dz
    accw, accwh, acc, zs, sq = w.accw, w.accwh, w.acc, w.zs, w.sq
    min_loss, last_loss, min_epoch, last = w.min_loss, w.last_loss, w.min_epoch, w.last
    status = w.status
    n, ni = X.shape
    no = Y.shape[1]
    nh = wh.shape[1]
    T = a.shape[0]
    m = nh * T
    q, T4 = m // 4, T // 4  # T is a multiple of 4
    Xf = X.reshape(n * ni)  # X[s, k] = Xf[s * ni + k]
    whf = wh.reshape(ni, m)
    hf = h.reshape(n, m)
    dhf = dh.reshape(n, m)
    h2 = h.reshape(n * nh, T)  # h[s, j] = h2[s * nh + j]
    wz2 = wz.reshape(nh * no, T)  # wz[j, o] = wz2[j * no + o]
    dz2 = dz.reshape(n * no, T)  # dz[s, o] = dz2[s * no + o]
    zero, one = a.dtype.type(0), a.dtype.type(1)  # of the training dtype
    size = a.dtype.type(n * no)
    for t in range(T):
        wt = t < nt
        act[t] = wt
        a[t] = alpha[r0 + t] if wt else zero
        min_loss[t] = np.inf
        last_loss[t] = np.nan
        min_epoch[t] = 0
        last[t] = 0
        status[t] = RAN_ALL
    for k in range(ni):
        for j in range(nh):
            for t in range(T):
                wh[k, j, t] = Wh[k, j, r0 + t] if t < nt else zero
    for j in range(nh):
        for o in range(no):
            for t in range(T):
                wz[j, o, t] = Wz[j, o, r0 + t] if t < nt else zero
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
                hf[s, u], hf[s, q + u], hf[s, 2 * q + u], hf[s, 3 * q + u] = _sigmoid4(
                    accw[u], accw[q + u], accw[2 * q + u], accw[3 * q + u]
                )
            for o in range(no):
                _sum_rows(acc, h2, s * nh, 1, wz2, o, no, nh)  # H[s] @ Wz[:, o]
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
                        dz[s, o, t] = (e * a[t]) * (zt * (one - zt))
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
                _sum_rows(acc, h2, j, nh, dz2, o, no, n)  # H[:, j] . dZ[:, o]
                for t in range(T):
                    wz[j, o, t] += acc[t]
        if sequential:
            _hidden_delta(h, dz, wz, dh)
        # Wh += X.T @ dH, across hidden units and lanes at once
        _sum_outer(accwh, X, dhf, n)
        for k in range(ni):
            for u in range(m):
                whf[k, u] += accwh[k, u]
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


# The fastmath flags LLVM may use: FMA contraction, reassociation, reciprocals,
# approximate functions, no signed zeros. Not nnan/ninf: divergence is found by
# testing the loss for NaN and infinity.
FASTMATH = {"contract", "reassoc", "arcp", "afn", "nsz"}


def _run_tile(
    X, Y, Wh, Wz, alpha, epochs, sigmoid_out, sequential, every, stop_below, diverge_above,
    loss_out, istats, fstats, r0, nt, w,
):  # fmt: skip
    """The tile kernel of w's mode: ``_train_tile`` or its fastmath twin."""


@overload(_run_tile, jit_options=JIT)
def _run_tile_impl(
    X, Y, Wh, Wz, alpha, epochs, sigmoid_out, sequential, every, stop_below, diverge_above,
    loss_out, istats, fstats, r0, nt, w,
):  # fmt: skip
    fn = _train_tile_fast if is_type_of(w, FastScratch) else _train_tile

    def impl(
        X, Y, Wh, Wz, alpha, epochs, sigmoid_out, sequential, every, stop_below,
        diverge_above, loss_out, istats, fstats, r0, nt, w,
    ):  # fmt: skip
        fn(X, Y, Wh, Wz, alpha, epochs, sigmoid_out, sequential, every, stop_below,
           diverge_above, loss_out, istats, fstats, r0, nt, w)  # fmt: skip

    return impl


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


@njit(**JIT)
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
    """
    R = alpha.shape[0]
    T = w.a.shape[0]
    for r0 in range(0, R, T):
        _run_tile(
            X, Y, Wh, Wz, alpha, epochs, sigmoid_out, sequential, every, stop_below,
            diverge_above, loss_out, istats, fstats, r0, min(T, R - r0), w,
        )  # fmt: skip


# The exact kernel, and its fastmath twin: the same source with LLVM's fastmath flags
# and the cheaper sigmoid (the globals are copied here, after every definition).
_train_tile = njit(pipeline_class=NoAliasCompiler, **JIT)(_tile)
_train_tile_fast = njit(pipeline_class=NoAliasCompiler, fastmath=FASTMATH, **JIT)(
    clone_function(_tile, "_tile_fastmath", _sigmoid4=_sigmoid4_cheap)
)


_VECTOR_OP = re.compile(r"\bv(mul|add|sub|div)p[sd]\b.*\b([yz]mm)")
_SCALAR_OP = re.compile(r"\bv(mul|add|sub|div)s[sd]\b")
_FMA = re.compile(r"\bvf(n?m(add|sub)|madd|msub)\w*\b")
_CALL = re.compile(r"\bcall[lq]?\s+(\S+)")


def tile_asm(
    hidden: int = 4,
    sigmoid_out: bool = False,
    sequential: bool = True,
    dtype: str = "float64",
    fastmath: bool = False,
) -> str:
    """Assembly of the tile kernel of one mode, compiled afresh (cached code cannot be
    inspected)."""
    py = (_train_tile_fast if fastmath else _train_tile).py_func
    flags = {**JIT, "cache": False} | ({"fastmath": FASTMATH} if fastmath else {})
    fn = njit(pipeline_class=NoAliasCompiler, **flags)(py)
    f = np.dtype(dtype)
    n, ni, no, R = 4, 2, 1, TILE
    fn(
        np.ones((n, ni), f), np.ones((n, no), f), np.zeros((ni, hidden, R), f),
        np.zeros((hidden, no, R), f), np.zeros(R, f), 1, sigmoid_out, sequential, 1, -np.inf,
        np.inf, np.zeros((1, R)), np.zeros((R, 3), dtype=np.int64), np.zeros((R, 2)), 0, R,
        scratch(n, ni, hidden, no, TILE, f, fastmath),
    )  # fmt: skip
    return "\n".join(fn.inspect_asm().values())


def vector_report(dtype: str = "float64", fastmath: bool = False) -> dict:
    """Count packed arithmetic in the tile kernel's assembly (does it vectorise?).

    ``packed``: lines of ``v{mul,add,sub,div}p{d,s}`` on ymm/zmm registers; ``zmm`` and
    ``ymm`` split them by width; ``scalar``: the same operations as ``...s{d,s}``;
    ``fma``: fused multiply-adds (none in the exact modes); ``calls``: call targets;
    ``exp_call``: whether any call to a libm exp remains.
    """
    asm = tile_asm(dtype=dtype, fastmath=fastmath)
    lines = asm.splitlines()
    widths = [m.group(2) for m in map(_VECTOR_OP.search, lines) if m]
    calls = sorted({m.group(1) for m in map(_CALL.search, lines) if m})
    return {
        "tile": TILE,
        "packed": len(widths),
        "zmm": widths.count("zmm"),
        "ymm": widths.count("ymm"),
        "scalar": sum(1 for line in lines if _SCALAR_OP.search(line)),
        "fma": sum(1 for line in lines if _FMA.search(line)),
        "round": len(re.findall(r"\bv(rndscale|round)p[sd]\b", asm)),
        "calls": calls,
        "exp_call": any("exp" in c for c in calls),
    }
