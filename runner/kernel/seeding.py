"""Seeded initial weights for many runs at once, bit for bit ``numpy.random.default_rng``.

``default_rng(seed)`` builds a SeedSequence and a PCG64 in Python for every run,
about 10-40 us each: at GPU speeds that, not training, bounds a sweep. Here the
same three steps run compiled, for a whole batch:

1. SeedSequence(seed).generate_state(4, uint64): the seed's 32-bit words hashed into
   a pool of four (``hashmix``/``mix``), then four 64-bit words drawn from the pool;
2. PCG64 seeded with them (state and increment, 128-bit LCG, two steps);
3. uniform(lo, hi): ``lo + (hi - lo) * ((next64 >> 11) * 2**-53)``, where next64 is
   one LCG step and the XSL-RR output; Wh is drawn first, then Wz, in C order.

A normal init (``normal_weights``) takes each run's PCG64 state from step 2 and lets
NumPy's ``Generator.normal`` draw (its ziggurat is NumPy's alone).

tests/test_seeding.py compares it with NumPy over random seeds, shapes and ranges;
tests/test_init.py the normal draws.
"""

from __future__ import annotations

import numpy as np
from numba import njit, uint64

M32 = np.uint64(0xFFFFFFFF)
INIT_A, MULT_A = np.uint64(0x43B0D7E5), np.uint64(0x931E8875)
INIT_B, MULT_B = np.uint64(0x8B51F9DD), np.uint64(0x58F38DED)
MIX_L, MIX_R = np.uint64(0xCA01F9DD), np.uint64(0x4973F715)
PCG_HI, PCG_LO = np.uint64(2549297995355413924), np.uint64(4865540595714422341)
JIT = {"nogil": True, "cache": True, "error_model": "numpy"}


@njit(**JIT)
def _hashmix(value, hc):
    value = (value ^ hc) & M32
    hc = (hc * MULT_A) & M32
    value = (value * hc) & M32
    return value ^ (value >> uint64(16)), hc


