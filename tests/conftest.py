import os

import pytest
from helpers import SPEC, make_sweep, run_sweep, sets
from hypothesis import settings

settings.register_profile("ci", max_examples=60, deadline=None)
settings.register_profile("dev", max_examples=30, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
# runner.train's NumPy path before a kernel is compiled (runner.run.first) gives the same
# numbers; the tests run the kernel itself, but test_first, which turns it on.
os.environ["RUNNER_NUMPY_FIRST"] = "0"


# The files that take longest in `make test-all`, longest first: they start first, so that
# with a worker per core (pytest-xdist, a file per worker) no long file is left to the end.
LONGEST = ("test_cpus", "test_gpu", "test_precision", "test_family", "test_validation",
           "test_metrics", "test_weights", "test_bench", "test_slurm", "test_faults")  # fmt: skip


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """A test that starts a SLURM cluster or Dask workers is slow: `make test` leaves it out.
    The longest files run first (``LONGEST``), the rest in their order."""
    for item in items:
        if item.get_closest_marker("slurm") or item.get_closest_marker("dask"):
            item.add_marker(pytest.mark.slow)
    rank = {name: i for i, name in enumerate(LONGEST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(LONGEST)))  # stable


def need_service(reason: str) -> None:
    """Skip outside CI (with the reason); fail in CI, where every service must exist."""
    if os.environ.get("CI"):
        pytest.fail(f"CI must provide this: {reason}")
    pytest.skip(reason)


# ----- small real sweeps for the analysis, plot and report tests -----
@pytest.fixture(scope="session")
def seed_results(tmp_path_factory):
    """2 alphas x 2 hidden x 4 seeds; alpha 0.2 with hidden 8 diverges; 3 runs a chunk,
    so grid points straddle loss files."""
    root = tmp_path_factory.mktemp("seed")
    grid = "alpha = [0.03, 0.2]\nhidden = [4, 8]\nseed = { start = 0, stop = 4 }"
    return make_sweep(root, "seed-sweep", grid, extra="[sweep]\nchunk_runs = 3")


@pytest.fixture(scope="session")
def one_axis_results(tmp_path_factory):
    root = tmp_path_factory.mktemp("one")
    grid = "alpha = [0.01, 0.1, 0.2]\nseed = { start = 0, stop = 3 }"
    return make_sweep(root, "one-axis", grid, train="epochs = 200\nhidden = 8")


@pytest.fixture(scope="session")
def three_axis_results(tmp_path_factory):
    root = tmp_path_factory.mktemp("three")
    grid = 'output = ["linear", "sigmoid"]\nhidden = [2, 4]\nalpha = [0.1, 0.2]\nseed = [0, 1, 2]'
    return make_sweep(root, "three-axes", grid, train="epochs = 200")


@pytest.fixture(scope="session")
def init_results(tmp_path_factory):
    """String axis `update` and the pair axis `init`, recorded every 7th epoch."""
    root = tmp_path_factory.mktemp("init")
    grid = (
        'update = ["sequential", "simultaneous"]\ninit = [[0.0, 1.0], [-1.0, 1.0]]\n'
        "seed = { start = 0, stop = 3 }"
    )
    return make_sweep(root, "init-axes", grid, train="epochs = 250", extra="[record]\nevery = 7")


@pytest.fixture(scope="session")
def no_grid_results(tmp_path_factory):
    return make_sweep(tmp_path_factory.mktemp("none"), "single", "", train="epochs = 100")


@pytest.fixture(scope="session")
def diverging_results(tmp_path_factory):
    """7 alphas x 2 hidden x 4 seeds, diverge_above = 1e3: from alpha 0.1 up some runs
    diverge with finite losses (as issue 21's diverge_factor makes them); the rest fall
    from about 2.7 to 0.06 over 2000 epochs."""
    root = tmp_path_factory.mktemp("diverging")
    grid = "alpha = [0.003, 0.01, 0.03, 0.1, 0.2, 0.3, 0.5]\nhidden = [4, 8]\nseed = [0, 1, 2, 3]"
    train = "epochs = 2000\ndiverge_above = 1e3"
    return make_sweep(root, "diverging", grid, train=train)


@pytest.fixture(scope="session")
def reference(tmp_path_factory):
    """reference(overrides) -> results folder of a plain local run (one process), made once."""
    made = {}

    def get(overrides: list[str]):
        key = tuple(overrides)
        if key not in made:
            out = tmp_path_factory.mktemp("reference")
            made[key] = run_sweep(SPEC, out, *sets(overrides), "--jobs", "1")
        return made[key]

    return get
