"""The benchmark harness runs, checks its peers against runner, and prints its tables."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import need_service
from helpers import ROOT

from runner.bench import harness as bench
from runner.bench import peak, peers, tables


def one(*args):
    r = subprocess.run([sys.executable, "-m", "runner.bench.harness", *args, "--quick"],
                       capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def runner_bench(*args):
    r = subprocess.run([sys.executable, "-m", "runner", "bench", *args, "--quick", "--json"],
                       capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def need_jax():
    """JAX, which `make test-all` installs (the bench extra): skipped without it, failed in CI."""
    if not bench.has_jax():
        need_service("jax, the bench extra (make test-all installs it)")
    import jax

    return jax


def tolerance(row):
    if row["peer"] == "runner" and not row["fastmath"]:
        return peers.EXACT  # runner's exact modes are the reference, bit for bit
    return (peers.FASTMATH_RTOL if row["fastmath"] else peers.RTOL)[row["dtype"]]


def assert_checked(name, row):
    """A measured row whose losses were checked against runner's and agree."""
    assert "error" not in row, f"{name}: {row.get('error')}"
    assert row["ns_per_epoch_run"] > 0, name
    assert 0 <= row["check_rel_err"] <= tolerance(row), name


@pytest.mark.parametrize("peer", [pytest.param("njit", marks=pytest.mark.slow), "runner"])
def test_kernel_peer_measures_and_agrees_with_runner(peer):
    row = one("kernel", peer, "4x2x4", "float64", "exact", "1", "problem")
    assert row["ns_per_epoch_run"] > 0
    assert row["epoch_runs_per_s"] > 0
    assert row["check_rel_err"] <= (peers.EXACT if peer == "runner" else peers.RTOL["float64"])
    assert row["peak_rss_mib"] > 10


def test_a_wrong_peer_fails_the_check():
    want = peers.runner_losses((4, 2, 4), [0], 50)
    with pytest.raises(AssertionError, match="differ from runner"):
        peers.check("bad", want * (1 + 1e-6), want, peers.RTOL["float64"])
    with pytest.raises(AssertionError, match="differ from runner"):
        peers.check("one ulp", np.nextafter(want, np.inf), want, peers.EXACT)
    assert peers.check("same", want.copy(), want, peers.RTOL["float64"]) == 0.0
    assert np.all(np.isfinite(want))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_runner_exact_rows_accept_no_difference_from_the_reference(dtype, monkeypatch):
    """runner's exact rows are the NumPy reference bit for bit: one ulp off fails them,
    in float32 too (not only beyond the 1e-3 a JAX float32 row may differ by)."""
    p = peers.make("runner", (4, 2, 4), dtype, False)
    assert p.check(60) == 0.0
    exact = peers.reference_losses
    monkeypatch.setattr(peers, "reference_losses", lambda *a: np.nextafter(
        exact(*a).astype(dtype), np.inf).astype(np.float64))  # fmt: skip
    with pytest.raises(AssertionError, match="differ from runner"):
        p.check(60)


@pytest.mark.slow
def test_jax_peer_is_jax_sweeps_train_and_leaves_x64_as_it_was():
    """One JAX train for both bench rows; float64 agrees with runner to 1e-9, which only
    float64 arithmetic reaches, and the x64 switch is back as it was after each call."""
    jax = need_jax()
    before = bool(jax.config.jax_enable_x64)
    for dtype in ("float64", "float32"):
        p = peers.make("jax", (4, 2, 4), dtype, False)
        assert p.check(300) <= peers.RTOL[dtype]
        assert bool(jax.config.jax_enable_x64) == before
        p.prepare(8, 20)()
        assert bool(jax.config.jax_enable_x64) == before


def test_runner_exact_equals_the_reference_at_a_bigger_shape():
    p = peers.make("runner", (64, 8, 32), "float64", False)
    assert p.check(5) == 0.0


