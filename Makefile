# Two commands on a fresh machine: `make report` and `make test` (both set up .venv first).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PROFILE ?= quick

.PHONY: setup report test bench clean

setup: $(VENV)/.installed

# The stamp depends on pyproject.toml: editing dependencies re-runs the install.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name hw4 --display-name "hw4 (.venv)"
	$(BIN)/hw4 weights lpips || echo "warning: LPIPS(vgg) weights unavailable; LPIPS will be reported as missing"
	touch $@

report: setup
	$(BIN)/hw4 report --profile $(PROFILE)

test: setup
	HW4_PROFILE=smoke $(BIN)/python -m pytest

bench: setup
	$(BIN)/hw4 bench grid
	$(BIN)/hw4 bench nerf
	$(BIN)/hw4 bench ssl

clean:
	rm -rf reports results runs .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +
