# WSPR: `make run` starts a local server on http://localhost:8008, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
WSPR := $(VENV)/bin/wspr
DATA ?= data

.PHONY: run test test-python test-frontend install frontend clean js-test-deps

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "WSPR needs Python 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

# The PWA's packages (npm ci) and its build (vite build).
frontend/node_modules/.installed: frontend/package.json frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund
	touch $@

frontend/dist/index.html: frontend/node_modules/.installed $(shell find frontend/src frontend/public frontend/index.html frontend/vite.config.* -type f 2>/dev/null)
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

js-test-deps:
	@for d in $(JS_TEST_DIRS); do echo "npm ci in $$d"; npm ci --prefix $$d --no-audit --no-fund --silent || exit 1; done

# The SFU's browser tests use the PWA's playwright-core and livekit-client.
test-python: $(VENV)/.installed js-test-deps frontend/node_modules/.installed
	WSPR_LIVEKIT_CLIENT_DIR=$$([ -d frontend/node_modules/livekit-client ] && echo "$(CURDIR)/frontend") $(PY) tests/run.py

# Browser tests against WSPR, then the chat flow against Synapse: the PWA is not tied to WSPR.
test-frontend: frontend
	cd frontend && npm test
	cd frontend && E2E_SKIP_BUILD=1 npm run e2e
	cd frontend && E2E_SKIP_BUILD=1 E2E_HOMESERVER=synapse E2E_ONLY=chat npm run e2e

clean:
	rm -rf $(VENV) frontend/node_modules frontend/dist _trial_temp
