"""Run in numba-cuda's simulator (NUMBA_ENABLE_CUDASIM=1) by tests/test_gpu_family.py:
the CUDA kernel of each model variant against the NumPy reference, run by run.

argv[1]: a JSON list of [activation, output, bias, scaling, step, update, dtype].
Prints {"checked": N, "differ": {variant: [runs that differ]}}.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from runner.kernel import reference as ref
from runner.kernel.cuda import THREADS, Model, make_kernel

N, NI, NH, NO, R, EPOCHS = 5, 3, 3, 2, 3, 25
FACTOR = 1e3  # diverge_factor
A_O, A_H = np.array([0.05, 0.3, 0.02]), np.array([0.1, 0.01, 0.4])  # the third diverges often


def factors(a_o, a_h, activation, scaling, step, f):
    """(s_o, s_h, c_h, c_o) as train_reference folds them (docs/numerics.md)."""
    c_h, c_o = ref.scales(scaling, activation, NI, NH)
    k = 1.0 if step == "notebook" else 2.0 / (N * NO)
    so = f.type(f.type(f.type(a_o) * f.type(k)) * f.type(c_o))
    sh = f.type(f.type(f.type(f.type(a_h) * f.type(k)) * f.type(c_o)) * f.type(c_h))
    return so, sh, c_h, c_o


def differing_runs(act, out, bias, scaling, step, update, dtype) -> list[int]:
    f = np.dtype(dtype)
    rng = np.random.default_rng(3)
    X, Y = rng.uniform(-1, 1, (N, NI)), rng.uniform(-1, 1, (N, NO))
    Wh, Wz = rng.normal(0, 0.7, (NI + bias, NH, R)), rng.normal(0, 0.7, (NH + bias, NO, R))
    so, sh = np.empty(R, f), np.empty(R, f)
    for r in range(R):
        so[r], sh[r], c_h, c_o = factors(A_O[r], A_H[r], act, scaling, step, f)
    kernel = make_kernel(N, NI, NH, NO, out == "sigmoid", update == "sequential", dtype, False,
                         Model(act, bias, c_h, c_o))  # fmt: skip
    loss = np.full((EPOCHS, R), np.nan)
    istats, fstats = np.empty((R, 3), np.int64), np.empty((R, 4))
    Whk, Wzk = Wh.astype(f), Wz.astype(f)
    kernel[1, THREADS](X.astype(f), Y.astype(f), Whk, Wzk, so, sh, EPOCHS, 1, 5, -np.inf, 1e30,
                       FACTOR, loss, istats, fstats)  # fmt: skip
    bad = []
    for r in range(R):
        want = ref.train_reference(
            X, Y, Wh[:, :, r], Wz[:, :, r], 0.0, EPOCHS, out, update, None, 1e30, dtype,
            diverge_factor=FACTOR,
            activation=act, bias=bias, scaling=scaling, step=step, alpha_hidden=A_H[r],
            alpha_output=A_O[r],
        )  # fmt: skip
        m = len(want.loss)
        same = (np.array_equal(loss[:m, r], want.loss, equal_nan=True)
                and int(istats[r, 0]) == m
                and np.array_equal(fstats[r, 2:], [want.first_loss(), want.tail_mean(EPOCHS, 5)],
                                   equal_nan=True)
                and np.array_equal(Whk[:, :, r], want.Wh, equal_nan=True)
                and np.array_equal(Wzk[:, :, r], want.Wz, equal_nan=True))  # fmt: skip
        if not same:
            bad.append(r)
    return bad


if __name__ == "__main__":
    differ = {}
    variants = json.loads(sys.argv[1])
    for v in variants:
        bad = differing_runs(*v)
        if bad:
            differ["/".join(map(str, v))] = bad
    print(json.dumps({"checked": len(variants), "differ": differ}))
