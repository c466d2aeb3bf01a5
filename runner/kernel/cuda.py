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

import numpy as np
from numba import cuda, float32, float64, int32, int64

from runner.kernel import codes
from runner.kernel.codes import (  # the CPU kernel's column and status numbers
    CONVERGED,
    DIVERGED,
    EPOCHS_RUN,
    FINAL_LOSS,
    MIN_EPOCH,
    MIN_LOSS,
    RAN_ALL,
    STATUS,
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

    if len(c) == 12:
        c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11 = c

        @device
        def poly(r):
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
            return add(c11, add(mul(c10, r), mul(r2, q)))

    else:
        c0, c1, c2, c3, c4, c5, c6 = c

        @device
        def poly(r):
            r2 = mul(r, r)
            b0 = add(c4, mul(c3, r))
            b1 = add(c2, mul(c1, r))
            r4 = mul(r2, r2)
            q = add(add(b0, mul(b1, r2)), mul(c0, r4))
            return add(c6, add(mul(c5, r), mul(r2, q)))

    @device
    def fexp(x):
        x = HI if x > HI else x  # a NaN stays NaN
        x = LO if x < LO else x
        kf = rint(mul(x, LOG2E))
        p = poly(sub(sub(x, mul(kf, LN2_HI)), mul(kf, LN2_LO)))
        n = int(kf) if kf == kf else 0  # a NaN's kf: any integer, p carries the NaN
        n1 = n >> 1
        n2 = n - n1
        return mul(mul(p, bits(to_int((n1 + BIAS) << SHIFT))), bits(to_int((n2 + BIAS) << SHIFT)))

    return fexp


def _fast_exp():
    @device
    def fexp(x):
        return math.exp(x)

    return fexp


def _epoch(
    n: int, ni: int, nh: int, no: int, sigmoid_out: bool, sequential: bool,
    dtype: str, fastmath: bool,
):  # fmt: skip
    """(forward, update): one epoch of one run as two device functions, the shape and
    the mode compile-time constants. ``forward`` returns the epoch's loss."""
    mul, add, sub, div, rint, bits = _ops(dtype, fastmath)
    fexp = _fast_exp() if fastmath else _exact_exp(dtype, mul, add, sub, rint, bits)
    f = np.float64 if dtype == "float64" else np.float32
    ZERO, ONE, SIZE = f(0.0), f(1.0), f(n * no)
    NI, NH, NO, N = ni, nh, no, n

    @device
    def sigmoid(x):
        return div(ONE, add(ONE, fexp(-x)))

    @device
    def hidden_delta(h, dz, wz, dh):
        """dH = (dZ @ Wz.T) * H * (1 - H)."""
        for s in range(N):
            for j in range(NH):
                acc = ZERO
                for o in range(NO):
                    acc = add(acc, mul(dz[s, o], wz[j, o]))
                ht = h[s, j]
                dh[s, j] = mul(acc, mul(ht, sub(ONE, ht)))

    @device
    def forward(X, Y, wh, wz, h, dz, a):
        """Forward pass, error, output delta; squared errors summed in order."""
        sq = ZERO
        for s in range(N):
            for j in range(NH):
                acc = ZERO
                for k in range(NI):
                    acc = add(acc, mul(X[s, k], wh[k, j]))
                h[s, j] = sigmoid(acc)
            for o in range(NO):
                acc = ZERO
                for j in range(NH):
                    acc = add(acc, mul(h[s, j], wz[j, o]))
                if sigmoid_out:
                    zt = sigmoid(acc)
                    e = sub(Y[s, o], zt)
                    dz[s, o] = mul(mul(e, a), mul(zt, sub(ONE, zt)))
                else:
                    e = sub(Y[s, o], acc)
                    dz[s, o] = mul(e, a)
                sq = add(sq, mul(e, e))
        return div(sq, SIZE)

    @device
    def update(X, wh, wz, h, dh, dz):
        """Wz += H.T @ dZ, Wh += X.T @ dH (dH from the new Wz if sequential)."""
        if not sequential:
            hidden_delta(h, dz, wz, dh)
        for j in range(NH):
            for o in range(NO):
                acc = ZERO
                for s in range(N):
                    acc = add(acc, mul(h[s, j], dz[s, o]))
                wz[j, o] = add(wz[j, o], acc)
        if sequential:
            hidden_delta(h, dz, wz, dh)
        for k in range(NI):
            for j in range(NH):
                acc = ZERO
                for s in range(N):
                    acc = add(acc, mul(X[s, k], dh[s, j]))
                wh[k, j] = add(wh[k, j], acc)

    return forward, update


@cache
def make_kernel(
    n: int, ni: int, nh: int, no: int, sigmoid_out: bool, sequential: bool,
    dtype: str = "float64", fastmath: bool = False,
):  # fmt: skip
    """The kernel for one shape and mode (sizes are compile-time constants).

    ``kernel[blocks, THREADS](X, Y, Wh, Wz, alpha, epochs, every, stop_below,
    diverge_above, loss_out, istats, fstats)``: arrays as ``cpu.train_batch``
    takes them (runs last), X, Y, Wh, Wz and alpha in ``dtype``.
    """
    forward, update = _epoch(n, ni, nh, no, sigmoid_out, sequential, dtype, fastmath)
    f = np.float64 if dtype == "float64" else np.float32
    ft = float64 if dtype == "float64" else float32
    NI, NH, NO, N = ni, nh, no, n

    @cuda.jit(fastmath=fastmath)
    def kernel(
        X, Y, Wh, Wz, alpha, epochs, every, stop_below, diverge_above, loss_out, istats, fstats
    ):
        r = cuda.grid(1)
        if r >= alpha.shape[0]:
            return
        wh = cuda.local.array((NI, NH), ft)
        wz = cuda.local.array((NH, NO), ft)
        h = cuda.local.array((N, NH), ft)
        dh = cuda.local.array((N, NH), ft)
        dz = cuda.local.array((N, NO), ft)
        for k in range(NI):
            for j in range(NH):
                wh[k, j] = Wh[k, j, r]
        for j in range(NH):
            for o in range(NO):
                wz[j, o] = Wz[j, o, r]
        a = alpha[r]
        min_loss, last_loss = f(np.inf), f(np.nan)
        min_epoch, last, status = 0, 0, RAN_ALL
        for epoch in range(1, epochs + 1):
            loss = forward(X, Y, wh, wz, h, dz, a)
            last, last_loss = epoch, loss
            if loss < min_loss:
                min_loss, min_epoch = loss, epoch
            if epoch == 1 or epoch % every == 0:
                loss_out[epoch - 1 if every == 1 else epoch // every, r] = loss
            if not (math.isfinite(loss) and loss <= diverge_above):
                status = DIVERGED  # recorded, then stop before this epoch's update
                break
            update(X, wh, wz, h, dh, dz)
            if loss < stop_below:
                status = CONVERGED  # the epoch's update is kept
                break
        nxt = last if every == 1 else last // every + 1
        for row in range(nxt, loss_out.shape[0]):  # slots after the run stopped
            loss_out[row, r] = math.nan
        for k in range(NI):
            for j in range(NH):
                Wh[k, j, r] = wh[k, j]
        for j in range(NH):
            for o in range(NO):
                Wz[j, o, r] = wz[j, o]
        istats[r, EPOCHS_RUN], istats[r, MIN_EPOCH], istats[r, STATUS] = last, min_epoch, status
        fstats[r, FINAL_LOSS], fstats[r, MIN_LOSS] = last_loss, min_loss

    return kernel
