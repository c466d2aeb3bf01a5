"""The typed run plan: chunk planning properties, the documented order, bounded memory."""

import itertools

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.kernel import cpu as kernels
from runner.plan import params
from runner.plan.chunks import TILE, Plan, cut, stack
from runner.plan.spec import build_spec, layer_of
from runner.results import store
from runner.run.worker import tasks_for


def test_plan_tile_is_the_kernels_tile():
    assert TILE == kernels.TILE


def _spec(grid, chunk_runs, sample=None):
    raw = {"name": "p", "train": {"epochs": 5}, "grid": grid, "sweep": {"chunk_runs": chunk_runs}}
    if sample:
        raw["sample"] = sample
    return build_spec(raw, "p.toml")


grids = st.fixed_dictionaries(
    {},
    optional={
        "hidden": st.lists(st.integers(1, 40), min_size=1, max_size=3, unique=True),
        "output": st.lists(st.sampled_from(["linear", "sigmoid"]), min_size=1, unique=True),
        "epochs": st.lists(st.integers(1, 9), min_size=1, max_size=2, unique=True),
        "alpha": st.lists(
            st.floats(1e-3, 1.0, allow_nan=False), min_size=1, max_size=4, unique=True
        ),
        "seed": st.integers(1, 300).map(lambda n: {"start": 0, "stop": n}),
        "init": st.just([[0.0, 1.0], [-1.0, 1.0]]),
    },
)
chunk_sizes = st.one_of(st.integers(1, 70), st.sampled_from([64, 128, 192, 256, 100, 1000]))


def _check_chunks(plan: Plan, chunk_runs: int) -> None:
    """Chunks partition every block, respect chunk_runs, and are whole tiles but the last."""
    seen = []
    for layer in plan.layers:
        kept, _, chunks, runs = layer._geometry
        for b in range(len(kept)):
            ranges = [layer.chunk_range(c) for c in range(int(chunks[b]), int(chunks[b + 1]))]
            first = layer.run_offset + int(runs[b])
            ids = [i for a, z in ranges for i in range(a, z)]
            assert ids == list(range(first, first + int(kept[b])))  # a partition, in order
            for k, (a, z) in enumerate(ranges):
                assert 0 < z - a <= chunk_runs
                if chunk_runs >= TILE and k < len(ranges) - 1:
                    assert (z - a) % TILE == 0
            seen.extend(ids)
    assert seen == list(range(plan.n_runs))
    assert plan.chunk_sizes().tolist() == [
        z - a for a, z in (plan.chunk_range(c) for c in range(plan.n_chunks))
    ]
    for c in range(plan.n_chunks):  # one block: a chunk has one value of each per-call column
        chunk = plan.chunk(c)
        for name in params.PER_CALL:
            for col, _ in params.BY_NAME[name].columns:
                assert len(np.unique(chunk.columns[col])) == 1


@given(grid=grids, chunk_runs=chunk_sizes)
def test_chunks_partition_blocks_tile_aligned(grid, chunk_runs):
    spec = _spec(grid, chunk_runs)
    _check_chunks(Plan([spec.layer]), chunk_runs)


@pytest.mark.slow  # make test: test_sweep's and test_shard's shards give one run's files
@given(
    grid=grids,
    chunk_runs=chunk_sizes,
    shards=st.integers(1, 5),
    points=st.integers(1, 20),
)
def test_chunks_do_not_depend_on_jobs_or_shards(tmp_path_factory, grid, chunk_runs, shards, points):
    """Shard i of N takes chunks c = i mod N of one plan: together exactly the plan's chunks."""
    sample = {"points": points, "method": "random", "alpha": {"loguniform": [1e-3, 1.0]}}
    grid = {k: v for k, v in grid.items() if k != "alpha"}
    spec = _spec(grid, chunk_runs, sample)
    plan = Plan([spec.layer])
    _check_chunks(plan, chunk_runs)
    out = tmp_path_factory.mktemp("t")
    whole = list(tasks_for(spec, out, list(range(plan.n_chunks)), plan))
    parts = {}
    for i in range(shards):
        mine = list(range(i, plan.n_chunks, shards))
        for task in tasks_for(spec, out, mine, Plan([layer_of(spec.resolved(), "p")])):
            parts[task.index] = task
    assert sorted(parts) == [t.index for t in whole]
    for t in whole:
        got = parts[t.index]
        assert (got.run_start, got.run_stop) == (t.run_start, t.run_stop)
        for col in params.COLUMNS:
            np.testing.assert_array_equal(got.columns[col], t.columns[col])