def test_floor_counts_fused_multiply_adds_divisions_and_lanes():
    c = peak.Core("cpu", 512, 2.0, "test")
    exact = peak.floor_ns(c, 256, 8, 64, "float64", False)
    fast = peak.floor_ns(c, 256, 8, 64, "float64", True)
    single = peak.floor_ns(c, 256, 8, 64, "float32", False)
    assert fast["ops"] < exact["ops"]
    assert exact["divisions"] == 256 * 64 + 1  # a sigmoid each, and the loss
    assert fast["divisions"] == 1  # fastmath's reciprocal is arithmetic
    assert exact["bound"] == "arithmetic"
    assert exact["floor_ns"] == pytest.approx(exact["ops"] / (8 * 2 * 2.0))
    assert single["floor_ns"] == pytest.approx(single["ops"] / (16 * 2 * 2.0))
    # sums of products dominate: doubling the samples about doubles the work
    big = peak.floor_ns(c, 512, 8, 64)
    assert 1.9 < big["floor_ns"] / exact["floor_ns"] < 2.1
    # the divider bounds a mode whose arithmetic is light next to its divisions
    assert peak.floor_ns(peak.Core("cpu", 512, 2.0, "test", fp_pipes=64), 4, 2, 4)[
        "bound"] == "divider"  # fmt: skip
    assert c.peak_gflops("float64") == 8 * 2 * 2 * 2.0


@pytest.mark.slow
def test_bench_quick_checks_every_peer_and_states_every_figure():
    need_jax()
    result = runner_bench()
    rows = result["kernel"]["seed"]
    modes = peers.MODES if result["modes"] else peers.MODES[:1]
    expected = {"notebook NumPy loop", "plain @njit port", "JAX jit(vmap(scan)) float64",
                "JAX jit(vmap(scan)) float32", "runner float64 exact, all cores",
                *(f"runner {peers.mode_name(d, f)}, 1 core" for d, f in modes)}  # fmt: skip
    assert set(rows) == expected
    for name, row in rows.items():
        assert_checked(name, row)
    for name, row in rows.items():
        if name.endswith("1 core"):
            assert row["x_floor"] > 1, name  # no kernel beats the floor
    assert set(result["floors"]["seed"]) == {peers.mode_name(d, f) for d, f in peers.MODES}
    e2e = result["e2e"]
    assert e2e["runner"]["rows"] == 4 * 4 * 16 * 1000
    assert e2e["JAX + pyarrow"]["rows"] == e2e["runner"]["rows"]
    assert e2e["JAX + pyarrow"]["check_rel_err"] <= 1e-5
    assert e2e["runner"]["x_jax"] > 0
    assert "error" not in e2e["runner, default make sweep"], e2e["runner, default make sweep"]
    for name, row in e2e.items():  # runner's own pipelines: the plan's estimate beside the run
        if name.startswith("runner"):
            assert row["estimated_s"] > 0 and row["estimated_peak_mib"] > 0, name
    figures = {f["figure"]: f for f in result["figures"]}
    assert len(figures) == 7
    for fig in figures.values():
        assert fig["holds"] in (True, False, None)
        assert (fig["holds"] is None) == (fig["value"] is None)
    text = bench.table(result)
    assert "| floor, float32 fastmath" in text
    assert "Figures (issue 11" in text
    assert "| planned s | actual / plan |" in text


@pytest.mark.slow
def test_bench_shapes_quick_checks_every_peer_and_records_the_tile():
    need_jax()
    result = runner_bench("--shapes")
    assert set(result["shapes"]) == {bench.shape_key(s) for s in bench.QUICK_SHAPES}
    modes = peers.MODES if result["modes"] else peers.MODES[:1]
    for key, entry in result["shapes"].items():
        rows = entry["rows"]
        assert set(rows) == {"JAX float64", "JAX float32", "plain @njit port",
                             *(f"runner {peers.mode_name(d, f)}" for d, f in modes)}  # fmt: skip
        for name, row in rows.items():
            assert_checked(f"{key} {name}", row)
            assert 0 < row["peak_fraction"] < 1
            if name.startswith("runner"):
                assert row["tile"] in (4, 8, 16, 32, 64)
    text = bench.shapes_table(result)
    assert "| 64 | 8 | 32 | runner float64 exact |" in text
    assert "Figures (issue 15)" in text


