# WSPR: `make run` starts a local server on http://localhost:8008, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
WSPR := $(VENV)/bin/wspr
DATA ?= data

.PHONY: run test test-python lint-python test-frontend install frontend clean js-test-deps node

# Node 22.13+ runs the PWA's tools and the Node clients under tests/ (matrix-js-sdk 43 and Vite 8 ask for it).
# A system node that new is used as it is. Otherwise a pinned Node 22 from the npm registry (the
# node-linux-<arch> package carries the official binary) is unpacked into .node/ and put first on PATH,
# so npm itself, the builds and the tests all run on it.
NODE_VERSION := 22.23.5
NODE_HOME := $(CURDIR)/.node
NODE_OK := $(shell node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 22 || (a === 22 && b >= 13) ? 0 : 1)' 2>/dev/null && echo yes)
ifeq ($(NODE_OK),yes)
NODE :=
else
export PATH := $(NODE_HOME)/bin:$(PATH)
NODE := $(NODE_HOME)/bin/node
endif

$(NODE_HOME)/bin/node:
	mkdir -p $(NODE_HOME)
	arch=$$(uname -m | sed 's/^x86_64$$/x64/; s/^aarch64$$/arm64/'); \
	  cd $(NODE_HOME) && npm pack --silent "node-linux-$$arch@$(NODE_VERSION)" >/dev/null && \
	  tar -xzf "node-linux-$$arch-$(NODE_VERSION).tgz" --strip-components=1 package/bin/node && rm -f node-linux-*.tgz
	$@ --version

node: $(NODE)

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "WSPR needs Python 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

# The PWA's packages (npm ci) and its build (vite build).
frontend/node_modules/.installed: frontend/package.json frontend/package-lock.json $(NODE)
	cd frontend && npm ci --no-audit --no-fund
	touch $@

frontend/dist/index.html: frontend/node_modules/.installed $(shell find frontend/src frontend/public frontend/scripts frontend/index.html frontend/vite.config.* -type f 2>/dev/null)
	cd frontend && npm run build

frontend: frontend/dist/index.html

$(DATA)/wspr.yaml: | $(VENV)/.installed
	$(WSPR) init $(DATA) --server-name localhost --http-port 8008 --federation-port 8448
	# A local development server: let people sign up from the web client.
	sed -i 's/^enable_registration: false/enable_registration: true/' $(DATA)/wspr.yaml

run: $(VENV)/.installed frontend $(DATA)/wspr.yaml
	$(WSPR) run -c $(DATA)/wspr.yaml

test: test-python test-frontend

# Node clients (matrix-js-sdk) that some end-to-end tests drive as subprocesses.
JS_TEST_DIRS := $(dir $(wildcard tests/*/*/js/package.json tests/*/*/*/js/package.json))

js-test-deps: $(NODE)
	@for d in $(JS_TEST_DIRS); do echo "npm ci in $$d"; npm ci --prefix $$d --no-audit --no-fund --silent || exit 1; done

# Lint (ruff) and type check (mypy) the Python code, failing on any finding: pyproject.toml has both
# configurations. mypy keeps its cache in .mypy_cache/, so a run after a small change takes seconds.
lint-python: $(VENV)/.installed
	$(VENV)/bin/ruff check homeserver federation media_sfu tests bench
	$(VENV)/bin/mypy

# The SFU's browser tests use the PWA's playwright-core and livekit-client.
test-python: lint-python $(VENV)/.installed js-test-deps frontend/node_modules/.installed
	WSPR_LIVEKIT_CLIENT_DIR=$$([ -d frontend/node_modules/livekit-client ] && echo "$(CURDIR)/frontend") $(PY) tests/run.py

# Type check and lint (failing on any finding), unit tests, browser tests against WSPR, then the chat
# flows against Synapse: the PWA is not tied to WSPR.
test-frontend: frontend
	cd frontend && npm run lint
	cd frontend && npm test
	cd frontend && E2E_SKIP_BUILD=1 npm run e2e
	cd frontend && E2E_SKIP_BUILD=1 E2E_HOMESERVER=synapse E2E_ONLY=chat,history npm run e2e

clean:
	rm -rf $(VENV) $(NODE_HOME) frontend/node_modules frontend/dist _trial_temp _trial_temp_serial .mypy_cache .ruff_cache
