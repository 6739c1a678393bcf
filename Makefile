# Entry points: `make run` (demo on the built-in default station), `make test`, and
# `make serve` (local Prefect server + the scheduled deployments).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test serve install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/sensorcast demo

test: $(STAMP)
	$(BIN)/python -m pytest

serve: $(STAMP)
	deployments/serve.sh

clean:
	rm -rf $(VENV) data