def test_markdown_names_the_machine():
    result = {
        "machine": {"cpu": "Some CPU", "cores": 2, "python": "3", "numba": "n", "numpy": "np"},
        "core": {"note": "a note"},
        "quick": True,
        "shapes": {"4x2x4": {"shape": [4, 2, 4], "flops": 10, "rows": {
            "runner float64 exact": {"ns_per_epoch_run": 10.0, "peak_fraction": 0.5,
                                     "x_jax": 2.5, "tile": 64, "dtype": "float64"},
            "JAX float64": {"error": "jax not installed"}}}},
        "figures": [tables._figure("f", 2, 2.5), tables._figure("g", 2, None)],
    }  # fmt: skip
    text = tables.markdown(result, shapes=True)
    assert text.startswith("`runner bench --shapes` on Some CPU (2 cores)")
    assert "| 4 | 2 | 4 | runner float64 exact | 10.0 | 2.50x | 50.0% | 64 |" in text
    assert "| f | >= 2x | 2.50x | yes |" in text
    assert "| g | >= 2x | - | not measured |" in text
    assert "jax not installed" in text


@pytest.mark.slow
def test_the_jax_trainability_peer_trains_the_references_network():
    """`runner bench --workload trainability` compares against this JAX map: the same
    data, initial weights and network as the reference's tanh, mean-field, gradient-step
    model (simultaneous updates), to rounding (its sums run in another order)."""
    jax = need_jax()
    from runner.bench import jax_trainability as jt
    from runner.kernel import reference as ref

    X, Y, Wh, Wz = jt.problem()
    Xr, Yr = ref.random_data(jt.SAMPLES, jt.INPUTS, jt.OUTPUTS, jt.DATA_SEED)
    assert np.array_equal(X, Xr) and np.array_equal(Y, Yr)
    Wh_r, Wz_r = ref.init_normal(jt.INIT_SEED, jt.INPUTS, jt.HIDDEN, jt.OUTPUTS, 0.0, 1.0)
    assert np.array_equal(Wh, Wh_r) and np.array_equal(Wz, Wz_r)
    points = [(30.0, 40.0), (300.0, 100.0), (5.0, 8.0), (0.2, 3.0)]  # none chaotic
    jax.config.update("jax_enable_x64", True)
    try:
        got = np.asarray(
            jt.make_map(X, Y, Wh, Wz, 60, 20)(
                jax.numpy.array([p[0] for p in points]), jax.numpy.array([p[1] for p in points])
            )
        )
    finally:
        jax.config.update("jax_enable_x64", False)
    for (a_h, a_o), ratio in zip(points, got, strict=True):
        res = ref.train_reference(X, Y, Wh, Wz, 0.0, 60, "linear", "simultaneous",
                                  activation="tanh", scaling="mean-field", step="gradient",
                                  alpha_hidden=a_h, alpha_output=a_o)  # fmt: skip
        want = res.loss[-20:].mean() / res.loss[0] if len(res.loss) == 60 else np.inf
        both_diverged = not (np.isfinite(ratio) or np.isfinite(want))
        assert both_diverged or ratio == pytest.approx(want, rel=1e-6), (a_h, a_o)


@pytest.mark.slow
def test_bench_against_a_commit_times_both_kernels_and_compares_their_losses():
    """`runner bench --against REV` builds REV in a git worktree beside this checkout; against
    HEAD itself the exact losses are equal and the two times are of one kernel."""
    from runner.bench import against

    result = against.run("HEAD", quick=True, shapes=((4, 2, 4),), modes=(("float64", False),))
    row = result["rows"]["4x2x4 float64 exact"]
    assert row["same_losses"] is True, row
    assert row["old_ns"] > 0 and row["new_ns"] > 0 and 0.2 < row["ratio"] < 5
    assert "| 4x2x4 float64 exact |" in against.table(result)
    with pytest.raises(RuntimeError, match="git worktree add no-such-rev"):
        against.run("no-such-rev", quick=True)