@njit(**JIT)
def _seed_words(seed):
    """SeedSequence(seed).generate_state(4, np.uint64) for an int64 seed >= 0."""
    ent = np.zeros(4, np.uint64)
    s = uint64(seed)
    n_ent = 0
    while s > 0 or n_ent == 0:
        ent[n_ent] = s & M32
        s >>= uint64(32)
        n_ent += 1
    hc = INIT_A
    mixer = np.empty(4, np.uint64)
    for i in range(4):
        mixer[i], hc = _hashmix(ent[i], hc)  # words past the seed's are 0
    for i_src in range(4):
        for i_dst in range(4):
            if i_src != i_dst:
                h, hc = _hashmix(mixer[i_src], hc)
                r = (MIX_L * mixer[i_dst] - MIX_R * h) & M32
                mixer[i_dst] = r ^ (r >> uint64(16))
    hb = INIT_B
    words = np.empty(4, np.uint64)
    for i in range(8):
        v = (mixer[i % 4] ^ hb) & M32
        hb = (hb * MULT_B) & M32
        v = (v * hb) & M32
        v ^= v >> uint64(16)
        if i % 2 == 0:
            words[i // 2] = v
        else:
            words[i // 2] |= v << uint64(32)
    return words


@njit(**JIT)
def _mul64(a, b):
    """(high, low) 64-bit words of the 128-bit product a * b."""
    a_lo, a_hi = a & M32, a >> uint64(32)
    b_lo, b_hi = b & M32, b >> uint64(32)
    ll = a_lo * b_lo
    lh = a_lo * b_hi
    hl = a_hi * b_lo
    mid = (ll >> uint64(32)) + (lh & M32) + (hl & M32)
    high = a_hi * b_hi + (lh >> uint64(32)) + (hl >> uint64(32)) + (mid >> uint64(32))
    return high, (mid << uint64(32)) | (ll & M32)


@njit(**JIT)
def _step(sh, sl, ih, il):
    """state * MULT + inc (mod 2**128)."""
    high, low = _mul64(sl, PCG_LO)
    high += sl * PCG_HI + sh * PCG_LO
    low2 = low + il
    carry = uint64(1) if low2 < low else uint64(0)
    return high + ih + carry, low2


@njit(**JIT)
def _add(ah, al, bh, bl):
    low = al + bl
    carry = uint64(1) if low < al else uint64(0)
    return ah + bh + carry, low


@njit(**JIT)
def _next_double(sh, sl, ih, il):
    sh, sl = _step(sh, sl, ih, il)
    x = sh ^ sl
    rot = sh >> uint64(58)
    out = (x >> rot) | (x << ((uint64(64) - rot) & uint64(63)))
    return sh, sl, np.float64(out >> uint64(11)) * (1.0 / 9007199254740992.0)


@njit(**JIT)
def _start(seed):
    """PCG64's state and increment (high and low words) as default_rng(seed) leaves them."""
    w = _seed_words(seed)
    ih, il = w[2], w[3]
    ih, il = (ih << uint64(1)) | (il >> uint64(63)), (il << uint64(1)) | uint64(1)
    sh, sl = _step(uint64(0), uint64(0), ih, il)
    sh, sl = _add(sh, sl, w[0], w[1])
    sh, sl = _step(sh, sl, ih, il)
    return sh, sl, ih, il


@njit(**JIT)
def fill_states(seeds, out):
    """out[r] = (state high, state low, increment high, increment low) of default_rng(seeds[r])."""
    for r in range(len(seeds)):
        out[r, 0], out[r, 1], out[r, 2], out[r, 3] = _start(seeds[r])


@njit(**JIT)
def fill_weights(seeds, lo, hi, Wh, Wz):
    """Wh[:, :, r], then Wz[:, :, r], uniform on [lo[r], hi[r]) from default_rng(seeds[r])."""
    ni, nh, R = Wh.shape
    no = Wz.shape[1]
    for r in range(R):
        sh, sl, ih, il = _start(seeds[r])
        span = hi[r] - lo[r]
        for k in range(ni):
            for j in range(nh):
                sh, sl, u = _next_double(sh, sl, ih, il)
                Wh[k, j, r] = lo[r] + span * u
        for j in range(Wz.shape[0]):  # hidden, + 1 with a bias
            for o in range(no):
                sh, sl, u = _next_double(sh, sl, ih, il)
                Wz[j, o, r] = lo[r] + span * u


def normal_weights(
    seeds, inputs: int, hidden: int, outputs: int, mean, std, bias: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """``init = {normal = [mean, std]}`` for many runs (mean, std scalars or one per run):
    NumPy's own ``Generator.normal`` on one PCG64, given each run's seeded state from
    ``fill_states`` instead of building ``default_rng(seed)`` (a third of the time)."""
    seeds = _checked(seeds)
    R = len(seeds)
    states = np.empty((R, 4), np.uint64)
    fill_states(seeds, states)
    mean_ = np.broadcast_to(np.asarray(mean, dtype=np.float64), (R,))
    std_ = np.broadcast_to(np.asarray(std, dtype=np.float64), (R,))
    Wh = np.empty((inputs + bias, hidden, R))
    Wz = np.empty((hidden + bias, outputs, R))
    bits = np.random.PCG64(0)
    rng = np.random.Generator(bits)
    state = bits.state
    for r in range(R):
        sh, sl, ih, il = (int(v) for v in states[r])
        state["state"] = {"state": (sh << 64) | sl, "inc": (ih << 64) | il}
        bits.state = state
        Wh[:, :, r] = rng.normal(mean_[r], std_[r], (inputs + bias, hidden))
        Wz[:, :, r] = rng.normal(mean_[r], std_[r], (hidden + bias, outputs))
    return Wh, Wz


def _checked(seeds) -> np.ndarray:
    seeds = np.ascontiguousarray(seeds, dtype=np.int64)
    if seeds.size and seeds.min() < 0:
        raise ValueError("seeds must be >= 0")
    return seeds


def init_weights(
    seeds, inputs: int, hidden: int, outputs: int, lo, hi, bias: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """``train.init_weights`` for many runs; lo, hi scalars or one per run; a bias adds
    the last row of Wh and of Wz."""
    seeds = _checked(seeds)
    R = len(seeds)
    lo_ = np.ascontiguousarray(np.broadcast_to(np.asarray(lo, dtype=np.float64), (R,)))
    hi_ = np.ascontiguousarray(np.broadcast_to(np.asarray(hi, dtype=np.float64), (R,)))
    Wh = np.empty((inputs + bias, hidden, R))
    Wz = np.empty((hidden + bias, outputs, R))
    fill_weights(seeds, lo_, hi_, Wh, Wz)
    return Wh, Wz
