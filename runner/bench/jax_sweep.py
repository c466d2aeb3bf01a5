"""The end-to-end peer of `runner bench`: the sweep as a JAX user writes it.

One ``jit(vmap(lax.scan))`` per hidden size over its runs, float64, the jobs spread
over all cores by threads (JAX releases the GIL), one zstd Parquet table per alpha
holding the same tidy rows as runner's losses (run_id, hidden, alpha, seed, epoch,
loss as float32). Weights come from ``numpy.random.default_rng(seed)`` as in runner.
Imports nothing from runner, so that its start-up is JAX's own.

    python -m runner.bench.jax_sweep OUT --epochs 10000 --seeds 128
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ALPHAS = [0.001, 0.003, 0.01, 0.03]
HIDDEN = [2, 4, 8, 16]
X = np.array([[1.0, 1.0], [1.0, 2.0], [2.0, 1.0], [2.0, 2.0]])
Y = np.array([[0.0], [1.0], [2.0], [3.0]])


def make_train(X: np.ndarray, Y: np.ndarray, epochs: int):
    """A jitted train(Wh (runs, inputs, hidden), Wz (runs, hidden, 1), alpha (runs,)) ->
    losses (runs, epochs) on data X, Y, in their dtype (float64 needs x64 around the
    calls): one ``lax.scan`` over epochs, vmapped over runs. `runner bench` times this
    same function as its JAX kernel peer."""

    def one(Wh, Wz, alpha):
        def step(carry, _):
            Wh, Wz = carry
            H = jax.nn.sigmoid(X @ Wh)
            E = Y - H @ Wz
            dZ = E * alpha
            Wz = Wz + H.T @ dZ
            Wh = Wh + X.T @ ((dZ @ Wz.T) * H * (1 - H))
            return (Wh, Wz), jnp.mean(E**2)

        return jax.lax.scan(step, (Wh, Wz), None, length=epochs)[1]

    return jax.jit(jax.vmap(one))


@contextmanager
def x64(enabled: bool = True) -> Iterator[None]:
    """JAX's float64 switch (jax_enable_x64) set inside the block, restored after it."""
    before = bool(jax.config.jax_enable_x64)
    jax.config.update("jax_enable_x64", enabled)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", before)


def weights(hidden: int, seeds: int) -> tuple[np.ndarray, np.ndarray]:
    Wh, Wz = np.empty((seeds, 2, hidden)), np.empty((seeds, hidden, 1))
    for s in range(seeds):
        rng = np.random.default_rng(s)
        Wh[s], Wz[s] = rng.uniform(size=(2, hidden)), rng.uniform(size=(hidden, 1))
    return Wh, Wz


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("out")
    p.add_argument("--epochs", type=int, default=10_000)
    p.add_argument("--seeds", type=int, default=128)
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    S, E = args.seeds, args.epochs
    train = make_train(X, Y, E)

    def job(alpha: float, hidden: int) -> np.ndarray:
        Wh, Wz = weights(hidden, S)
        return np.asarray(train(Wh, Wz, np.full(S, alpha)))  # (runs, epochs)

    cores = len(os.sched_getaffinity(0))
    with x64(), ThreadPoolExecutor(cores) as pool:
        jobs = {(a, h): pool.submit(job, a, h) for a in ALPHAS for h in HIDDEN}
        for i, a in enumerate(ALPHAS):
            loss = np.concatenate([jobs[a, h].result() for h in HIDDEN])
            n = loss.shape[0]
            # runner's run ids: hidden (a kernel key) first, then alpha, then seed
            ids = (np.arange(len(HIDDEN))[:, None] * len(ALPHAS) + i) * S + np.arange(S)
            table = pa.table({
                "run_id": np.repeat(ids.ravel().astype(np.int32), E),
                "hidden": np.repeat(np.repeat(np.array(HIDDEN, dtype=np.int32), S), E),
                "alpha": np.full(n * E, a),
                "seed": np.repeat(np.tile(np.arange(S, dtype=np.int64), len(HIDDEN)), E),
                "epoch": np.tile(np.arange(1, E + 1, dtype=np.int32), n),
                "loss": loss.astype(np.float32).ravel(),
            })  # fmt: skip
            pq.write_table(table, out / f"alpha-{a}.parquet", compression="zstd")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
