"""The CPU kernel's batch trainer in plain NumPy: the same numbers, bit for bit, with no
compilation. ``runner.run.train`` trains with it while a variant's kernel is not yet
compiled on this machine and the problem is small (docs/architecture.md, "First
result"): the notebook's problem takes about a second here against 20 s of compiling.

Every run is a column of arrays ``(..., R)``, as the kernel's lanes are, and every
operation is the kernel's, elementwise and in the same order: sums start from 0 and add
one product at a time (``np.add.accumulate`` is sequential), the activations are
``runner.kernel.reference``'s (the kernel's exp, step for step), and the bookkeeping is
``runner.kernel.lanes``' (a run that stops hands its weights back and idles with zero
weights and steps). Exact modes only: fastmath's numbers are the compiled kernel's own.
"""

from __future__ import annotations

import math

import numpy as np

from runner.kernel import codes as k
from runner.kernel import reference as ref
from runner.kernel.lanes import slot_of


def _sum(P: np.ndarray) -> np.ndarray:
    """The sum over axis 0 from 0, one term at a time: ((0 + P[0]) + P[1]) + ..."""
    P[0] += P.dtype.type(0)  # 0 + (-0.0) is +0.0, as the kernel's first step
    return np.add.accumulate(P, axis=0)[-1]


class _Lanes:
    """A batch's state: the kernel's scratch for every run at once (``lanes._start``)."""

    def __init__(self, Wh, Wz, s_o, s_h, f: np.dtype):
        R = s_o.shape[0]
        self.wh, self.wz = Wh.astype(f), Wz.astype(f)
        self.a, self.ah = s_o.astype(f), s_h.astype(f)
        self.act = np.ones(R, np.bool_)
        self.min_loss, self.first_loss = np.full(R, np.inf), np.full(R, np.nan)
        self.tail_sum, self.tail_n = np.zeros(R), np.zeros(R, np.int64)
        self.last_loss, self.min_epoch = np.full(R, np.nan), np.zeros(R, np.int64)
        self.last, self.status = np.zeros(R, np.int64), np.full(R, k.RAN_ALL, np.int64)
        self.vlast, self.vmin = np.full(R, np.nan), np.full(R, np.inf)
        self.vmin_epoch = np.zeros(R, np.int64)
        self.bwh, self.bwz = self.wh.copy(), self.wz.copy()

    def retire(self, Wh, Wz, stop: np.ndarray) -> None:
        """Hand the weights of the runs in ``stop`` back, then let them idle."""
        Wh[..., stop] = self.wh[..., stop]
        Wz[..., stop] = self.wz[..., stop]
        self.wh[..., stop] = 0
        self.wz[..., stop] = 0
        self.a[stop] = 0
        self.ah[stop] = 0
        self.act &= ~stop


def _forward(Xb, L: _Lanes, c_h, c_o, activation: str, sigmoid_out: bool):
    """(A, H with its bias unit, Z): the kernel's ``_train_pass`` forward, every run at once."""
    A = _sum(Xb.T[:, :, None, None] * L.wh[:, None, :, :]) * c_h  # (n, hidden, R)
    H = ref.activate(activation, A)
    nh, nb = L.wh.shape[1], L.wz.shape[0]
    if nb > nh:  # the bias unit
        H = np.concatenate([H, np.ones((H.shape[0], 1, H.shape[2]), H.dtype)], axis=1)
    P = _sum(H.transpose(1, 0, 2)[:, :, None, :] * L.wz[:, None, :, :]) * c_o  # (n, o, R)
    return A, H, (ref.sigmoid(P) if sigmoid_out else P)


def _squares(E: np.ndarray) -> np.ndarray:
    """Per run, the sum of squared errors over samples, then outputs, from 0."""
    E2 = (E * E).reshape(-1, E.shape[2])
    return np.add.accumulate(E2, axis=0)[-1]


def _recorded(epoch: int, every: int) -> int | None:
    """The row of a recorded epoch (``lanes.slot_of``, run as Python), or None."""
    if every > 0 and (epoch == 1 or epoch % every == 0):
        return slot_of.py_func(epoch, every)
    return None


