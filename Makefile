# Earshot: the one command surface. CI calls these same targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FFPROBE_VERSION := 5.2.0
FFPROBE := layers/ffprobe/bin/ffprobe
HOST ?= 127.0.0.1
PORT ?= 8080
DATA_DIR ?= .earshot
STAGE ?= dev

.PHONY: help setup serve test test-unit test-integration test-e2e lint format typecheck bench clean

help:
	@echo "make serve | test | lint | typecheck | bench | synth STAGE=dev | deploy STAGE=dev | destroy STAGE=dev"

setup: $(STAMP) $(FFPROBE)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[local,dev]'
	$(BIN)/pip install --quiet --no-deps pocketsphinx==5.1.1
	touch $@

# The static ffprobe used for metering, from a pinned npm package (not committed: it is 78 MB).
$(FFPROBE):
	@mkdir -p layers/ffprobe/bin layers/ffprobe/.npm
	cd layers/ffprobe/.npm && npm pack --silent @ffprobe-installer/linux-x64@$(FFPROBE_VERSION) >/dev/null
	tar -xzf layers/ffprobe/.npm/ffprobe-installer-linux-x64-$(FFPROBE_VERSION).tgz -C layers/ffprobe/.npm
	install -m 0755 layers/ffprobe/.npm/package/ffprobe $@
	rm -rf layers/ffprobe/.npm
	@$@ -version | head -n 1

serve: setup
	$(BIN)/earshot serve --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR)

test: setup
	$(BIN)/pytest tests

lint: setup
	$(BIN)/ruff check layers/core/python functions tests bench infra
	$(BIN)/ruff format --check layers/core/python functions tests bench infra

format: setup
	$(BIN)/ruff format layers/core/python functions tests bench infra
	$(BIN)/ruff check --fix layers/core/python functions tests bench infra

typecheck: setup
	$(BIN)/mypy

bench: setup
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) layers/ffprobe/bin cdk.out .pytest_cache
