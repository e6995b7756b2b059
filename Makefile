# `make train` and `make test` install into .venv when needed, then run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install train test test-all lint bench preview clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt torch
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

train: install
	$(BIN)/python -m inpaint.run experiment=blind $(ARGS)

test: install
	$(BIN)/python -m pytest $(ARGS)

test-all: install
	$(BIN)/python -m pytest -m "" $(ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	$(BIN)/python -m inpaint.bench $(ARGS)

preview: install
	$(BIN)/python -m inpaint.preview $(ARGS)

clean:
	rm -rf $(VENV) logs .pytest_cache .ruff_cache
