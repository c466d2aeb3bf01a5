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

# A worker per core (pytest-xdist), each test file on one worker: a file's session
# fixtures (a SLURM cluster, the sweeps the analysis tests share) start once, and the
# workers share Numba's cache on disk.
XDIST := -n auto --dist loadfile

# The fast tier: every promise at smaller sizes, in at most 5 minutes on 2 cores with
# a warm Numba cache. Tests marked `slow` (full sizes, cross-CPU builds, assembly,
# SLURM, Dask, the CUDA simulator, chromium, the bench) are left to test-all.
test: $(VENV)/.installed
	$(BIN)/ruff check runner tests benchmarks
	$(BIN)/python -m pytest $(XDIST) -m "not slow" $(ARGS)

# Everything, JAX included: what CI runs.
test-all: $(VENV)/.bench
	$(BIN)/ruff check runner tests benchmarks
	$(BIN)/python -m pytest $(XDIST) --durations=50 $(ARGS)

# A second environment with exactly the lowest versions pyproject.toml allows
# (scripts/floor_pins.py derives the pins from it), running the kernel, sweep, data,
# plot and numba_ext tests, slow ones included but for two kinds that cost most of the
# run and check what the floors cannot change on their own:
# - test_cpus' four builds for other CPUs (generic and haswell, each dtype): each
#   compiles every kernel afresh in its own interpreter: 145 to 261 s each, 744 s for
#   the four, on the 2-core machine (numba 0.62, cold cache, busy). They test
#   LLVM's code for other CPUs; the floors' LLVM (llvmlite 0.45: LLVM 20) already
#   passes every exact check on this CPU below. The cache test stays: numba_ext keys
#   the cache by target through Numba's internals, and it builds for generic and
#   compares its bytes with the host's (137 s, after the host's own builds: 177 s).
# - the assembly check (a packed exp loop, no libm exp): a speed property, 32 s.
# test_numba_ext (3 s) checks that the floors are in the range numba_ext names.
# The exact checks stay, full sizes included: the kernel against the reference at
# 10,000 epochs, partial tiles, the bitwise exp, sigmoid and ldexp, the sweeps' bytes.
OLDEST := .venv-oldest
OLDEST_TESTS := tests/test_kernel.py tests/test_simd.py tests/test_cpus.py tests/test_sweep.py \
	tests/test_data.py tests/test_plots.py tests/test_numba_ext.py
OLDEST_SKIP := --deselect tests/test_cpus.py::test_other_targets_give_the_hosts_bytes \
	--deselect tests/test_simd.py::test_the_exp_loop_is_packed_arithmetic_and_calls_no_libm_exp

$(OLDEST)/.installed: pyproject.toml scripts/floor_pins.py
	rm -rf $(OLDEST)
	$(PYTHON) -m venv $(OLDEST)
	$(OLDEST)/bin/pip install --quiet --upgrade pip
	$(OLDEST)/bin/python scripts/floor_pins.py > $(OLDEST)/pins.txt
	$(OLDEST)/bin/pip install --quiet --only-binary=:all: -r $(OLDEST)/pins.txt
	$(OLDEST)/bin/pip install --quiet --no-deps -e .
	touch $@

test-oldest: $(OLDEST)/.installed
	NUMBA_CACHE_DIR=$(OLDEST)/numba-cache $(OLDEST)/bin/python -m pytest $(XDIST) \
		$(OLDEST_TESTS) $(OLDEST_SKIP) $(ARGS)

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
