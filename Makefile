# The two set-up commands (README): `make demo` runs the main job, `make test` runs the tests.
# Both create the virtual environment on first use. CPU torch is pinned through
# constraints-cpu.txt; GPU users install their CUDA torch first (see README).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_OUT ?= demo_output
PYTEST_ARGS ?=

.PHONY: demo test lint install clean

$(VENV)/.installed: pyproject.toml constraints-cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints-cpu.txt -e '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/dpz demo --out $(DEMO_OUT)

test: $(VENV)/.installed
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check distributed_pz tests benchmarks
	$(VENV)/bin/ruff format --check distributed_pz tests benchmarks

clean:
	rm -rf $(VENV) $(DEMO_OUT) *.egg-info .pytest_cache .ruff_cache
