"""The CUDA kernel (numba-cuda): one thread trains one run. No I/O.

It does the CPU kernel's arithmetic (``runner.kernel.cpu``, ``.exp``) operation by operation:
the same exp (Cody-Waite reduction, Estrin polynomial of degree 11 in float64 and
6 in float32, scaling by two bit-built powers of two), the same sums of products
left to right from 0.0, the same divergence, stop and record rules. NVVM contracts
``a * b + c`` into an FMA by default, even without fastmath; the exact modes
therefore multiply and add with libdevice's ``dmul_rn``/``dadd_rn`` (``fmul_rn``/
``fadd_rn`` in float32), which PTX never fuses, and divide with the IEEE
``ddiv_rn``/``fdiv_rn``. ``fastmath`` uses plain operators (FMA), ``math.exp`` and
cuda.jit's fastmath flag: its bytes differ from the CPU's.

numba-cuda's simulator (``NUMBA_ENABLE_CUDASIM=1``) runs the same kernel source in
Python; its libdevice stubs return NaN or None, so there the operations are plain
NumPy scalar operations, which round the same way (one IEEE rounding each).
"""

from __future__ import annotations

import math
from functools import cache
from typing import NamedTuple

import numpy as np
from numba import cuda, float32, float64, int32, int64

from runner.kernel import codes
from runner.kernel.codes import (  # the CPU kernel's column and status numbers
    CONVERGED,
    DIVERGED,
    EPOCHS_RUN,
    FINAL_LOSS,
    FIRST_LOSS,
    MIN_EPOCH,
    MIN_LOSS,
    RAN_ALL,
    STATUS,
    TAIL_MEAN,
)  # fmt: skip
from runner.kernel.numba_ext import cuda_simulator

SIMULATOR = cuda_simulator()


def device(fn):
    """A device function; in the simulator the plain Python function (the simulator's
    wrapper swaps module globals on every call, which costs more than the arithmetic)."""
    return fn if SIMULATOR else cuda.jit(device=True, inline=True)(fn)


THREADS = 128  # threads per block: the kernel is register heavy (weights live there)


def _exp_constants(dtype: str):
    """The CPU exp's (HI, LO, LOG2E, LN2_HI, LN2_LO), coefficients, exponent bias and
    mantissa bits for ``dtype``, from runner.kernel.codes."""
    if dtype == "float64":
        return codes.EXP64, codes.EXP_COEFFS, 1023, 52
    return codes.EXP32, codes.EXP_COEFFS32, 127, 23


def _ops(dtype: str, fastmath: bool):
    """(mul, add, sub, div, rint, bits): the arithmetic of a mode as device functions."""
    if SIMULATOR or fastmath:

        @device
        def mul(a, b):
            return a * b

        @device
        def add(a, b):
            return a + b

        @device
        def sub(a, b):
            return a - b

        @device
        def div(a, b):
            return a / b

    else:
        from numba.cuda import libdevice as ld

        if dtype == "float64":
            mul_rn, add_rn, div_rn = ld.dmul_rn, ld.dadd_rn, ld.ddiv_rn

            @device
            def sub(a, b):
                return add_rn(a, -b)  # negation is exact: a - b, rounded once

        else:
            mul_rn, add_rn, div_rn, sub_rn = ld.fmul_rn, ld.fadd_rn, ld.fdiv_rn, ld.fsub_rn

            @device
            def sub(a, b):
                return sub_rn(a, b)

        @device
        def mul(a, b):
            return mul_rn(a, b)

        @device
        def add(a, b):
            return add_rn(a, b)

        @device
        def div(a, b):
            return div_rn(a, b)

    if SIMULATOR:
        ftype, itype = (np.float64, np.int64) if dtype == "float64" else (np.float32, np.int32)

        def rint(x):
            return np.rint(x)

        def bits(k):
            return np.array(k, dtype=itype).view(ftype)[()]

    else:
        from numba.cuda import libdevice as ld

        rint_, bits_ = (
            (ld.rint, ld.longlong_as_double) if dtype == "float64" else (ld.rintf, ld.int_as_float)
        )

        @device
        def rint(x):
            return rint_(x)

        @device
        def bits(k):
            return bits_(k)

    return mul, add, sub, div, rint, bits