@given(kept=st.lists(st.integers(0, 5000), min_size=1, max_size=6), chunk_runs=chunk_sizes)
def test_cut_counts_cover_each_block(kept, chunk_runs):
    count, size = cut(np.array(kept), chunk_runs)
    for k, n, s in zip(kept, count, size, strict=True):
        assert n * s >= k and (n == 0 or (n - 1) * s < k)
        assert s <= chunk_runs or k == 0


def test_plan_is_the_documented_product():
    """Per-call axes outermost (table order), then per-run axes, seed fastest."""
    grid = {
        "seed": {"start": 0, "stop": 3},
        "alpha": [0.1, 0.2],
        "hidden": [2, 5],
        "output": ["sigmoid", "linear"],
        "init": [[0.0, 1.0], [-1.0, 2.0]],
    }
    spec = _spec(grid, 7)
    plan = Plan([spec.layer])
    cols = {c: [] for c in params.COLUMNS}
    for c in range(plan.n_chunks):
        for k, v in plan.chunk(c).columns.items():
            cols[k].extend(v.tolist())
    expect = list(
        itertools.product(
            [0, 1][::-1],  # output codes in the grid's order: sigmoid (1), then linear (0)
            [2, 5],
            [(0.0, 1.0), (-1.0, 2.0)],
            [0.1, 0.2],
            [0, 1, 2],
        )
    )
    got = list(
        zip(
            cols["output"],
            cols["hidden"],
            zip(cols["init_lo"], cols["init_hi"], strict=True),
            cols["alpha"],
            cols["seed"],
            strict=True,
        )
    )
    assert got == expect
    assert set(cols["epochs"]) == {5} and set(cols["dtype"]) == {0} and not any(cols["fastmath"])
    assert np.isnan(cols["stop_below"]).all()
    assert spec.axis_names == ["output", "hidden", "init", "alpha", "seed"]


def test_grown_layers_hold_each_run_once():
    """Stacked layers: every run of every spec appears once, later layers only the new ones."""
    specs = [
        _spec({"alpha": [0.1, 0.2], "hidden": [2, 3], "seed": {"start": 0, "stop": 70}}, 64),
        _spec({"alpha": [0.2, 0.3], "hidden": [2, 3], "seed": {"start": 0, "stop": 100}}, 64),
        _spec({"alpha": [0.1], "hidden": [3, 4], "seed": {"start": 50, "stop": 120}}, 64),
    ]
    layers = stack([layer_of(s.resolved(), "p") for s in specs])
    plan = Plan(layers)
    _check_chunks(plan, 64)
    rows = []
    for c in range(plan.n_chunks):
        cols = plan.chunk(c).columns
        rows.extend(zip(*(cols[k].tolist() for k in ("alpha", "hidden", "seed")), strict=True))
    wanted = set()
    for s in specs:
        g = s.grid
        seeds = range(g["seed"]["start"], g["seed"]["stop"])
        wanted |= set(itertools.product(g["alpha"], g["hidden"], seeds))
    assert len(rows) == len(set(rows)) == len(wanted)
    assert set(rows) == wanted
    assert [layer.n_runs for layer in layers] == [280, 400 - 140, 140 - 20]


