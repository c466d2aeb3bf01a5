"""Tiles chosen per shape: any tile gives the reference's bytes; the choice fits the cache."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_precision import check_against_reference

from runner.kernel import tiles
from runner.run.train import init_weights, run_batch

CACHES = {"L1d": 32 << 10, "L2": 1 << 20, "L3": 32 << 20}


@settings(max_examples=12)
@given(
    samples=st.integers(1, 300),
    inputs=st.integers(1, 8),
    hidden=st.integers(1, 96),
    outputs=st.integers(1, 2),
    runs=st.integers(1, 70),
    output=st.sampled_from(["linear", "sigmoid"]),
    update=st.sampled_from(["sequential", "simultaneous"]),
    dtype=st.sampled_from(["float64", "float32"]),
    tile=st.sampled_from([None, *tiles.TILES]),
    data_seed=st.integers(0, 2**32 - 1),
)
def test_large_shapes_and_any_tile_match_the_reference(
    samples, inputs, hidden, outputs, runs, output, update, dtype, tile, data_seed
):
    rng = np.random.default_rng(data_seed)
    X = rng.normal(size=(samples, inputs))
    Y = rng.normal(size=(samples, outputs))
    alphas = 10 ** rng.uniform(-3, -1, size=runs) / samples
    seeds = rng.integers(0, 2**31, size=runs)
    check_against_reference(X, Y, hidden, seeds, alphas, 3, output, update, dtype=dtype,
                            tile=tile)  # fmt: skip


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_every_tile_and_the_env_override_give_the_same_bytes(dtype, monkeypatch):
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(40, 3)), rng.normal(size=(40, 2))
    seeds, alphas = np.arange(70), np.geomspace(1e-3, 0.5, 70)

    def run(tile):
        Wh, Wz = init_weights(seeds, 3, 6, 2, (-1.0, 1.0))
        out = run_batch(X, Y, Wh, Wz, alphas, 60, "sigmoid", every=7, diverge_above=1e3,
                        dtype=dtype, tile=tile)  # fmt: skip
        return out.loss, out.istats, out.fstats, out.Wh, out.Wz

    first = run(64)
    for tile in (4, 8, 16, 32, None):
        for a, b in zip(first, run(tile), strict=True):
            np.testing.assert_array_equal(a, b)
    monkeypatch.setenv("RUNNER_TILE", "8")
    assert tiles.choose_tile(40, 3, 6, 2, dtype) == 8
    for a, b in zip(first, run(None), strict=True):
        np.testing.assert_array_equal(a, b)
    monkeypatch.setenv("RUNNER_TILE", "12")
    with pytest.raises(ValueError, match="RUNNER_TILE"):
        tiles.choose_tile(40, 3, 6, 2, dtype)


SHAPES = [(4, 2, 4, 1), (256, 2, 4, 1), (16, 2, 256, 1), (64, 8, 32, 1), (256, 8, 64, 1),
          (1024, 4, 16, 1), (1024, 8, 256, 1), (1, 1, 1, 1)]  # fmt: skip


@pytest.mark.parametrize("shape", SHAPES)
def test_chosen_tile_fits_the_cache_or_is_the_narrowest(shape, monkeypatch):
    monkeypatch.delenv("RUNNER_TILE", raising=False)
    for dtype in ("float64", "float32"):
        tile = tiles.choose_tile(*shape, dtype, caches=CACHES)
        assert tile in tiles.TILES and tile >= tiles.MIN_AUTO
        fits = tiles.working_set_bytes(*shape, dtype, tile) <= CACHES["L2"]
        assert fits or tile == tiles.MIN_AUTO
        if tile < 64:  # the next wider tile would not fit
            assert tiles.working_set_bytes(*shape, dtype, 2 * tile) > CACHES["L2"]
    t64 = tiles.choose_tile(*shape, "float64", caches=CACHES)
    assert tiles.choose_tile(*shape, "float32", caches=CACHES) >= t64
    assert tiles.choose_tile(*shape, caches={**CACHES, "L2": 2 * CACHES["L2"]}) >= t64


def test_seed_problem_keeps_the_widest_tile_and_big_ones_get_narrower(monkeypatch):
    monkeypatch.delenv("RUNNER_TILE", raising=False)
    assert tiles.choose_tile(4, 2, 4, 1, caches=CACHES) == 64
    assert tiles.choose_tile(256, 2, 4, 1, caches=CACHES) == 32
    assert tiles.choose_tile(256, 8, 64, 1, caches=CACHES) == tiles.MIN_AUTO


def test_cache_sizes_read_from_sysfs_with_defaults(tmp_path):
    for i, (level, kind, size) in enumerate(
        [(1, "Data", "48K"), (1, "Instruction", "32K"), (2, "Unified", "2048K")]
    ):
        d = tmp_path / f"index{i}"
        d.mkdir()
        (d / "level").write_text(f"{level}\n")
        (d / "type").write_text(f"{kind}\n")
        (d / "size").write_text(f"{size}\n")
    got = tiles.cache_sizes(tmp_path)
    assert got == {"L1d": 48 << 10, "L2": 2 << 20, "L3": tiles.DEFAULT_CACHES["L3"]}
    assert tiles.cache_sizes(tmp_path / "missing") == tiles.DEFAULT_CACHES


def test_epoch_ops_counts_the_seed_problem():
    """Counted by hand from the kernel: forward 96, sigmoids 16 x 36, error 16, loss
    bookkeeping 6, Wz 36, hidden delta 80, Wh 72; 16 sigmoid divisions and the loss's."""
    exact = tiles.epoch_ops(4, 2, 4, 1)
    assert exact == {"ops": 882, "divisions": 17, "exps": 16}
    fast = tiles.epoch_ops(4, 2, 4, 1, fastmath=True)
    assert fast["divisions"] == 1 and fast["ops"] < exact["ops"]
    assert tiles.epoch_ops(4, 2, 4, 1, "sigmoid")["exps"] == 20
    assert tiles.epoch_ops(4, 2, 4, 1, dtype="float32")["ops"] < exact["ops"]


def test_one_epoch_count_for_the_floor():
    from runner.bench import peak

    assert peak.epoch_flops(4, 2, 4) == 882 + 17
    core = peak.Core("test", 256, 2.0, "assumed")
    assert peak.floor_ns(core, 4, 2, 4)["ops"] == tiles.epoch_ops(4, 2, 4)["ops"]