def _exact_exp(dtype: str, mul, add, sub, rint, bits):
    """The CPU kernel's exp (``exp.fexp`` with ``scale_bits``), operation by operation:
    q(r) of degree 9 in float64, 4 in float32, by the same Estrin scheme."""
    f = np.float64 if dtype == "float64" else np.float32
    consts, coeffs, BIAS, SHIFT = _exp_constants(dtype)
    HI, LO, LOG2E, LN2_HI, LN2_LO = (f(v) for v in consts)
    c = tuple(f(v) for v in coeffs)  # q's coefficients, highest first; then r's and 1
    to_int = int64 if dtype == "float64" else int32

    ONE_ = c[-1]
    if len(c) == 12:
        c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, _ = c

        @device
        def em1(r):  # exp(r) - 1
            r2 = mul(r, r)
            b0 = add(c9, mul(c8, r))
            b1 = add(c7, mul(c6, r))
            b2 = add(c5, mul(c4, r))
            b3 = add(c3, mul(c2, r))
            b4 = add(c1, mul(c0, r))
            r4 = mul(r2, r2)
            d0 = add(b0, mul(b1, r2))
            d1 = add(b2, mul(b3, r2))
            r8 = mul(r4, r4)
            q = add(add(d0, mul(d1, r4)), mul(b4, r8))
            return add(mul(c10, r), mul(r2, q))

    else:
        c0, c1, c2, c3, c4, c5, _ = c

        @device
        def em1(r):
            r2 = mul(r, r)
            b0 = add(c4, mul(c3, r))
            b1 = add(c2, mul(c1, r))
            r4 = mul(r2, r2)
            q = add(add(b0, mul(b1, r2)), mul(c0, r4))
            return add(mul(c5, r), mul(r2, q))

    @device
    def reduce(x):
        """(kf, r): kf = rint(x / ln2), r = x - kf * ln2 (Cody-Waite), x clamped to range."""
        x = HI if x > HI else x  # a NaN stays NaN
        x = LO if x < LO else x
        kf = rint(mul(x, LOG2E))
        return kf, sub(sub(x, mul(kf, LN2_HI)), mul(kf, LN2_LO))

    @device
    def scales(kf):
        """2**n1 and 2**n2, n1 + n2 = kf, from their bits."""
        n = int(kf) if kf == kf else 0  # a NaN's kf: any integer, p carries the NaN
        n1 = n >> 1
        n2 = n - n1
        return bits(to_int((n1 + BIAS) << SHIFT)), bits(to_int((n2 + BIAS) << SHIFT))

    @device
    def fexp(x):
        kf, r = reduce(x)
        s1, s2 = scales(kf)
        return mul(mul(add(ONE_, em1(r)), s1), s2)

    return fexp, em1, reduce, scales


def _fast_exp():
    @device
    def fexp(x):
        return math.exp(x)

    return fexp


def _exact_tanh(dtype: str, mul, add, sub, div, parts):
    """runner.kernel.reference.tanh, operation by operation: an odd polynomial below
    atanh(1/2), 1 - 2 / (exp(2a) + 1) above it, the sign copied from x."""
    from runner.kernel.reference import TANH_HALF, TANH_ONE, TANH_P, TANH_P32

    _, em1, reduce, scales = parts
    f = np.float64 if dtype == "float64" else np.float32
    P = tuple(f(c) for c in (TANH_P if dtype == "float64" else TANH_P32))[::-1]  # highest first
    ONE, TWO = f(1.0), f(2.0)
    HALF, TOP = f(TANH_HALF), f(TANH_ONE[dtype == "float32"])

    @device
    def tanh(x):
        a = abs(x)
        s = mul(a, a)
        q = P[0]
        for i in range(1, len(P)):
            q = add(mul(q, s), P[i])
        if a < HALF:
            th = add(a, mul(a, mul(s, q)))
        else:
            b = TOP if a > TOP else a  # a NaN stays NaN
            kf, r = reduce(add(b, b))
            s1, s2 = scales(kf)
            scale = mul(s1, s2)
            t = add(mul(em1(r), scale), sub(scale, ONE))
            th = sub(ONE, div(TWO, add(t, TWO)))
        return math.copysign(th, x)

    return tanh


def _activation(name: str, dtype: str, fastmath: bool, ops, parts):
    """(act, deriv) of the hidden units as device functions; ``deriv(h)`` is act'(A) from
    the activation's output h, as the reference takes it (relu: 1 or 0 as a number)."""
    mul, add, sub, div = ops[:4]
    f = np.float64 if dtype == "float64" else np.float32
    ZERO, ONE = f(0.0), f(1.0)
    fexp = parts[0]

    if name == "sigmoid":

        @device
        def act(x):
            return div(ONE, add(ONE, fexp(-x)))

        @device
        def deriv(h):
            return mul(h, sub(ONE, h))

    elif name == "tanh":
        if fastmath:

            @device
            def act(x):
                return math.tanh(x)

        else:
            act = _exact_tanh(dtype, mul, add, sub, div, parts)

        @device
        def deriv(h):
            return sub(ONE, mul(h, h))

    elif name == "relu":

        @device
        def act(x):
            return x if x > ZERO or x != x else mul(ZERO, x)  # the reference's 0 * x

        @device
        def deriv(h):
            return ONE if h > ZERO else ZERO

    else:

        @device
        def act(x):
            return x

        @device
        def deriv(h):
            return ONE

    return act, deriv


