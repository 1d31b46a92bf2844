# The two set-up commands of the README: `make up` (install and run the whole service) and
# `make test` (install what the tests need and run the whole suite).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: up test install lint bench extension-zips

$(BIN)/paperfeed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/paperfeed

up: install
	$(BIN)/paperfeed up

test:
	./scripts/test.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

extension-zips:
	./scripts/build-extension.sh
