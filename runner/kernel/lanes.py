"""The tile kernel's lane bookkeeping, the same in every variant: loading runs into lanes,
each epoch's losses and stops, handing runs back (inlined into ``runner.kernel.cpu``'s
``_train``)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from runner.kernel.codes import (
    CONVERGED,
    DIVERGED,
    EPOCHS_RUN,
    FINAL_ACCURACY,
    FINAL_LOSS,
    FINAL_VAL_ACCURACY,
    FINAL_VAL_LOSS,
    FIRST_LOSS,
    MIN_EPOCH,
    MIN_LOSS,
    MIN_VAL_EPOCH,
    MIN_VAL_LOSS,
    RAN_ALL,
    STATUS,
    STOPPED_EARLY,
    TAIL_MEAN,
)
from runner.kernel.numba_ext import JIT


@njit(**JIT)
def slot_of(epoch, every):
    """Row of ``loss_out`` for a recorded epoch (epoch 1 and multiples of every)."""
    if every == 1:
        return epoch - 1
    return epoch // every


@njit(inline="always", **JIT)
def _start(Wh, Wz, s_o, s_h, r0, nt, w):
    """Load runs ``r0 .. r0 + nt`` into the tile's lanes; the others idle from the start.
    The bias unit of H, if any, is 1."""
    wh, wz, a = w.wh, w.wz, w.a
    ni, nh, T = wh.shape
    nb, no = wz.shape[0], wz.shape[1]
    zero, one = a.dtype.type(0), a.dtype.type(1)
    for t in range(T):
        wt = t < nt
        w.act[t] = wt
        a[t] = s_o[r0 + t] if wt else zero
        w.ah[t] = s_h[r0 + t] if wt else zero
        w.min_loss[t] = np.inf
        w.first_loss[t] = np.nan
        w.tail_sum[t] = 0.0
        w.tail_n[t] = 0
        w.last_loss[t] = np.nan
        w.min_epoch[t] = 0
        w.last[t] = 0
        w.status[t] = RAN_ALL
        w.vlast[t] = np.nan
        w.vmin[t] = np.inf
        w.vmin_epoch[t] = 0
    for s in range(w.h.shape[0]):
        for j in range(nh, nb):
            for t in range(T):
                w.h[s, j, t] = one
    for j in range(nh, nb):
        for t in range(T):
            w.hv[j, t] = one
    for k in range(ni):
        for j in range(nh):
            for t in range(T):
                wh[k, j, t] = Wh[k, j, r0 + t] if t < nt else zero
    for j in range(nb):
        for o in range(no):
            for t in range(T):
                wz[j, o, t] = Wz[j, o, r0 + t] if t < nt else zero


@njit(inline="always", **JIT)
def _losses(Wh, Wz, epoch, every, in_tail, diverge_above, diverge_factor, loss_out, r0, nt, w):
    """The epoch's losses: recorded, first, best and last kept, summed in the tail
    (``in_tail``: the epoch is one of the tail's); a diverged run (a loss not finite, above
    diverge_above or above diverge_factor x its first loss, in float64) stops before its
    update. Returns how many runs stopped."""
    a, act, sq, status = w.a, w.act, w.sq, w.status
    min_loss, last_loss, min_epoch, last = w.min_loss, w.last_loss, w.min_epoch, w.last
    size = a.dtype.type(w.dz.shape[0] * w.dz.shape[1])
    n_stop = 0
    no_factor = diverge_factor == np.inf  # (inf x a first loss of 0 is NaN)
    for t in range(a.shape[0]):
        on = act[t]
        loss = sq[t] / size
        sq[t] = loss
        last[t] = epoch if on else last[t]
        last_loss[t] = loss if on else last_loss[t]
        w.first_loss[t] = loss if on and epoch == 1 else w.first_loss[t]
        counted = on and in_tail
        w.tail_sum[t] += loss if counted else 0.0
        w.tail_n[t] += counted
        better = on and loss < min_loss[t]
        min_loss[t] = loss if better else min_loss[t]
        min_epoch[t] = epoch if better else min_epoch[t]
        bad = on and not (math.isfinite(loss) and loss <= diverge_above
                          and (loss <= diverge_factor * w.first_loss[t] or no_factor))  # fmt: skip
        status[t] = DIVERGED if bad else status[t]
        n_stop += bad
    if every > 0 and (epoch == 1 or epoch % every == 0):
        row = slot_of(epoch, every)
        for t in range(nt):
            if act[t]:
                loss_out[row, r0 + t] = sq[t]
    if n_stop:
        for t in range(nt):
            if act[t] and status[t] == DIVERGED:
                _retire(Wh, Wz, w, r0, t)
    return n_stop


@njit(inline="always", **JIT)
def _val_losses(epoch, every, patience, val_out, nv, r0, nt, w):
    """The epoch's held-out losses: recorded as the losses are, the last and the least kept
    (with the weights, for ``patience``), for every run that trained this epoch."""
    act, vsq, vmin = w.act, w.vsq, w.vmin
    T = vsq.shape[0]
    size = vsq.dtype.type(nv * w.wz.shape[1])
    better_any = False
    for t in range(T):
        on = act[t]
        loss = vsq[t] / size
        vsq[t] = loss
        w.vlast[t] = loss if on else w.vlast[t]
        better = on and loss < vmin[t]
        vmin[t] = loss if better else vmin[t]
        w.vmin_epoch[t] = epoch if better else w.vmin_epoch[t]
        better_any |= better
    if every > 0 and (epoch == 1 or epoch % every == 0):
        row = slot_of(epoch, every)
        for t in range(nt):
            if act[t]:
                val_out[row, r0 + t] = vsq[t]
    if patience > 0 and better_any:  # the weights of this epoch's loss: before its update
        ni, nh, _ = w.wh.shape
        nb, no = w.wz.shape[0], w.wz.shape[1]
        for k in range(ni):
            for j in range(nh):
                for t in range(T):
                    keep = w.vmin_epoch[t] == epoch and act[t]
                    w.bwh[k, j, t] = w.wh[k, j, t] if keep else w.bwh[k, j, t]
        for j in range(nb):
            for o in range(no):
                for t in range(T):
                    keep = w.vmin_epoch[t] == epoch and act[t]
                    w.bwz[j, o, t] = w.wz[j, o, t] if keep else w.bwz[j, o, t]


@njit(inline="always", **JIT)
def _hits(epoch, every, hits, nv, r0, nt, w):
    """The epoch's accuracy on the training and the held-out rows (NaN without), in float64:
    recorded as the losses are, and the last kept in astats, for every run that trained."""
    acc_out, val_acc_out, astats = hits
    size = w.dz.shape[0] * w.dz.shape[1]
    vsize = nv * w.dz.shape[1]
    rec = every > 0 and (epoch == 1 or epoch % every == 0)
    row = slot_of(epoch, every) if rec else 0
    for t in range(nt):
        if w.act[t]:
            a = w.hit[t] / size
            va = w.vhit[t] / vsize if nv > 0 else np.nan
            astats[r0 + t, FINAL_ACCURACY] = a
            astats[r0 + t, FINAL_VAL_ACCURACY] = va
            if rec:
                acc_out[row, r0 + t] = a
                val_acc_out[row, r0 + t] = va


@njit(inline="always", **JIT)
def _out_of_patience(Wh, Wz, epoch, patience, r0, nt, w):
    """Stop the runs whose held-out loss has not improved for ``patience`` epochs, with
    the weights of their least one (their current ones if none was finite); returns how
    many."""
    n_stop = 0
    ni, nh, _ = w.wh.shape
    nb, no = w.wz.shape[0], w.wz.shape[1]
    for t in range(nt):
        if w.act[t] and epoch - w.vmin_epoch[t] >= patience:
            if w.vmin_epoch[t] > 0:
                for k in range(ni):
                    for j in range(nh):
                        w.wh[k, j, t] = w.bwh[k, j, t]
                for j in range(nb):
                    for o in range(no):
                        w.wz[j, o, t] = w.bwz[j, o, t]
            w.status[t] = STOPPED_EARLY
            _retire(Wh, Wz, w, r0, t)
            n_stop += 1
    return n_stop


@njit(inline="always", **JIT)
def _converged(Wh, Wz, stop_below, r0, nt, w):
    """Stop the runs whose loss fell below stop_below; returns how many."""
    n_stop = 0
    for t in range(nt):
        if w.act[t] and w.last_loss[t] < stop_below:
            w.status[t] = CONVERGED
            _retire(Wh, Wz, w, r0, t)
            n_stop += 1
    return n_stop


@njit(inline="always", **JIT)
def _finish(Wh, Wz, istats, fstats, vstats, held_out, r0, nt, w):
    """Hand the tile's runs back: weights, then per-run statistics (``vstats`` too, with
    ``held_out`` rows)."""
    for t in range(nt):
        if w.act[t]:
            _retire(Wh, Wz, w, r0, t)
        istats[r0 + t, EPOCHS_RUN] = w.last[t]
        istats[r0 + t, MIN_EPOCH] = w.min_epoch[t]
        istats[r0 + t, STATUS] = w.status[t]
        fstats[r0 + t, FINAL_LOSS] = w.last_loss[t]
        fstats[r0 + t, MIN_LOSS] = w.min_loss[t]
        fstats[r0 + t, FIRST_LOSS] = w.first_loss[t]
        n = w.tail_n[t]
        fstats[r0 + t, TAIL_MEAN] = w.tail_sum[t] / n if n > 0 else w.last_loss[t]
        if held_out:
            vstats[r0 + t, FINAL_VAL_LOSS] = w.vlast[t]
            vstats[r0 + t, MIN_VAL_LOSS] = w.vmin[t]
            vstats[r0 + t, MIN_VAL_EPOCH] = w.vmin_epoch[t]


@njit(inline="always", **JIT)
def _retire(Wh, Wz, w, r0, t):
    """Stop lane t: hand its weights back to the batch, then let the lane idle."""
    wh, wz = w.wh, w.wz
    ni, nh, _ = wh.shape
    nb, no = wz.shape[0], wz.shape[1]
    for k in range(ni):
        for j in range(nh):
            Wh[k, j, r0 + t] = wh[k, j, t]
            wh[k, j, t] = 0.0
    for j in range(nb):
        for o in range(no):
            Wz[j, o, r0 + t] = wz[j, o, t]
            wz[j, o, t] = 0.0
    w.a[t] = 0.0
    w.ah[t] = 0.0
    w.act[t] = False
