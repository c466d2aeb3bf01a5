"""The trainability workload's peer: a 2-D map of learning rates as a JAX user writes it.

The network of experiments/trainability.toml: tanh hidden units, no bias, mean-field
scaling (``c_h = sqrt(2) / sqrt(inputs)``, ``c_o = 1 / hidden``), the gradient step
(``2 / (samples * outputs)``), simultaneous updates, float64, one set of initial
weights (normal, from ``default_rng(seed)``: Wh, then Wz) for every grid point. One
``jit(vmap(lax.scan))`` over the points, which JAX spreads over all cores. Each point's
value is ``tail_mean / first_loss``: the mean loss of the last ``tail`` steps against
the loss before the first step (NaN or inf where it diverged). Imports nothing from
runner, so that its start-up is JAX's own.

    python -m runner.bench.jax_trainability OUT.npz --grid 64 --steps 500 \\
        --alpha-hidden 10 1e5 --alpha-output 30 1000
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

SAMPLES, INPUTS, OUTPUTS, HIDDEN, DATA_SEED, INIT_SEED = 272, 16, 1, 16, 0, 0


def problem() -> tuple[np.ndarray, ...]:
    """X, Y (``[data] random``: standard normal X, then Y) and the initial Wh, Wz."""
    rng = np.random.default_rng(DATA_SEED)
    X = rng.standard_normal((SAMPLES, INPUTS))
    Y = rng.standard_normal((SAMPLES, OUTPUTS))
    rng = np.random.default_rng(INIT_SEED)
    Wh = rng.normal(0.0, 1.0, (INPUTS, HIDDEN))
    Wz = rng.normal(0.0, 1.0, (HIDDEN, OUTPUTS))
    return X, Y, Wh, Wz


def make_map(X, Y, Wh, Wz, steps: int, tail: int):
    """A jitted ratio(alpha_hidden (P,), alpha_output (P,)) -> tail_mean / first_loss (P,)."""
    n, ni = X.shape
    nh, no = Wz.shape
    c_h, c_o = np.sqrt(2.0) / np.sqrt(ni), 1.0 / nh
    k = 2.0 / (n * no)

    def one(a_h, a_o):
        s_o, s_h = a_o * k * c_o, a_h * k * c_o * c_h

        def step(carry, _):
            wh, wz = carry
            H = jnp.tanh((X @ wh) * c_h)
            E = Y - (H @ wz) * c_o
            dA = ((E * s_h) @ wz.T) * (1 - H * H)
            return (wh + X.T @ dA, wz + H.T @ (E * s_o)), jnp.mean(E**2)

        losses = jax.lax.scan(step, (Wh, Wz), None, length=steps)[1]
        return jnp.mean(losses[-tail:]) / losses[0]

    return jax.jit(jax.vmap(one))


def grid(lo: float, hi: float, num: int) -> np.ndarray:
    return np.geomspace(lo, hi, num)  # as a spec's {start, stop, num, log = true}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--grid", type=int, default=64)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--tail", type=int, default=20)
    ap.add_argument("--alpha-hidden", type=float, nargs=2, default=(10.0, 1e5))
    ap.add_argument("--alpha-output", type=float, nargs=2, default=(30.0, 1000.0))
    args = ap.parse_args()
    jax.config.update("jax_enable_x64", True)
    t0 = time.perf_counter()
    ah, ao = grid(*args.alpha_hidden, args.grid), grid(*args.alpha_output, args.grid)
    AH, AO = np.meshgrid(ah, ao)  # rows: alpha_output, columns: alpha_hidden
    fn = make_map(*problem(), args.steps, args.tail)
    ratio = np.asarray(fn(jnp.asarray(AH.ravel()), jnp.asarray(AO.ravel()))).reshape(AH.shape)
    np.savez(args.out, alpha_hidden=ah, alpha_output=ao, ratio=ratio,
             seconds=time.perf_counter() - t0)  # fmt: skip


if __name__ == "__main__":
    main()
