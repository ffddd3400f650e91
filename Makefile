# Two commands on a fresh machine: `make run` and `make test`. Every step is idempotent and
# skips itself when its inputs have not changed (stamps in .make/).
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
.DEFAULT_GOAL := help

VENV     := .venv
BIN      := $(VENV)/bin
PYTHON   ?= python3
STAMPS   := .make
FLASK    := $(BIN)/flask --app portal
VENDOR   := portal/static/vendor
NHSUK    := node_modules/nhsuk-frontend/dist/nhsuk
HOST     ?= 127.0.0.1
PORT     ?= 5000

# Debian packages the portal needs at run and test time.
APT_PACKAGES := chromium poppler-utils libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core \
                postgresql-15

.PHONY: help setup system-packages run test bench lint format translations-update clean

help:
	@echo "make run   - set everything up, migrate, load demo data, serve on http://$(HOST):$(PORT)"
	@echo "make test  - set everything up and run the whole test suite (browser tests included)"

setup: system-packages $(STAMPS)/python $(STAMPS)/assets $(STAMPS)/translations

system-packages:
	@missing=""; for pkg in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$pkg"; \
	done; \
	command -v npm >/dev/null 2>&1 || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

$(STAMPS)/python: pyproject.toml
	@mkdir -p $(STAMPS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

$(STAMPS)/npm: package.json package-lock.json
	@mkdir -p $(STAMPS)
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(STAMPS)/assets: $(STAMPS)/npm $(wildcard portal/static/scss/*.scss)
	mkdir -p $(VENDOR)/nhsuk
	rm -rf $(VENDOR)/nhsuk/assets
	cp -r $(NHSUK)/assets $(VENDOR)/nhsuk/assets
	cp $(NHSUK)/nhsuk-frontend.min.js $(VENDOR)/nhsuk/nhsuk-frontend.min.js
	cp node_modules/signature_pad/dist/signature_pad.umd.min.js $(VENDOR)/signature_pad.umd.min.js
	cp node_modules/chart.js/dist/chart.umd.min.js $(VENDOR)/chart.umd.min.js
	npx sass --no-source-map --style=compressed --load-path=node_modules --quiet-deps \
	  portal/static/scss/portal.scss $(VENDOR)/portal.css
	@touch $@

$(STAMPS)/translations: $(STAMPS)/python $(wildcard portal/translations/*/LC_MESSAGES/messages.po)
	$(BIN)/pybabel compile -d portal/translations -D messages --statistics 2>&1 | tail -n 1
	@touch $@

# Re-extract strings and merge them into the catalogues (developers run this, then translate).
translations-update: $(STAMPS)/python
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext -o portal/translations/messages.pot --no-location --omit-header --sort-output .
	$(BIN)/pybabel update -i portal/translations/messages.pot -d portal/translations -D messages --ignore-obsolete

run: setup
	PORTAL_ENVIRONMENT=development $(FLASK) db upgrade
	PORTAL_ENVIRONMENT=development $(FLASK) docs import
	PORTAL_ENVIRONMENT=development $(FLASK) demo load
	PORTAL_ENVIRONMENT=development $(FLASK) run --host $(HOST) --port $(PORT)

# Benchmarks print each figure against a baseline measured in the same run, and append a row
# to bench/RESULTS.md. Not part of `make test`: they are slow and the machines are shared.
bench: setup
	@command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk
	cd bench && for script in $(sort $(filter-out common.py,$(notdir $(wildcard bench/*.py)))); do \
	  ../$(BIN)/python $$script; done

lint: $(STAMPS)/python
	$(BIN)/ruff check portal tests

format: $(STAMPS)/python
	$(BIN)/ruff format portal tests

test: setup lint
	$(BIN)/pytest $(PYTEST_ARGS)

clean:
	rm -rf $(STAMPS) $(VENDOR) node_modules .pytest_cache
