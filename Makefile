# Set-up lives here: every target builds (or reuses) .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SPEC ?= experiments/seed-sweep.toml
ARGS ?=

.PHONY: sweep test test-all test-oldest test-latest lint bench clean distclean

$(VENV)/.installed: pyproject.toml
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

sweep: $(VENV)/.installed
	$(BIN)/runner sweep $(SPEC) $(ARGS)

# The bench extra (JAX) on top of dev: test-all and bench need it. Rebuilding .venv
# (pyproject.toml changed) removes this stamp with it.
$(VENV)/.bench: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $@

# The fast tier: every promise at smaller sizes, in at most 5 minutes on 2 cores with
# a warm Numba cache. Tests marked `slow` (full sizes, cross-CPU builds, assembly,
# SLURM, Dask, the CUDA simulator, chromium, the bench) are left to test-all.
test: $(VENV)/.installed
	$(BIN)/ruff check runner tests benchmarks
	$(BIN)/python -m pytest -m "not slow" $(ARGS)

# Everything, JAX included: what CI runs.
test-all: $(VENV)/.bench
	$(BIN)/ruff check runner tests benchmarks
	$(BIN)/python -m pytest --durations=30 $(ARGS)

# A second environment with exactly the lowest versions pyproject.toml allows
# (scripts/floor_pins.py derives the pins from it), running the kernel, sweep, data
# and plot tests, slow ones included.
OLDEST := .venv-oldest
OLDEST_TESTS := tests/test_kernel.py tests/test_simd.py tests/test_cpus.py tests/test_sweep.py \
	tests/test_data.py tests/test_plots.py

$(OLDEST)/.installed: pyproject.toml scripts/floor_pins.py
	rm -rf $(OLDEST)
	$(PYTHON) -m venv $(OLDEST)
	$(OLDEST)/bin/pip install --quiet --upgrade pip
	$(OLDEST)/bin/python scripts/floor_pins.py > $(OLDEST)/pins.txt
	$(OLDEST)/bin/pip install --quiet --only-binary=:all: -r $(OLDEST)/pins.txt
	$(OLDEST)/bin/pip install --quiet --no-deps -e .
	touch $@

test-oldest: $(OLDEST)/.installed
	NUMBA_CACHE_DIR=$(OLDEST)/numba-cache $(OLDEST)/bin/python -m pytest $(OLDEST_TESTS) $(ARGS)

# The newest numba, llvmlite and numpy (past pyproject.toml's upper bound on numba),
# running the kernel tests: a signal that runner.kernel.numba_ext needs a look, not a
# blocker (CI reports it). A fresh environment every time: "newest" changes.
LATEST := .venv-latest
KERNEL_TESTS := tests/test_kernel.py tests/test_simd.py tests/test_cpus.py \
	tests/test_precision.py tests/test_precision_keys.py tests/test_seeding.py tests/test_tiles.py

test-latest:
	rm -rf $(LATEST)
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/pip install --quiet --upgrade pip
	$(LATEST)/bin/pip install --quiet -e . pytest hypothesis pytest-timeout
	$(LATEST)/bin/pip install --quiet --upgrade numba llvmlite numpy
	$(LATEST)/bin/pip list 2>/dev/null | grep -iE '^(numba|llvmlite|numpy) '
	NUMBA_CACHE_DIR=$(LATEST)/numba-cache $(LATEST)/bin/python -m pytest \
		-p no:cacheprovider $(KERNEL_TESTS) $(ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check runner tests benchmarks
	$(BIN)/ruff format --check runner tests benchmarks

bench: $(VENV)/.bench
	$(BIN)/runner bench $(ARGS)

clean:
	find . \( -path ./$(VENV) -o -path ./$(OLDEST) -o -path ./$(LATEST) \) -prune -o \( -name __pycache__ -o -name '*.nbi' -o -name '*.nbc' \) -print0 | xargs -0 rm -rf
	rm -rf .pytest_cache .ruff_cache .hypothesis build *.egg-info

distclean: clean
	rm -rf $(VENV) $(OLDEST) $(LATEST)
