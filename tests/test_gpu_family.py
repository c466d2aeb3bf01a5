"""The CUDA kernel trains every model of the family with the reference's bytes, in
numba-cuda's simulator (which does the exact modes' operations one IEEE rounding each,
as libdevice's _rn calls do on a device; tests/test_gpu.py reads the PTX)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys

import pytest
from helpers import ROOT

SIM = dict(os.environ, PYTHONPATH=str(ROOT), NUMBA_ENABLE_CUDASIM="1")
ALL = [list(v) for v in itertools.product(
    ["sigmoid", "tanh", "relu", "identity"], ["linear", "sigmoid"], [False, True],
    ["standard", "mean-field"], ["notebook", "gradient"], ["sequential", "simultaneous"],
    ["float64", "float32"],
)]  # fmt: skip


def check(variants: list[list]) -> dict:
    r = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "gpu_family_check.py"), json.dumps(variants)],
        capture_output=True, text=True, env=SIM, timeout=1200,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_a_sample_of_the_family_equals_the_reference_bit_for_bit():
    """Every activation, both outputs, bias, scalings, steps and update orders appear."""
    sample = [ALL[i] for i in range(0, len(ALL), 23)]
    assert {v[0] for v in sample} == {"sigmoid", "tanh", "relu", "identity"}
    out = check(sample)
    assert out == {"checked": len(sample), "differ": {}}


@pytest.mark.slow
def test_every_variant_of_the_family_equals_the_reference_bit_for_bit():
    out = check(ALL)
    assert out == {"checked": 256, "differ": {}}
