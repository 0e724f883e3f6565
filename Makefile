# Two commands from a fresh clone: `make synth` and `make test` (see README.md).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
# The project's Node.js 22 and CDK CLI (package.json) come before the machine's.
export PATH := $(CURDIR)/node_modules/.bin:$(CURDIR)/.venv/bin:$(PATH)

PYTHON ?= python3
VENV_STAMP := .venv/.installed
NODE_STAMP := node_modules/.installed
ENV ?= dev
CDK := cdk

.PHONY: setup synth test lint typecheck unit credentials diff deploy destroy bench rehearse clean

setup: $(VENV_STAMP) $(NODE_STAMP)

$(VENV_STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv .venv
	.venv/bin/pip install --quiet --upgrade pip
	.venv/bin/pip install --quiet -r requirements-dev.txt
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

## Synthesize every environment into cdk.out (no AWS account needed) and print the stacks.
## The CDK CLI runs app.py for every command; FINETUNE_STACK_TABLE tells it to print the table, so it
## is printed once, here, and not on diff, deploy or destroy.
synth: setup
	FINETUNE_STACK_TABLE=1 $(CDK) synth --quiet '**'

## ruff, mypy, pytest.
test: setup lint typecheck unit

lint: setup
	ruff check .
	ruff format --check .

typecheck: setup
	mypy

unit: setup
	pytest -q

## diff, deploy and destroy need AWS credentials (synth needs none): they are checked first, so that
## their absence gives one hint instead of the CDK CLI's "Unable to resolve AWS account" per stack.
credentials: setup
	@python -m finetune whoami $(ENV)

## Per environment: make diff ENV=prod, make deploy ENV=dev, make destroy ENV=dev.
diff: credentials
	$(CDK) diff '$(ENV)/*'

deploy: credentials
	$(CDK) deploy '$(ENV)/*'

destroy: credentials
	$(CDK) destroy '$(ENV)/*'

## The whole lifecycle locally against moto's server (no AWS account): see README.md, "Rehearsal".
## make rehearse ENV=dev FINE_TUNING=support-assistant [BAD_DATA=1] [SERVING=provisioned|on_demand|none] [GATE_FAILS=1]
rehearse: setup
	$(if $(FINE_TUNING),,$(error FINE_TUNING is required, e.g. make rehearse ENV=dev FINE_TUNING=support-assistant))
	python -m finetune rehearse $(ENV) $(FINE_TUNING) $(if $(BAD_DATA),--bad-data) $(if $(SERVING),--serving $(SERVING)) $(if $(GATE_FAILS),--gate-fails)

## Speed and memory figures, side by side with their baselines (see README.md, "Performance").
bench: setup
	python -m bench

clean:
	rm -rf cdk.out .pytest_cache .mypy_cache .ruff_cache .bench
