"""The peers `runner bench` times: the notebook's NumPy loop, a plain @njit port, JAX
``jit(vmap(lax.scan))`` and runner's kernel, on a shape (samples, inputs, hidden) with
one linear output. Each checks its losses against runner's in the same dtype."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

PROBLEMS = {"seed": (4, 2, 4), "wide": (4, 2, 32)}  # the notebook's: samples, inputs, hidden
MODES = (("float64", False), ("float64", True), ("float32", False), ("float32", True))
# largest relative loss difference to runner's (same dtype) that a peer's check accepts;
# runner's own exact modes accept none (EXACT): they are the reference, bit for bit
RTOL = {"float64": 1e-9, "float32": 1e-3}
EXACT = 0.0
FASTMATH_RTOL = {"float64": 1e-7, "float32": 1e-3}


def mode_name(dtype: str, fastmath: bool) -> str:
    return f"{dtype} {'fastmath' if fastmath else 'exact'}"


def has_modes() -> bool:
    """Whether this build's kernel takes ``dtype`` and ``fastmath``."""
    from runner.run.train import run_batch

    return "dtype" in inspect.signature(run_batch).parameters


def data(shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The notebook's data for 4 samples of 2 inputs; else uniform data of that shape."""
    n, ni, _ = shape
    if (n, ni) == (4, 2):
        from runner.plan.data import builtin

        return builtin("seed")
    rng = np.random.default_rng(1000 * n + ni)
    return rng.uniform(size=(n, ni)), rng.uniform(size=(n, 1))


def alpha(shape: tuple[int, int, int]) -> float:
    """A stable learning rate: 0.01 on the seed problem, smaller as samples x hidden grow."""
    n, _, nh = shape
    return 0.01 * min(1.0, 16 / (n * nh))


def weights(shape: tuple[int, int, int], seeds: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """runner's initial weights, runs last."""
    from runner.run.train import init_weights

    return init_weights(seeds, shape[1], shape[2], 1)


def runner_losses(
    shape: tuple[int, int, int],
    seeds: Sequence[int],
    epochs: int,
    dtype: str = "float64",
    fastmath: bool = False,
) -> np.ndarray:
    """runner's losses, (runs, epochs)."""
    from runner.run.train import run_batch

    X, Y = data(shape)
    Wh, Wz = weights(shape, seeds)
    kw = {"dtype": dtype, "fastmath": fastmath} if has_modes() else {}
    out = run_batch(X, Y, Wh, Wz, np.full(len(seeds), alpha(shape)), epochs, **kw)
    return out.loss.T


def rel_err(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.max(np.abs(got - want) / np.abs(want)))


def check(name: str, got: np.ndarray, want: np.ndarray, rtol: float) -> float:
    """The largest relative difference of ``got`` to ``want``; raises above ``rtol``."""
    err = rel_err(got, want)
    if not err <= rtol:
        raise AssertionError(f"{name}: losses differ from runner's (max rel err {err:.2e})")
    return err


@dataclass
class Peer:
    """``losses(seeds, epochs)``: (runs, epochs) for the check; ``prepare(runs, epochs)``:
    a call that trains that many runs, set up outside the timing."""

    name: str
    shape: tuple[int, int, int]
    dtype: str
    fastmath: bool
    losses: Callable[[Sequence[int], int], np.ndarray]
    prepare: Callable[[int, int], Callable[[], None]]

    def check(self, epochs: int) -> float:
        """Losses of two runs against runner's in this dtype (exact mode; fastmath rows
        against runner's exact losses, within FASTMATH_RTOL)."""
        modes = has_modes()
        dtype = self.dtype if modes else "float64"
        want = runner_losses(self.shape, [0, 1], epochs, dtype)
        got = self.losses([0, 1], epochs)
        rtol = (FASTMATH_RTOL if self.fastmath else RTOL)[self.dtype]
        return check(self.name, got, want, rtol)


# ----- the notebook's NumPy loop, one run at a time -----
def notebook(shape, dtype: str, fastmath: bool, threads: int = 1) -> Peer:
    X, Y = data(shape)
    a = alpha(shape)

    def train(seed: int, epochs: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        Wh = rng.uniform(size=(shape[1], shape[2]))
        Wz = rng.uniform(size=(shape[2], 1))
        loss = np.empty(epochs)
        for e in range(epochs):
            H = 1 / (1 + np.exp(-np.dot(X, Wh)))
            Z = np.dot(H, Wz)
            E = Y - Z
            loss[e] = np.mean(E**2)
            dZ = E * a
            Wz += H.T.dot(dZ)
            dH = dZ.dot(Wz.T) * (H * (1 - H))
            Wh += X.T.dot(dH)
        return loss

    def losses(seeds, epochs):
        return np.array([train(s, epochs) for s in seeds])

    return Peer(
        "notebook",
        shape,
        dtype,
        fastmath,
        losses,
        lambda runs, epochs: lambda: losses(range(runs), epochs),
    )


# ----- a plain @njit port of the notebook, one run per call -----
def _njit_train():
    from numba import njit

    @njit(cache=True)
    def train(X, Y, Wh, Wz, alpha, epochs, loss):
        n, ni = X.shape
        nh = Wh.shape[1]
        H = np.empty((n, nh))
        E = np.empty(n)
        for e in range(epochs):
            sq = 0.0
            for s in range(n):
                z = 0.0
                for j in range(nh):
                    a = 0.0
                    for k in range(ni):
                        a += X[s, k] * Wh[k, j]
                    H[s, j] = 1.0 / (1.0 + math.exp(-a))
                    z += H[s, j] * Wz[j, 0]
                E[s] = Y[s, 0] - z
                sq += E[s] * E[s]
            loss[e] = sq / n
            for j in range(nh):
                g = 0.0
                for s in range(n):
                    g += H[s, j] * E[s] * alpha
                Wz[j, 0] += g
            for k in range(ni):
                for j in range(nh):
                    g = 0.0
                    for s in range(n):
                        g += X[s, k] * (E[s] * alpha * Wz[j, 0]) * H[s, j] * (1.0 - H[s, j])
                    Wh[k, j] += g

    return train


def njit_port(shape, dtype: str, fastmath: bool, threads: int = 1) -> Peer:
    X, Y = data(shape)
    a = alpha(shape)
    train = _njit_train()

    def losses(seeds, epochs):
        out = np.empty((len(seeds), epochs))
        for i, seed in enumerate(seeds):
            rng = np.random.default_rng(seed)
            Wh = rng.uniform(size=(shape[1], shape[2]))
            Wz = rng.uniform(size=(shape[2], 1))
            train(X, Y, Wh, Wz, a, epochs, out[i])
        return out

    return Peer(
        "njit",
        shape,
        dtype,
        fastmath,
        losses,
        lambda runs, epochs: lambda: losses(range(runs), epochs),
    )


# ----- JAX: jit(vmap(lax.scan)) over runs, in the dtype asked for -----
def jax(shape, dtype: str, fastmath: bool, threads: int = 1) -> Peer:
    """jax_sweep's own train (one code for both JAX rows), float64 under x64, which
    each call sets and restores: the process's JAX settings stay as they were."""
    from runner.bench.jax_sweep import make_train, x64

    X, Y = (v.astype(dtype) for v in data(shape))
    wide = dtype == "float64"

    def inputs(seeds):
        Wh, Wz = weights(shape, seeds)
        return (
            np.moveaxis(Wh, 2, 0).astype(dtype),
            np.moveaxis(Wz, 2, 0).astype(dtype),
            np.full(len(seeds), alpha(shape), dtype=dtype),
        )

    def losses(seeds, epochs):
        with x64(wide):
            return np.asarray(make_train(X, Y, epochs)(*inputs(seeds)), dtype=np.float64)

    def prepare(runs, epochs):
        train, args = make_train(X, Y, epochs), inputs(range(runs))

        def call() -> None:
            with x64(wide):
                train(*args).block_until_ready()

        return call

    return Peer(f"JAX {dtype}", shape, dtype, fastmath, losses, prepare)


# ----- runner's kernel: one call per thread, each training a batch of runs -----
def runner(shape, dtype: str, fastmath: bool, threads: int = 1) -> Peer:
    from concurrent.futures import ThreadPoolExecutor

    from runner.run.train import run_batch

    X, Y = data(shape)
    kw = {"dtype": dtype, "fastmath": fastmath} if has_modes() else {}

    def losses(seeds, epochs):
        return runner_losses(shape, seeds, epochs, dtype, fastmath)

    def prepare(runs, epochs):
        batches = [weights(shape, range(i * runs, (i + 1) * runs)) for i in range(threads)]
        a = np.full(runs, alpha(shape))

        def one(i: int) -> None:
            Wh, Wz = (w.copy() for w in batches[i])
            run_batch(X, Y, Wh, Wz, a, epochs, loss_dtype=np.float32, **kw)

        if threads == 1:
            return lambda: one(0)
        pool = ThreadPoolExecutor(threads)
        return lambda: list(pool.map(one, range(threads)))

    peer = Peer(f"runner {mode_name(dtype, fastmath)}", shape, dtype, fastmath, losses, prepare)
    if not fastmath:  # an exact mode: the NumPy reference in its dtype, bit for bit
        peer.check = lambda epochs: check(  # type: ignore[method-assign]
            peer.name,
            losses([0, 1], epochs),
            reference_losses(shape, [0, 1], epochs, dtype),
            EXACT,
        )
    return peer


def reference_losses(shape, seeds: Sequence[int], epochs: int, dtype: str) -> np.ndarray:
    """runner.kernel.reference's losses, (runs, epochs)."""
    from runner.kernel.reference import train_reference

    X, Y = data(shape)
    Wh, Wz = weights(shape, seeds)
    kw = {"dtype": dtype} if has_modes() else {}
    return np.array(
        [
            train_reference(X, Y, Wh[:, :, r], Wz[:, :, r], alpha(shape), epochs, **kw).loss
            for r in range(len(seeds))
        ]
    )


PEERS = {"notebook": notebook, "njit": njit_port, "jax": jax, "runner": runner}


def make(peer: str, shape, dtype: str, fastmath: bool, threads: int = 1) -> Peer:
    return PEERS[peer](tuple(shape), dtype, fastmath, threads)


def tile_choice(shape: tuple[int, int, int], dtype: str) -> int:
    """Runs per tile the kernel picks for this shape (fixed without runner.kernel.tiles)."""
    try:
        from runner.kernel import tiles
    except ImportError:
        from runner.kernel.cpu import TILE

        return TILE
    n, ni, nh = shape
    return tiles.choose_tile(n, ni, nh, 1, dtype)
