# Two commands set everything up: `make demo` and `make test` each create .venv and
# install what is missing before they run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_OUT ?= runs/demo

.PHONY: demo test lint typecheck bench clean

$(STAMP): pyproject.toml $(wildcard yt8mkit/*/native_*.[ch])
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,cluster]'
	touch $(STAMP)

demo: $(STAMP)
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
