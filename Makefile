# Two commands set everything up: `make demo` and `make test` each create .venv and
# install what is missing before they run. `make demo` installs the package alone (what
# the demo imports); `make test` adds the dev and cluster extras.
# TORCH_INDEX: a wheel index to take PyTorch from first, e.g. PyTorch's CPU index on a
# machine without a GPU (README, "Set-up"); empty: pip's own index.
PYTHON ?= python3
TORCH_INDEX ?=
VENV := .venv
BIN := $(VENV)/bin
DEMO_STAMP := $(VENV)/.demo-stamp
STAMP := $(VENV)/.installed-stamp
DEMO_OUT ?= runs/demo
SOURCES := pyproject.toml $(wildcard yt8mkit/*/native_*.[ch])

.PHONY: demo test lint typecheck bench clean

$(DEMO_STAMP): $(SOURCES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(if $(TORCH_INDEX),$(BIN)/python -m pip install --quiet torch==2.13.0 --index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install --quiet -e .
	touch $(DEMO_STAMP)

$(STAMP): $(DEMO_STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,cluster]'
	touch $(STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/yt8m demo --out $(DEMO_OUT)

lint: $(STAMP)
	$(BIN)/ruff check yt8mkit tests $(wildcard bench)

# The layer contract (pyproject.toml, [tool.importlinter]) and the type checker.
typecheck: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/mypy

test: $(STAMP) lint typecheck
	$(BIN)/python -m pytest -q -n 2 tests

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
