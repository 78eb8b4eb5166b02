# Two commands on a fresh machine: `make demo` (the main job) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: venv demo test lint format emulator erp bench ui

$(STAMP): requirements.txt pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	# the project itself (editable, no dependencies): its entry point registers the `zuora` connection type
	$(BIN)/pip install -q -e . --no-deps
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

venv: $(STAMP)

demo: venv  ## full sync of every family from the bundled emulator into local SQLite
	$(BIN)/python -m scripts.demo

test: venv lint  ## the whole test suite (CI runs exactly this)
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

emulator: venv  ## serve the emulated tenant on http://127.0.0.1:8780
	$(BIN)/python -m include.zuora_emulator serve --port 8780 --scale small

erp: venv  ## serve the reference ERP REST API on http://127.0.0.1:8790 (user erp, password erp-secret)
	$(BIN)/python -m include.reference_erp serve --port 8790 --db .local/erp-api.db

ui: venv  ## the Airflow UI on http://127.0.0.1:8080 (UI_PORT) with the emulator; prints the login; Ctrl-C stops
	$(BIN)/python -m scripts.ui

bench: venv  ## sync benchmark (issue 11): 10k+100k items, latency 0 and 0.3 s; BENCH_ARGS="--items 1000000" for 1M
	$(BIN)/pip install -q -r bench/requirements.txt
	$(BIN)/python -m bench.harness $(BENCH_ARGS)

bench-pages: venv  ## how fast the emulator serves Object Query pages (bench/results/emulator_pages.json)
	$(BIN)/python bench/emulator_pages.py