class Model(NamedTuple):
    """The compile-time choices of a variant beyond the output and update order."""

    activation: str = "sigmoid"
    bias: bool = False
    c_h: float = 1.0  # pre-activation scales (mean-field: g / sqrt(inputs), 1 / hidden)
    c_o: float = 1.0


NOTEBOOK = Model()  # the notebook's network


def _epoch(
    n: int, ni: int, nh: int, no: int, sigmoid_out: bool, sequential: bool,
    dtype: str, fastmath: bool, model: Model,
):  # fmt: skip
    """(forward, update): one epoch of one run as two device functions, the shape and
    the mode compile-time constants. ``forward`` returns the epoch's loss. The order of
    operations is docs/numerics.md's (runner.kernel.reference.train_reference)."""
    ops = _ops(dtype, fastmath)
    mul, add, sub, div, rint, bits = ops
    parts = (_fast_exp(), None, None, None) if fastmath else _exact_exp(dtype, *ops[:3], rint, bits)
    act, deriv = _activation(model.activation, dtype, fastmath, ops, parts)
    sigmoid = _activation("sigmoid", dtype, fastmath, ops, parts)[0]
    f = np.float64 if dtype == "float64" else np.float32
    ZERO, ONE, SIZE = f(0.0), f(1.0), f(n * no)
    C_H, C_O = f(model.c_h), f(model.c_o)
    SCALED_H, SCALED_O = model.c_h != 1.0, model.c_o != 1.0
    NI, NH, NO, N, B = ni, nh, no, n, bool(model.bias)

    @device
    def forward(X, Y, wh, wz, h, dzo, dzh, so, sh):
        """Forward pass, error, each layer's output delta; squared errors summed in order."""
        sq = ZERO
        for s in range(N):
            for j in range(NH):
                acc = ZERO
                for k in range(NI):
                    acc = add(acc, mul(X[s, k], wh[k, j]))
                if B:
                    acc = add(acc, wh[NI, j])  # the ones column: 1 * w is w
                h[s, j] = act(mul(acc, C_H) if SCALED_H else acc)
            for o in range(NO):
                acc = ZERO
                for j in range(NH):
                    acc = add(acc, mul(h[s, j], wz[j, o]))
                if B:
                    acc = add(acc, wz[NH, o])
                if SCALED_O:
                    acc = mul(acc, C_O)
                if sigmoid_out:
                    zt = sigmoid(acc)
                    e = sub(Y[s, o], zt)
                    d = mul(zt, sub(ONE, zt))
                    dzo[s, o] = mul(mul(e, so), d)
                    dzh[s, o] = mul(mul(e, sh), d)
                else:
                    e = sub(Y[s, o], acc)
                    dzo[s, o] = mul(e, so)
                    dzh[s, o] = mul(e, sh)
                sq = add(sq, mul(e, e))
        return div(sq, SIZE)

    update = _backward(n, ni, nh, no, sequential, ops, deriv, B, ZERO)
    return forward, update


def _backward(n: int, ni: int, nh: int, no: int, sequential: bool, ops, deriv, B: bool, ZERO):
    """``update``: one epoch's weight updates of one run, as a device function."""
    mul, add = ops[0], ops[1]
    NI, NH, NO, N = ni, nh, no, n

    @device
    def hidden_delta(h, dzh, wz, dh):
        """dA = (dZh @ Wz[:hidden].T) * act'(A)."""
        for s in range(N):
            for j in range(NH):
                acc = ZERO
                for o in range(NO):
                    acc = add(acc, mul(dzh[s, o], wz[j, o]))
                dh[s, j] = mul(acc, deriv(h[s, j]))

    @device
    def update(X, wh, wz, h, dh, dzo, dzh):
        """Wz += Hb.T @ dZo, Wh += Xb.T @ dA (dA from the new Wz if sequential)."""
        if not sequential:
            hidden_delta(h, dzh, wz, dh)
        for o in range(NO):
            for j in range(NH):
                acc = ZERO
                for s in range(N):
                    acc = add(acc, mul(h[s, j], dzo[s, o]))
                wz[j, o] = add(wz[j, o], acc)
            if B:
                acc = ZERO
                for s in range(N):
                    acc = add(acc, dzo[s, o])
                wz[NH, o] = add(wz[NH, o], acc)
        if sequential:
            hidden_delta(h, dzh, wz, dh)
        for j in range(NH):
            for k in range(NI):
                acc = ZERO
                for s in range(N):
                    acc = add(acc, mul(X[s, k], dh[s, j]))
                wh[k, j] = add(wh[k, j], acc)
            if B:
                acc = ZERO
                for s in range(N):
                    acc = add(acc, dh[s, j])
                wh[NI, j] = add(wh[NI, j], acc)

    return update