def _losses(L: _Lanes, Wh, Wz, loss, epoch, row, in_tail, diverge_above, diverge_factor,
            loss_out) -> None:  # fmt: skip
    """``lanes._losses``: kept, recorded, diverged runs stopped before their update."""
    on = L.act.copy()
    every_run = on.all()  # then plain assignments: the common case, and the fast one
    L.last = np.where(on, epoch, L.last)
    L.last_loss = loss.astype(np.float64) if every_run else np.where(on, loss, L.last_loss)
    if epoch == 1:
        L.first_loss = np.where(on, loss, L.first_loss)
    if in_tail:
        L.tail_sum += np.where(on, loss, 0.0)
        L.tail_n += on
    better = on & (loss < L.min_loss)
    L.min_loss = np.where(better, loss, L.min_loss)
    L.min_epoch = np.where(better, epoch, L.min_epoch)
    ok = np.isfinite(loss) & (loss <= diverge_above)
    if diverge_factor != np.inf:
        ok &= loss <= diverge_factor * L.first_loss
    bad = on & ~ok
    if row is not None:
        if every_run:
            loss_out[row] = loss
        else:
            loss_out[row, on] = loss[on]
    if bad.any():
        L.status[bad] = k.DIVERGED
        L.retire(Wh, Wz, bad)


def _val_losses(L: _Lanes, Xvb, Yv, vsize, epoch, row, patience, val_out, fwd) -> np.ndarray:
    """``lanes._val_losses``: the held-out losses, recorded, the least kept (with its
    weights for ``patience``); returns the held-out outputs Z."""
    Zv = fwd(Xvb)[2]
    vloss = _squares(Yv[:, :, None] - Zv) / vsize
    on = L.act
    L.vlast[on] = vloss[on]
    better = on & (vloss < L.vmin)
    L.vmin[better] = vloss[better]
    L.vmin_epoch[better] = epoch
    if row is not None:
        val_out[row, on] = vloss[on]
    if patience > 0 and better.any():
        L.bwh[..., better] = L.wh[..., better]
        L.bwz[..., better] = L.wz[..., better]
    return Zv


def _hits(Z, Y) -> np.ndarray:
    """Per run, how many outputs are above 1/2 exactly where the targets are."""
    half = Z.dtype.type(0.5)
    return np.count_nonzero((Z > half) == (Y[:, :, None] > half), axis=(0, 1))


def _update(L: _Lanes, Xb, A, H, dz, dzh, activation: str, sequential: bool) -> None:
    """The epoch's update of both layers (``sums.update_wz``, ``sums.delta_update_wh``),
    in place."""
    nh = L.wh.shape[1]

    def delta():
        no = dzh.shape[1]
        d = L.wz.dtype.type(0) + dzh[:, 0, None, :] * L.wz[None, :nh, 0, :]
        for o in range(1, no):
            d = d + dzh[:, o, None, :] * L.wz[None, :nh, o, :]
        return d * ref.derivative(activation, A, H[:, :nh, :])

    if sequential:  # dA from the updated Wz
        L.wz += _sum(H[:, :, None, :] * dz[:, None, :, :])
        dh = delta()
    else:
        dh = delta()
        L.wz += _sum(H[:, :, None, :] * dz[:, None, :, :])
    L.wh += _sum(Xb[:, :, None, None] * dh[:, None, :, :])


