"""The exp and the sigmoid of the CPU kernels, in every precision mode.

Exact modes: exp by Cody-Waite reduction, a polynomial by Estrin's scheme (degree 9
in float64, 4 in float32, ``runner.kernel.codes``' constants) and scaling by 2**k,
either by two bit-built powers of two or, where AVX-512 vectorises it, by one
``llvm.ldexp`` (the same number); ``runner.kernel.reference`` does the same steps in
NumPy. ``sigmoid4`` is four sigmoids side by side, computed without negations.
Fastmath: a shorter polynomial by Horner and 1/d by Newton's iteration, or a
division on CPUs whose divider is quicker (``divides_fast``; ``sigmoid4_cheap``). The
float type of the argument picks constants at compile time.

The small dispatch overloads (constants, the scale, the polynomial) are compiled once
per float type as functions of their own, which LLVM inlines: inlined into Numba's IR
instead, every call site would be typed and lowered again (a fifth of a cold compile).
They are never fastmath (``EXACT_JIT``), whichever kernel compiles them first.
Horner's polynomial stays inlined in Numba's IR, so that fastmath's flags reach it.

``tanh`` (the hidden layer's, docs/numerics.md) is ``runner.kernel.reference.tanh``'s
operations in the same order: a polynomial below atanh(1/2), the exp's reduction and
polynomial above, both computed and one selected (no branch in the lanes' loops). The
exact and the fastmath kernels share it, so all its arithmetic is inlined in Numba's IR,
under each caller's own flags: an overload compiled once per float type is compiled
with the flags of the first caller in the process, and a fastmath first caller would
leave its FMAs in the exact kernel's tanh.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import binding as llvm
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

from runner.kernel.codes import EXP32, EXP64, EXP_COEFFS, EXP_COEFFS32, TANH32, TANH64
from runner.kernel.numba_ext import (
    EXACT_JIT,
    JIT,
    compile_target,
    compiles_for_avx512,
    frozen_fptosi,
)


def _exp_consts(x):
    """(HI, LO, LOG2E, LN2_HI, LN2_LO), coefficients: the constants of x's float type."""


@overload(_exp_consts, jit_options=JIT)
def _exp_consts_impl(x):
    consts = (EXP32, EXP_COEFFS32) if x == types.float32 else (EXP64, EXP_COEFFS)
    return lambda x: consts


def _float_bits(x):
    """(exponent bias, mantissa bits) of x's float type."""


@overload(_float_bits, jit_options=JIT)
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


def has_avx512() -> bool:
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
def scale_bits(p, kf):
    """p * 2**kf as two exact-or-once-rounded products by bitcast powers of two."""
    bias, shift = _float_bits(p)
    k = _to_int(kf)
    k1 = k >> 1
    k2 = k - k1
    return (p * _bits_as_float((k1 + bias) << shift, p)) * _bits_as_float((k2 + bias) << shift, p)


@njit(inline="always", **JIT)
def scale_ldexp(p, kf):
    """The same number as ``scale_bits``: |kf| <= 1077 (150 in float32) and
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
    return has_avx512() and LDEXP_VECTORISES


@overload(_exp_scale, jit_options=EXACT_JIT)
def _exp_scale_impl(p, kf):
    f = scale_ldexp if uses_ldexp() else scale_bits
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


@overload(_q, jit_options=EXACT_JIT)
def _q_impl(r, r2, c):
    f = _q9 if len(c) == len(EXP_COEFFS) else _q4
    return lambda r, r2, c: f(r, r2, c)


@overload(_q_neg, jit_options=EXACT_JIT)
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
def sigmoid4(x0, x1, x2, x3):
    """Four sigmoids side by side: independent dependency chains for the FP pipes."""
    return _sigmoid_fast(x0), _sigmoid_fast(x1), _sigmoid_fast(x2), _sigmoid_fast(x3)


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


@overload(_fast_consts, jit_options=JIT)
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
def _recip_guess(d):
    """A guess of 1 / d within 5% for a finite d >= 1: the bits subtracted from a magic
    constant."""
    return _bits_as_float(_fast_consts(d)[2] - _float_as_bits(d), d)


@njit(inline="always", **JIT)
def _recip3(d):
    """1 / d by the guess and three Newton steps y += y * (1 - d * y), each squaring the
    error (float32)."""
    one = _exp_consts(d)[1][-1]
    return _newton(_newton(_newton(_recip_guess(d), d, one), d, one), d, one)


@njit(inline="always", **JIT)
def _recip4(d):
    """1 / d by the guess and four Newton steps (float64). No branch on the count: a
    conditional inside the inlined overload trips Numba's SSA check (a warning)."""
    one = _exp_consts(d)[1][-1]
    return _newton(_recip3(d), d, one)


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


