"""The kernel's numbers, without Numba: tile unit, stats columns, status codes, exp constants.

Both sides read these: the kernels and the reference compute with them, the results
side names columns with them. Importing this module loads numpy only.
"""

from __future__ import annotations

import numpy as np

# The widest tile, and the chunk unit: tiles are powers of two up to TILE
# (runner.kernel.tiles.TILES; multiples of 4 for the four sigmoid streams), so a chunk of a
# multiple of TILE runs is whole tiles. 64 measured best on the seed problem
# (128 spills out of L1/L2); larger problems get narrower tiles.
TILE = 64


# istats columns
EPOCHS_RUN, MIN_EPOCH, STATUS = 0, 1, 2
# fstats columns: tail_mean is the mean loss of the run's epochs among the last ``tail``
# of its planned epochs (summed in float64 in epoch order), its final loss if none ran
FINAL_LOSS, MIN_LOSS, FIRST_LOSS, TAIL_MEAN = 0, 1, 2, 3
FSTATS = 4  # fstats columns
# vstats columns (runs with held-out rows): the held-out loss of the last epoch run, the
# least, and the epoch of the least (0: none was finite)
FINAL_VAL_LOSS, MIN_VAL_LOSS, MIN_VAL_EPOCH = 0, 1, 2
VSTATS = 3  # vstats columns
# astats columns ([record] metrics = ["accuracy"]): the last epoch's accuracy on the
# training and the held-out rows (NaN without held-out rows)
FINAL_ACCURACY, FINAL_VAL_ACCURACY = 0, 1
ASTATS = 2  # astats columns
# STATUS values; STOPPED_EARLY: its held-out loss did not improve for ``patience`` epochs
RAN_ALL, DIVERGED, CONVERGED, STOPPED_EARLY = 0, 1, 2, 3


# exp(x) = 2**k * exp(r): k = rint(x / ln2), r = x - k*ln2 (Cody-Waite, fdlibm's split
# of ln2), exp(r) = 1 + r + r**2 * q(r) by a polynomial fitted at Chebyshev nodes of
# |r| <= ln2/2, q by Estrin's scheme (half the latency of Horner's). float64: q of
# degree 9; float32: its own constants and q of degree 4, every operation in float32.
# Each is within 1 ulp of the correctly rounded exp, measured over the whole range.
# runner.kernel.reference.exp computes the same operations in NumPy, bit for bit.
LOG2E = 1.4426950408889634
LN2_HI = 6.93147180369123816490e-01
LN2_LO = 1.90821492927058770002e-10
EXP_COEFFS = (  # highest degree first: q's coefficients, then those of r and 1
    2.5100375832561234e-08,
    2.7620075879983367e-07,
    2.7557268480310024e-06,
    2.4801521322368692e-05,
    0.00019841269863040545,
    0.0013888888917196719,
    0.008333333333330065,
    0.041666666666624164,
    0.16666666666666669,
    0.5000000000000001,
    1.0,
    1.0,
)
EXP_HI, EXP_LO = 710.0, -746.0  # beyond these exp is inf or 0
EXP64 = (EXP_HI, EXP_LO, LOG2E, LN2_HI, LN2_LO)

_f4 = np.float32
# fdlibm's expf split of ln2 (k * LN2_HI is exact for |k| <= 150); 89 and -104 bound
# the float32 range as 710 and -746 bound float64's.
EXP32 = (_f4(89.0), _f4(-104.0), _f4(LOG2E), _f4(0.693145751953125), _f4(1.4286067653e-06))
EXP_COEFFS32 = tuple(
    _f4(c) for c in (0.0013946446, 0.0083691515, 0.04166626, 0.16666517, 0.5, 1.0, 1.0)
)

# runner's tanh (kernel: runner.kernel.exp.tanh; reference: runner.kernel.reference.tanh)
TANH_ONE = {False: 20.0, True: 10.0}  # |x| beyond which tanh(x) rounds to +-1 (float64, float32)
TANH_HALF = 0.5493061443340549  # atanh(1/2): below it an odd polynomial, above it the exp form
# tanh(x) = x + x * (s * P(s)), s = x * x, for |x| < atanh(1/2): P's coefficients, lowest
# degree first, interpolated at Chebyshev nodes of s (float64: degree 10, float32: 5).
TANH_P = (
    -0.3333333333333333, 0.13333333333332728, -0.053968253967450516, 0.021869488494421545,
    -0.008863234415241197, 0.0035921106087655414, -0.0014556636717036357,
    0.0005889451420823537, -0.00023466176752647328, 8.515749545895449e-05,
    -2.063362750046846e-05,
)  # fmt: skip
TANH_P32 = tuple(
    _f4(c) for c in (-0.3333333432674408, 0.1333332359790802, -0.053964730352163315,
                     0.02181878127157688, -0.008527739904820919, 0.002528454177081585)
)  # fmt: skip
# The kernel's (ONE, HALF, P highest degree first) in each dtype, for Horner's scheme.
TANH64 = (TANH_ONE[False], TANH_HALF, TANH_P[::-1])
TANH32 = (_f4(TANH_ONE[True]), _f4(TANH_HALF), TANH_P32[::-1])