def test_ten_million_runs_plan_in_bounded_memory():
    """Planning holds the axes and one entry per block, never an array per run."""
    spec = _spec({"alpha": {"start": 1e-3, "stop": 1.0, "num": 1000}, "seed": {"start": 0,
                  "stop": 5_000}, "hidden": [2, 4]}, 0)  # fmt: skip
    layer = spec.layer
    assert spec.n_runs == 10_000_000
    assert spec.n_chunks == 2 * -(-5_000_000 // spec.chunk_runs)
    held = sum(v.nbytes for f in layer.factors for v in f.values())
    held += sum(a.nbytes for a in layer._blocks) + sum(a.nbytes for a in layer._geometry)
    assert held < 200_000  # the seed axis (40 kB), the alpha axis (8 kB), a few per block
    last = layer.chunk(spec.n_chunks - 1)
    assert last.run_stop == spec.n_runs and last.columns["seed"][-1] == 4_999


def test_store_columns_follow_the_parameter_table(tmp_path):
    import runner

    spec = tmp_path / "s.toml"
    spec.write_text('name = "cols"\n[train]\nepochs = 20\n[grid]\nalpha = [0.1, 0.2]\n')
    runner.sweep(spec, out=tmp_path, progress=False)
    schema = pq.read_schema(tmp_path / "cols" / store.RUNS / store.chunk_name(0))
    names = [n for n in schema.names if n in params.COLUMNS]
    # the model family's columns and fold only where a sweep names them (params.OPTIONAL);
    # init's of its form; diverge_factor, which a new spec names (1e6)
    optional = set(params.OPTIONAL) - {"diverge_factor"}
    assert names == [c for c in params.COLUMNS if params.OWNER[c].name not in optional
                     and c not in ("init_mean", "init_std")]  # fmt: skip
    runs = runner.load(tmp_path / "cols").runs
    assert runs["dtype"].astype(str).tolist() == ["float64", "float64"]
    assert runs["fastmath"].dtype == bool and not runs["fastmath"].any()
    assert runs["stop_below"].isna().all()


@pytest.mark.parametrize("key", params.NAMES)
def test_every_parameter_has_one_rule_and_columns(key):
    p = params.BY_NAME[key]
    value = p.check(p.default)
    assert p.from_row(p.to_row(value)) == value
    assert all(dt in params.NUMPY for _, dt in p.columns)


grown_grids = st.lists(
    st.fixed_dictionaries(
        {
            "alpha": st.lists(st.sampled_from([0.1, 0.2, 0.3, 0.4]), min_size=1, unique=True),
            "hidden": st.lists(st.sampled_from([2, 3, 5]), min_size=1, unique=True),
            "seed": st.tuples(st.integers(0, 50), st.integers(1, 90)).map(
                lambda t: {"start": t[0], "stop": t[0] + t[1]}
            ),
        }
    ),
    min_size=1,
    max_size=4,
)


@given(grids=grown_grids, chunk_runs=chunk_sizes)
def test_grown_layers_partition_the_union(grids, chunk_runs):
    """Any sequence of specs: each run of their union once, chunk rules kept in every layer."""
    specs = [_spec(g, chunk_runs) for g in grids]
    plan = Plan(stack([layer_of(s.resolved(), "p") for s in specs]))
    _check_chunks(plan, chunk_runs)
    rows = []
    for c in range(plan.n_chunks):
        cols = plan.chunk(c).columns
        rows.extend(zip(*(cols[k].tolist() for k in ("alpha", "hidden", "seed")), strict=True))
    union = set()
    for g in grids:
        seeds = range(g["seed"]["start"], g["seed"]["stop"])
        union |= set(itertools.product(g["alpha"], g["hidden"], seeds))
    assert len(rows) == len(union) and set(rows) == union


def test_automatic_chunks_bound_the_weights_of_wide_problems(tmp_path):
    """Wide problems get fewer runs per chunk, so a chunk's weights stay under
    CHUNK_WEIGHT_BYTES; the seed problem keeps its chunks of about CHUNK_ROWS loss rows."""
    from runner.plan.spec import CHUNK_WEIGHT_BYTES, auto_chunk_runs

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "wide.npz", X=rng.uniform(size=(4, 64)), Y=rng.uniform(size=(4, 1)))
    raw = {"name": "w", "data": {"path": "wide.npz"}, "train": {"epochs": 2},
           "grid": {"hidden": [8, 1024], "seed": {"start": 0, "stop": 1000}}}  # fmt: skip
    wide = build_spec(raw, "w.toml", tmp_path)
    assert wide.weight_bytes_per_run == 8 * 1024 * (64 + 1)
    assert wide.chunk_runs % TILE == 0
    assert wide.chunk_runs * wide.weight_bytes_per_run <= CHUNK_WEIGHT_BYTES
    rows_only = auto_chunk_runs(wide.recorded_per_run)
    assert wide.chunk_runs < rows_only  # the weights, not the rows, decided
    seed = build_spec({"name": "s", "grid": {"seed": {"start": 0, "stop": 100}}}, "s.toml")
    assert seed.chunk_runs == auto_chunk_runs(seed.recorded_per_run)