def divides_fast() -> bool:
    """Whether fastmath's sigmoid divides rather than using Newton's reciprocal: on AMD's
    Zen cores (CPU names ``znver*``), whose divider is quicker than four dependent
    Newton steps, and not elsewhere (Intel's 512-bit division is the slowest
    instruction of an epoch). Decided when the kernel is compiled, for the CPU Numba
    compiles for: its cache keys entries by CPU name."""
    return compile_target().startswith("znver")


def _inverse(d):
    """1 / d in fastmath's sigmoid: a division (``divides_fast``) or Newton's steps."""


@overload(_inverse, inline="always", jit_options=JIT)
def _inverse_impl(d):
    if divides_fast():
        return lambda d: _exp_consts(d)[1][-1] / d
    if (FAST32 if d == types.float32 else FAST64)[3] == 3:
        return lambda d: _recip3(d)
    return lambda d: _recip4(d)


@njit(inline="always", **JIT)
def _sigmoid_cheap(x):
    """1 / (1 + exp(-x)), fastmath's way."""
    c, clamp, _, _ = _fast_consts(x)
    z = -x
    z = clamp if z > clamp else z  # a NaN stays NaN
    r, kf = _exp_reduce(z)
    return _inverse(c[-1] + _exp_scale(_horner(r, c), kf))


@njit(inline="always", **JIT)
def sigmoid4_cheap(x0, x1, x2, x3):
    """``sigmoid4`` of the fastmath kernel."""
    return _sigmoid_cheap(x0), _sigmoid_cheap(x1), _sigmoid_cheap(x2), _sigmoid_cheap(x3)


def _tanh_consts(x):
    """(ONE, HALF, P highest degree first) of tanh in x's float type."""


@overload(_tanh_consts, jit_options=JIT)
def _tanh_consts_impl(x):
    consts = TANH32 if x == types.float32 else TANH64
    return lambda x: consts


@njit(inline="always", **JIT)
def _tanh_p11(s, c):
    p = (((c[0] * s + c[1]) * s + c[2]) * s + c[3]) * s + c[4]
    p = ((((p * s + c[5]) * s + c[6]) * s + c[7]) * s + c[8]) * s + c[9]
    return p * s + c[10]


def _tanh_poly(s, c):
    """P(s) by Horner's scheme, c highest degree first (float64: 11, float32: 6)."""


@overload(_tanh_poly, inline="always", jit_options=JIT)
def _tanh_poly_impl(s, c):
    f = _tanh_p11 if len(c) == 11 else _horner6
    return lambda s, c: f(s, c)


def _q_inlined(r, r2, c):
    """``_q``, inlined in Numba's IR (so under the caller's flags only)."""


@overload(_q_inlined, inline="always", jit_options=JIT)
def _q_inlined_impl(r, r2, c):
    f = _q9 if len(c) == len(EXP_COEFFS) else _q4
    return lambda r, r2, c: f(r, r2, c)


@njit(inline="always", **JIT)
def _pow2(kf, like):
    """2**kf in like's float type from the bits of two powers of two (kf integral, the
    product exact in tanh's range)."""
    bias, shift = _float_bits(like)
    k = _to_int(kf)
    k1 = k >> 1
    return _bits_as_float((k1 + bias) << shift, like) * _bits_as_float(
        (k - k1 + bias) << shift, like
    )


@njit(inline="always", **JIT)
def tanh(x):
    """``reference.tanh``: a = |x|; below HALF a + a * (s * P(s)), s = a * a; else
    1 - 2 / (t + 2), t = exp(2b) - 1 = 2**k * (exp(r) - 1) + (2**k - 1), b = min(a, ONE);
    x's sign. A NaN stays NaN."""
    top, half, c = _tanh_consts(x)
    _, ce = _exp_consts(x)
    one = ce[-1]
    two = one + one
    a = abs(x)
    s = a * a
    small = a + a * (s * _tanh_poly(s, c))
    b = top if a > top else a  # a NaN stays NaN
    r, kf = _exp_reduce(b + b)
    scale = _pow2(kf, x)  # 2**k, exact
    r2 = r * r
    t = (ce[-2] * r + r2 * _q_inlined(r, r2, ce)) * scale + (scale - one)
    th = small if a < half else one - two / (t + two)
    return math.copysign(th, x)


@njit(inline="always", **JIT)
def tanh4(x0, x1, x2, x3):
    """Four tanh side by side."""
    return tanh(x0), tanh(x1), tanh(x2), tanh(x3)
