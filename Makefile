# patchgate: the two commands are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8080
HOST ?= 127.0.0.1
PG := $(BIN)/patchgate

.PHONY: run test check venv deps test-deps services lint typecheck contracts drift bench clean

$(BIN)/patchgate: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $(BIN)/patchgate

venv: $(BIN)/patchgate

run: venv
	$(PG) init --demo
	@echo
	@echo "patchgate on http://$(HOST):$(PORT)/"
	@echo "  public policy   http://$(HOST):$(PORT)/policy"
	@echo "  security.txt    http://$(HOST):$(PORT)/.well-known/security.txt"
	@echo "  home            http://$(HOST):$(PORT)/"
	@echo "  web console     http://$(HOST):$(PORT)/console/  (sign in with the admin token below)"
	@echo "  management API  http://$(HOST):$(PORT)/api/v1/  (OpenAPI: /api/v1/openapi.json)"
	@echo "  device API      http://$(HOST):$(PORT)/DEFAULT/controller/v1/{controllerId}"
	@echo "  metrics         http://$(HOST):$(PORT)/metrics"
	@echo -n "  admin token     "; $(PG) token create quickstart --role admin --replace
	@echo
	$(PG) serve --host $(HOST) --port $(PORT)

$(VENV)/.test-deps: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

# The BSI's CSAF reference validator (npm) that the CSAF tests run under Node.
CSAF_VALIDATOR := tests/csaf_validator
$(CSAF_VALIDATOR)/node_modules/.package-lock.json: $(CSAF_VALIDATOR)/package.json $(CSAF_VALIDATOR)/package-lock.json
	cd $(CSAF_VALIDATOR) && npm ci --no-audit --no-fund --silent

test-deps: $(VENV)/.test-deps $(CSAF_VALIDATOR)/node_modules/.package-lock.json

# Debian packages the suite needs: the databases and broker it talks to, and the real tools
# it drives (Debian's SWUpdate client, openssl to sign .swu files, wrk). Add to this list
# when a test needs another one. As root, `make deps` installs the missing ones (one
# apt-get update first); otherwise it names the command to run and stops.
DEBIAN_PACKAGES := postgresql mosquitto swupdate openssl wrk rauc squashfs-tools chromium nodejs gpgv nginx
deps:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	  echo "installing Debian packages:" $$missing; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends $$missing >/dev/null; \
	else \
	  echo "make test needs these Debian packages; install them first:" >&2; \
	  echo "  sudo apt-get install -y" $$missing >&2; \
	  exit 2; \
	fi

# PostgreSQL and Mosquitto (push tests, 127.0.0.1:1883) must answer for the suite; start the
# machine's when they do not.
MOSQUITTO := $(shell command -v mosquitto || echo /usr/sbin/mosquitto)
services:
	@pg_isready -q -h 127.0.0.1 -p 5432 || { pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start && sleep 2; }
	@pg_isready -h 127.0.0.1 -p 5432
	@(exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null || { mkdir -p /run/mosquitto && chown mosquitto: /run/mosquitto 2>/dev/null; $(MOSQUITTO) -d -c /etc/mosquitto/mosquitto.conf && sleep 1; }
	@(exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null && echo "127.0.0.1:1883 - accepting connections"

test: deps test-deps services
	PATCHGATE_TEST_POSTGRES=postgresql://postgres@127.0.0.1:5432/test $(BIN)/pytest -q -n 2 --dist loadfile --durations=30

lint:
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck:
	$(BIN)/mypy

contracts:
	$(BIN)/lint-imports

drift:
	$(BIN)/patchgate db check

check: test-deps lint typecheck contracts drift

clean:
	rm -rf $(VENV) var build dist .pytest_cache .mypy_cache .ruff_cache