@cache
def make_kernel(
    n: int, ni: int, nh: int, no: int, sigmoid_out: bool, sequential: bool,
    dtype: str = "float64", fastmath: bool = False, model: Model = NOTEBOOK,
):  # fmt: skip
    """The kernel for one shape, mode and model (all compile-time constants).

    ``kernel[blocks, THREADS](X, Y, Wh, Wz, so, sh, epochs, every, tail, stop_below,
    diverge_above, diverge_factor, loss_out, istats, fstats)``: arrays as ``cpu.train_batch`` takes
    them (runs last; with a bias, Wh and Wz have one more row), X, Y, Wh, Wz in
    ``dtype``, and per run the output and hidden layers' step factors ``so``, ``sh``
    (runner.kernel.reference: alpha times the step's and scales' factors; both alpha for
    the notebook's model).
    """
    forward, update = _epoch(n, ni, nh, no, sigmoid_out, sequential, dtype, fastmath, model)
    f = np.float64 if dtype == "float64" else np.float32
    ft = float64 if dtype == "float64" else float32
    NI, NH, NO, N = ni + bool(model.bias), nh, no, n
    NHB = nh + bool(model.bias)

    @cuda.jit(fastmath=fastmath)
    def kernel(
        X, Y, Wh, Wz, so, sh, epochs, every, tail, stop_below, diverge_above, diverge_factor,
        loss_out, istats, fstats,
    ):  # fmt: skip
        r = cuda.grid(1)
        if r >= so.shape[0]:
            return
        wh = cuda.local.array((NI, NH), ft)
        wz = cuda.local.array((NHB, NO), ft)
        h = cuda.local.array((N, NH), ft)
        dh = cuda.local.array((N, NH), ft)
        dzo = cuda.local.array((N, NO), ft)
        dzh = cuda.local.array((N, NO), ft)
        for k in range(NI):
            for j in range(NH):
                wh[k, j] = Wh[k, j, r]
        for j in range(NHB):
            for o in range(NO):
                wz[j, o] = Wz[j, o, r]
        a_o, a_h = so[r], sh[r]
        min_loss, last_loss = f(np.inf), f(np.nan)
        min_epoch, last, status = 0, 0, RAN_ALL
        first_loss, tail_sum, tail_n = math.nan, 0.0, 0
        for epoch in range(1, epochs + 1):
            loss = forward(X, Y, wh, wz, h, dzo, dzh, a_o, a_h)
            last, last_loss = epoch, loss
            if epoch == 1:
                first_loss = float64(loss)
            if epoch > epochs - tail:  # float64, in epoch order, as on the CPU
                tail_sum += float64(loss)
                tail_n += 1
            if loss < min_loss:
                min_loss, min_epoch = loss, epoch
            if every > 0 and (epoch == 1 or epoch % every == 0):
                loss_out[epoch - 1 if every == 1 else epoch // every, r] = loss
            past = diverge_factor != math.inf and not float64(loss) <= diverge_factor * first_loss
            if not (math.isfinite(loss) and loss <= diverge_above) or past:
                status = DIVERGED  # recorded, then stop before this epoch's update
                break
            update(X, wh, wz, h, dh, dzo, dzh)
            if loss < stop_below:
                status = CONVERGED  # the epoch's update is kept
                break
        nxt = last if every <= 1 else last // every + 1
        for row in range(nxt, loss_out.shape[0]):  # slots after the run stopped
            loss_out[row, r] = math.nan
        for k in range(NI):
            for j in range(NH):
                Wh[k, j, r] = wh[k, j]
        for j in range(NHB):
            for o in range(NO):
                Wz[j, o, r] = wz[j, o]
        istats[r, EPOCHS_RUN], istats[r, MIN_EPOCH], istats[r, STATUS] = last, min_epoch, status
        fstats[r, FINAL_LOSS], fstats[r, MIN_LOSS] = last_loss, min_loss
        fstats[r, FIRST_LOSS] = first_loss
        fstats[r, TAIL_MEAN] = tail_sum / tail_n if tail_n > 0 else float64(last_loss)

    return kernel
