"""The benchmark harness runs, checks its peers against runner, and prints its tables."""

import json
import subprocess
import sys

import pytest
from helpers import ROOT

from runner import bench


def one(kind, name, arg):
    r = subprocess.run([sys.executable, "-m", "runner.bench", kind, name, arg, "--quick"],
                       capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("peer", ["plain @njit port", "runner, 1 core"])
def test_kernel_peer_measures_and_agrees_with_runner(peer):
    row = one("kernel", peer, "seed")
    assert row["ns_per_epoch_run"] > 0
    assert row["epoch_runs_per_s"] > 0
    assert row["check_rel_err"] <= bench.CHECK_RTOL


def test_a_wrong_peer_fails_the_check():
    import numpy as np

    want = bench._runner_losses(4, [0], 50)
    with pytest.raises(AssertionError, match="differ from runner"):
        bench._check("bad", want * (1 + 1e-6), 4, [0], 50)
    assert bench._check("same", want.copy(), 4, [0], 50) == 0.0
    assert np.all(np.isfinite(want))


def test_every_kernel_peer_computes_its_error(monkeypatch):
    """Each peer's reported error is measured, not assumed: a peer computing wrong losses
    is caught (runner's own kernel is checked against runner.reference)."""
    import importlib

    import numpy as np

    train = importlib.import_module("runner.train")  # the module (runner.train is a function)
    run_batch = train.run_batch

    def off_by_one_ulp(*args, **kw):
        res = run_batch(*args, **kw)
        res.loss[...] = np.nextafter(res.loss, np.inf)
        return res

    monkeypatch.setattr(train, "run_batch", off_by_one_ulp)
    with pytest.raises(AssertionError, match="differ from the reference"):
        bench.peer_runner(4, quick=True)
    monkeypatch.setattr(bench, "CHECK_RTOL", -1.0)  # no error passes: each peer must check
    for name, (fn, _pin) in bench.KERNEL_PEERS.items():
        if "JAX" in name and not bench.has_jax():
            continue
        with pytest.raises(AssertionError, match="differ from"):
            fn(4, True)


def test_table_renders_every_section():
    result = {
        "machine": {"cpu": "cpu", "cores": 2, "python": "3", "numba": "n", "numpy": "np"},
        "kernel": {"seed": {"runner, 1 core": {"ns_per_epoch_run": 10.0,
                                               "epoch_runs_per_s": 1e8, "peak_rss_mib": 100,
                                               "ratio_to_runner": 1.0},
                            "JAX vmap+scan f64": {"error": "jax not installed"}}},
        "e2e": {"runner": {"rows": 10, "seconds": 1.0, "rows_per_s": 10.0, "peak_rss_mib": 1,
                           "ratio_to_runner": 1.0}},
        "memory": {"100": {"rows": 100, "seconds": 1.0, "peak_rss_mib": 5}},
    }  # fmt: skip
    text = bench.table(result)
    assert "| runner, 1 core | 10.0 |" in text
    assert "jax not installed" in text
    assert "| 100 | 100 |" in text
