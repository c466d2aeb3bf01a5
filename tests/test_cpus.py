"""The same bytes on every CPU: the kernel compiled for other targets (NUMBA_CPU_NAME) in
fresh interpreters gives this host's bytes on chaotic runs and the reference's on shapes
up to 1024 samples x 256 hidden (tests/large_shapes.py), and Numba's cache never hands
code compiled for one target to another."""

import json
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import env

pytestmark = pytest.mark.slow  # a kernel build per CPU target: make test-all
X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
# NUMBA_CPU_FEATURES="" compiles for the named CPU's own features, not the host's
TARGETS = {
    "generic": {"NUMBA_CPU_NAME": "generic", "NUMBA_CPU_FEATURES": ""},
    "haswell": {"NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": ""},  # AVX2 and FMA
}
DTYPES = ["float64", "float32"]
LARGE_EXAMPLES = 4  # of tests/large_shapes.py's property (up to 1024 x 256), each build

# Chaotic runs: seed data, alpha 0.1 and 0.03, 3000 epochs, two tiles of 64 runs, each
# output layer and each update once (two variants a build: every build compiles afresh);
# any difference in one operation grows into visible bits.
SCRIPT = """
import json, sys
import numpy as np
from runner.kernel import exp
from runner.kernel import cpu as kernels
from runner.plan.data import builtin
from runner.run.train import init_weights, run_batch

out, dtype = sys.argv[1], sys.argv[2]
X, Y = builtin("seed")
seeds = np.arange(128) % 64
alpha = np.where(np.arange(128) < 64, 0.1, 0.03)
arrays = {}
for output, update in (("linear", "sequential"), ("sigmoid", "simultaneous")):
    Wh, Wz = init_weights(seeds, 2, 4, 1, (-1.0, 1.0))
    kw = {} if dtype == "float64" else {"dtype": dtype}
    res = run_batch(X, Y, Wh, Wz, alpha, 3000, output, update, **kw)
    for name in ("loss", "Wh", "Wz", "istats", "fstats"):
        arrays[f"{output}-{update}-{name}"] = getattr(res, name)
np.savez(out, **arrays)
if len(sys.argv) > 3:  # the large shapes' property (tests/large_shapes.py), this build
    sys.path.insert(0, sys.argv[3])
    from large_shapes import run_property
    run_property(dtype, max_examples=int(sys.argv[4]))
print(json.dumps({
    "avx512": exp.has_avx512(),
    "ldexp": exp.uses_ldexp(),
    **kernels.cache_stats(),
}))
"""


def run_target(tmp_path, name: str, cache, dtype: str = "float64", large: int = 0
               ) -> tuple[dict, dict]:  # fmt: skip
    """Run SCRIPT compiled for target ``name`` (``host``: no override) with NUMBA_CACHE_DIR
    ``cache``, and ``large`` examples of the large shapes' property; (its arrays, what
    it reports)."""
    out = tmp_path / f"{name}-{len(list(tmp_path.iterdir()))}.npz"
    extra = {"NUMBA_CACHE_DIR": str(cache), **TARGETS.get(name, {})}
    prop = [str(Path(__file__).parent), str(large)] if large else []
    r = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(out), dtype, *prop],
        env={k: v for k, v in env(**extra).items() if name != "host" or "NUMBA_CPU" not in k},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    with np.load(out) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return arrays, json.loads(r.stdout.strip().splitlines()[-1])


def assert_same_bytes(got: dict, want: dict, what: str) -> None:
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert got[key].dtype == value.dtype and got[key].shape == value.shape, key
        same = got[key].view(np.uint8) == value.view(np.uint8)
        assert same.all(), f"{what}: {key} differs from the host's bytes"


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    """dtype -> (arrays, report, cache folder) of the host, compiled in a fresh cache."""
    tmp = tmp_path_factory.mktemp("host")
    return {d: (*run_target(tmp, "host", tmp / "cache", d), tmp / "cache") for d in DTYPES}


def targets() -> list:
    skip = pytest.mark.skip(reason=f"haswell is an x86 CPU; this is {platform.machine()}")
    return ["generic", pytest.param("haswell", marks=() if X86 else skip)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("target", targets())
def test_other_targets_give_the_hosts_bytes(tmp_path, host, target, dtype):
    want, _, _ = host[dtype]
    assert np.isfinite(want["linear-sequential-loss"]).any()
    got, info = run_target(tmp_path, target, tmp_path / "cache", dtype, large=LARGE_EXAMPLES)
    assert info["misses"] >= 1 and info["hits"] == 0  # compiled here, for this target
    assert not info["avx512"] and not info["ldexp"]  # no AVX-512 on either target
    assert_same_bytes(got, want, target)


def test_the_cache_keeps_targets_apart(tmp_path, host):
    """The host's cache folder: its entry is not loaded for generic (which compiles its
    own, AVX-512 choice included), and is loaded again by the host."""
    want, first, cache = host["float64"]
    assert first["misses"] >= 1
    got, other = run_target(tmp_path, "generic", cache)
    assert other["misses"] >= 1 and other["hits"] == 0, other
    assert not other["ldexp"]
    assert_same_bytes(got, want, "generic after host")
    again, second = run_target(tmp_path, "host", cache)
    assert second["hits"] >= 1 and second["misses"] == 0, second
    assert second["ldexp"] == first["ldexp"]
    assert_same_bytes(again, want, "host from its cache")