def train_batch(
    X, Y, Wh, Wz, s_o, s_h, c_h, c_o, epochs, sigmoid_out, sequential, every,
    stop_below, diverge_above, loss_out, istats, fstats, activation="sigmoid", tail=1,
    diverge_factor=math.inf, held_out=None, patience=0, metrics=None,
):  # fmt: skip
    """``runner.kernel.cpu.train_batch`` without its scratch (exact modes): the same
    arguments, arrays and results, in the dtype of X."""
    f = X.dtype
    n, no = Y.shape
    L = _Lanes(Wh, Wz, s_o, s_h, f)
    c_h, c_o = f.type(c_h), f.type(c_o)
    size = f.type(n * no)
    Xv, Yv, val_out, vstats = held_out if held_out is not None else (X[:0], Y[:0], None, None)
    nv = Xv.shape[0]
    if patience > 0 and nv == 0:
        raise ValueError("patience needs held-out rows")
    vsize = f.type(max(nv, 1) * no)
    acc_out, val_acc_out, astats = metrics if metrics is not None else (None, None, None)
    one = f.type(1)

    def fwd(Xrows):
        return _forward(Xrows, L, c_h, c_o, activation, sigmoid_out)

    with np.errstate(all="ignore"):
        for epoch in range(1, epochs + 1):
            if not L.act.any():
                break
            row = _recorded(epoch, every)
            A, H, Z = fwd(X)
            E = Y[:, :, None] - Z
            loss = _squares(E) / size
            Zv = _val_losses(L, Xv, Yv, vsize, epoch, row, patience, val_out, fwd) if nv else None
            if metrics is not None:
                _record_hits(L, Z, Y, Zv, Yv, epoch, row, acc_out, val_acc_out, astats)
            _losses(L, Wh, Wz, loss, epoch, row, epoch > epochs - tail, diverge_above,
                    diverge_factor, loss_out)  # fmt: skip
            if patience > 0:
                _out_of_patience(L, Wh, Wz, epoch, patience)
            dz, dzh = E * L.a, E * L.ah
            if sigmoid_out:
                g = Z * (one - Z)
                dz, dzh = dz * g, dzh * g
            _update(L, X, A, H, dz, dzh, activation, sequential)
            if stop_below > -np.inf:
                stop = L.act & (L.last_loss < stop_below)
                L.status[stop] = k.CONVERGED
                if stop.any():
                    L.retire(Wh, Wz, stop)
    _finish(L, Wh, Wz, istats, fstats, vstats if nv else None)


def _record_hits(L: _Lanes, Z, Y, Zv, Yv, epoch, row, acc_out, val_acc_out, astats) -> None:
    """``lanes._hits``: the epoch's accuracies, in float64, kept and recorded."""
    on = L.act
    a = _hits(Z, Y) / Y.size
    va = _hits(Zv, Yv) / Yv.size if Zv is not None else np.full(a.shape, np.nan)
    astats[on, k.FINAL_ACCURACY] = a[on]
    astats[on, k.FINAL_VAL_ACCURACY] = va[on]
    if row is not None:
        acc_out[row, on] = a[on]
        val_acc_out[row, on] = va[on]


def _out_of_patience(L: _Lanes, Wh, Wz, epoch: int, patience: int) -> None:
    """``lanes._out_of_patience``: stopped with the weights of their least held-out loss."""
    stop = L.act & (epoch - L.vmin_epoch >= patience)
    best = stop & (L.vmin_epoch > 0)
    L.wh[..., best] = L.bwh[..., best]
    L.wz[..., best] = L.bwz[..., best]
    L.status[stop] = k.STOPPED_EARLY
    if stop.any():
        L.retire(Wh, Wz, stop)


def _finish(L: _Lanes, Wh, Wz, istats, fstats, vstats) -> None:
    """``lanes._finish``: the runs still training hand their weights back; statistics."""
    L.retire(Wh, Wz, L.act.copy())
    istats[:, k.EPOCHS_RUN], istats[:, k.MIN_EPOCH], istats[:, k.STATUS] = (
        L.last, L.min_epoch, L.status)  # fmt: skip
    fstats[:, k.FINAL_LOSS], fstats[:, k.MIN_LOSS] = L.last_loss, L.min_loss
    fstats[:, k.FIRST_LOSS] = L.first_loss
    with np.errstate(invalid="ignore", divide="ignore"):
        fstats[:, k.TAIL_MEAN] = np.where(L.tail_n > 0, L.tail_sum / np.maximum(L.tail_n, 1),
                                        L.last_loss)  # fmt: skip
    if vstats is not None:
        vstats[:, k.FINAL_VAL_LOSS], vstats[:, k.MIN_VAL_LOSS] = L.vlast, L.vmin
        vstats[:, k.MIN_VAL_EPOCH] = L.vmin_epoch
