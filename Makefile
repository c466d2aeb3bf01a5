# Set-up lives here: every target builds (or reuses) .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SPEC ?= experiments/seed-sweep.toml
ARGS ?=

.PHONY: sweep test lint bench clean distclean

$(VENV)/.installed: pyproject.toml
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

sweep: $(VENV)/.installed
	$(BIN)/runner sweep $(SPEC) $(ARGS)

test: $(VENV)/.installed
	$(BIN)/ruff check runner tests benchmarks
	$(BIN)/python -m pytest $(ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check runner tests benchmarks
	$(BIN)/ruff format --check runner tests benchmarks

$(VENV)/.bench: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $@

bench: $(VENV)/.bench
	$(BIN)/runner bench $(ARGS)

clean:
	find . -path ./$(VENV) -prune -o \( -name __pycache__ -o -name '*.nbi' -o -name '*.nbc' \) -print0 | xargs -0 rm -rf
	rm -rf .pytest_cache .ruff_cache .hypothesis build *.egg-info

distclean: clean
	rm -rf $(VENV)