@pytest.mark.slow
def test_the_trainability_workload_agrees_with_jax_and_prints_the_ratio(capsys):
    """`runner bench --workload trainability`: runner's map of experiments/trainability.toml
    and JAX's, on the same grid, classify the points alike; the table says so."""
    need_jax()
    from runner.bench import trainability

    found = trainability.run(grid=8, steps=80)
    assert found["same_grid"] and found["points"] == 64
    assert found["agreement"] >= trainability.AGREE
    assert 0 < found["converged_runner"] < 1  # the window crosses the boundary
    assert found["runner_s"] > 0 and found["jax_s"] > 0
    assert found["ratio"] == found["jax_s"] / found["runner_s"]
    text = trainability.table(found)
    assert "speed ratio" in text and "target >= 3x" in text and "needs >= 95%: ok" in text


def test_figures_old_against_new_scale_each_runner_row_by_revs_time():
    """`--against REV`: each figure gets REV's value, from this run's rows with each
    runner time scaled by REV's over this one's at that (shape, mode); a (shape, mode)
    REV was not timed at has no old value; the table prints both."""
    from runner.bench.tables import _figure_lines, old_figures, shape_figures, with_old

    rows = {"JAX float64": {"ns_per_epoch_run": 300.0, "dtype": "float64"},
            "runner float64 exact": {"ns_per_epoch_run": 100.0, "dtype": "float64",
                                     "x_jax": 3.0, "peak_fraction": 0.3},
            "runner float32 exact": {"ns_per_epoch_run": 50.0, "dtype": "float32",
                                     "x_jax": 4.0, "peak_fraction": 0.2}}  # fmt: skip
    result = {"shapes": {"256x8x64": {"shape": [256, 8, 64], "rows": rows}},
              "against": {"rows": {"256x8x64 float64 exact": {"ratio": 0.5}}}}  # fmt: skip
    new = shape_figures(result)
    figs = with_old(new, old_figures(result, shapes=True))
    by = {f["figure"]: f for f in figs}
    f64 = by["256x8x64: runner float64 exact vs JAX float64"]
    assert f64["value"] == 3.0 and f64["old"] == 1.5 and f64["holds"] and not f64["old_holds"]
    peak = by["256x8x64: runner float64 exact, share of peak"]
    assert peak["value"] == 30.0 and peak["old"] == 15.0 and peak["target"] == ">= 25%"
    f32 = by["256x8x64: runner float32 exact vs JAX float32"]
    assert f32["old"] is None and f32["old_holds"] is None  # REV not timed there
    assert rows["runner float64 exact"]["ns_per_epoch_run"] == 100.0  # this run untouched
    text = "\n".join(_figure_lines(figs))
    assert "| figure | target | old | holds | new | holds |" in text
    assert "| 1.50x | **no** | 3.00x | yes |" in text


def test_against_takes_turns_and_reports_the_median_of_the_rounds_ratios(monkeypatch):
    """`--against`: the trees alternate which goes first; new / old is the median of the
    rounds' ratios (a slow moment in one round does not decide); any round's error, or
    any round's exact losses differing, shows."""
    from pathlib import Path

    from runner.bench import against

    old, calls = Path("/old"), []
    times = {old: iter([100.0, 300.0, 100.0]), against.ROOT: iter([90.0, 100.0, 95.0])}

    def fake(tree, args):
        calls.append(tree)
        return {"ns_per_epoch_run": next(times[tree]), "check": np.zeros(2)}

    monkeypatch.setattr(against, "_time", fake)
    olds, news = against._turns(old, {}, 3)
    assert calls == [old, against.ROOT, against.ROOT, old, old, against.ROOT]
    row = against._row(olds, news, fastmath=False)
    assert row["ratio"] == 0.9  # ratios 0.9, 1/3, 0.95: their median
    assert row["old_ns"] == 100.0 and row["new_ns"] == 95.0 and row["rounds"] == 3
    assert row["not_slower"] and row["same_losses"]
    news[1] = {**news[1], "check": np.ones(2)}
    assert against._row(olds, news, fastmath=False)["same_losses"] is False
    assert "same_losses" not in against._row(olds, news, fastmath=True)
    assert against._row(olds, [*news[:2], {"error": "boom"}], False) == {"error": "boom"}
