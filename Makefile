# The two commands of the README:
#   make up     installs the Python packages, builds the pinned upstream binaries (once, cached in
#               ~/.cache/mcs-apiserver) and brings up the local ClusterSet with mcs-apiserver registered
#   make test   installs what is missing, runs `make lint`, then every test (unit + e2e on a ClusterSet
#               of its own)
PYTHON ?= python3
STATE_DIR ?= .local/clusterset
MEMBERS ?= 3
NODES ?= 2
PYTEST_ARGS ?=

.PHONY: install lint binaries up down status test unit e2e bench

install:
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -e '.[test,lint]'

# Dead code (vulture), declared dependencies (deptry) and the import layers (import-linter), all
# configured in pyproject.toml.
lint: install
	$(PYTHON) lint/deadcode.py
	$(PYTHON) -m deptry .
	$(PYTHON) -c 'from importlinter.cli import lint_imports_command; lint_imports_command()' --no-cache

binaries: install
	$(PYTHON) -m mcs_apiserver binaries build

up: binaries
	$(PYTHON) -m mcs_apiserver local up --members $(MEMBERS) --nodes $(NODES) --state-dir $(STATE_DIR)

down: install
	$(PYTHON) -m mcs_apiserver local down --state-dir $(STATE_DIR)

status: install
	$(PYTHON) -m mcs_apiserver local status --state-dir $(STATE_DIR)

test: lint binaries
	$(PYTHON) -m pytest $(PYTEST_ARGS)

unit: install
	$(PYTHON) -m pytest tests/unit $(PYTEST_ARGS)

e2e: binaries
	$(PYTHON) -m pytest tests/e2e $(PYTEST_ARGS)

bench: binaries
	$(PYTHON) -m benchmarks
