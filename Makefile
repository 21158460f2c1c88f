# Flotilla: every target sets up what it needs (virtualenv, packages, tools) and is safe to re-run.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TOOLS  := .tools/bin
SERVICES := $(notdir $(patsubst %/pyproject.toml,%,$(wildcard services/*/pyproject.toml)))
export PATH := $(CURDIR)/$(TOOLS):$(PATH)

.DEFAULT_GOAL := help
.PHONY: help venv run test lint fmt bench clean tools images image-tags base-image

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

# The chassis, the dev tools and every service, each its own distribution, all editable.
PROJECTS := pyproject.toml devtools/pyproject.toml $(wildcard services/*/pyproject.toml)

$(STAMP): $(PROJECTS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev,bench]' -e ./devtools $(addprefix -e ./,$(patsubst %/pyproject.toml,%,$(wildcard services/*/pyproject.toml)))
	@touch $@

venv: $(STAMP) ## create or update .venv (quick when nothing changed)

run: $(STAMP) ## start the whole store on this machine (Ctrl-C stops it)
	$(BIN)/flotilla up

test: $(STAMP) tools ## run the whole test suite
	$(BIN)/python -m pytest -n 2 --dist loadgroup

lint: $(STAMP) ## ruff, mypy strict on the chassis, the services and the dev tools, the import layers
	$(BIN)/ruff check flotilla services devtools tests bench
	$(BIN)/ruff format --check flotilla services devtools tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: $(STAMP) ## format and fix what ruff can
	$(BIN)/ruff format flotilla services devtools tests bench
	$(BIN)/ruff check --fix flotilla services devtools tests bench

bench: $(STAMP) ## run the benchmarks, write docs/benchmarks.md
	$(BIN)/python -m bench

tools: ## put helm and kubectl under .tools/bin when they are missing
	@scripts/tools.sh $(TOOLS)

base-image: ## build a Debian base image locally (for machines that cannot pull python:3.12-slim)
	@scripts/base-image.sh

# What `make images` builds: every service and the dev issuer.
IMAGES := $(SERVICES) dev-issuer

images: ## build every service image (and the dev issuer's) as flotilla/<name>:<git sha>, :latest and :dev
	@scripts/build-images.sh $(IMAGES)

image-tags: ## print "name image" for every tag `make images` makes (the overlays name :dev)
	@scripts/build-images.sh --all-tags $(IMAGES)

clean: ## remove the virtualenv, tools, caches and local state
	rm -rf $(VENV) .tools .flotilla .pytest_cache .mypy_cache .ruff_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
