# RetailPulse: `make demo` and `make test` are all a fresh clone needs.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-all lint bench clean-venv services-down

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	@$(BIN)/pip install --quiet --upgrade pip > /dev/null 2>&1 || true
	@echo "installing retailpulse and its dependencies into $(VENV) (first time: a few minutes)"
	@$(BIN)/pip install --quiet -e '.[dev]' > $(VENV)/install.log 2>&1 \
		|| { cat $(VENV)/install.log; echo "install failed (log: $(VENV)/install.log)"; exit 1; }
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/retailpulse demo

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" --timeout=900

test-all: $(STAMP)
	$(BIN)/python -m pytest --timeout=1800

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/online_features.py
	$(BIN)/python bench/quality.py forecaster --quick
	$(BIN)/python bench/quality.py churn
	$(BIN)/python bench/quality.py anomaly
	$(BIN)/python bench/quality.py recommender --models baselines
	$(BIN)/python bench/train_overhead.py
	$(BIN)/python bench/train_overhead.py recommender

services-down: $(STAMP)
	$(BIN)/retailpulse services down

clean-venv:
	rm -rf $(VENV)
