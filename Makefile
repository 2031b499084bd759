# The two commands of the README:
#   make up     installs the Python packages, builds the pinned upstream binaries (once, cached in
#               ~/.cache/mcs-apiserver) and brings up the local ClusterSet with mcs-apiserver registered
#   make test   installs what is missing, runs `make lint`, then every test (unit + e2e on a ClusterSet
#               of its own)
#   make conformance  builds the upstream MCS conformance suite (sigs.k8s.io/mcs-api/conformance) from
#               CONFORMANCE_SRC and runs it against member-1 and member-2 of a local ClusterSet of its own,
#               brought up with --publish; the report lands in CONFORMANCE_OUT (outside the repository)
PYTHON ?= python3
STATE_DIR ?= .local/clusterset
MEMBERS ?= 3
NODES ?= 2
PYTEST_ARGS ?=
# The base of `make image`: "debian" (made here from Debian packages, no registry needed) or an image,
# e.g. docker.io/library/python:3.11-slim-bookworm (the Containerfile's own default).
IMAGE_BASE ?= debian


# The suite's source: a checkout of sigs.k8s.io/mcs-api's conformance/ folder that builds against the
# published sigs.k8s.io/mcs-api module (README: "Conformance").
CONFORMANCE_SRC ?= ../shared/mcs-api-conformance
CONFORMANCE_OUT ?= $(HOME)/.cache/mcs-apiserver/conformance
CONFORMANCE_STATE_DIR ?= /tmp/mcs-apiserver-conformance
# The cases that need `kubectl exec` into a pod or a data plane cannot run on kwok's simulated Nodes.
CONFORMANCE_FILTER ?= !DNS && !Connectivity

.PHONY: install lint binaries up down status test unit e2e bench image conformance

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
	$(PYTHON) -m benchmarks.dns

# The container image of the Containerfile, built with buildah (installed with apt-get when missing)
# into a store of its own under ~/.cache/mcs-apiserver/containers; cached by a hash of its sources.
image:
	$(PYTHON) image/build.py --base $(IMAGE_BASE)

# The source is copied first: `go test -c` may update go.sum, and the source folder may be read-only.
conformance: binaries
	rm -rf $(CONFORMANCE_OUT)/src && mkdir -p $(CONFORMANCE_OUT)/report && cp -r $(CONFORMANCE_SRC) $(CONFORMANCE_OUT)/src
	cd $(CONFORMANCE_OUT)/src && GOFLAGS=-mod=mod go test -c -o $(CONFORMANCE_OUT)/conformance.test .
	$(PYTHON) -m mcs_apiserver local up --publish --members 2 --nodes $(NODES) --state-dir $(CONFORMANCE_STATE_DIR)
	cd $(CONFORMANCE_OUT)/report && $(CONFORMANCE_OUT)/conformance.test \
		-kubeconfig $(CONFORMANCE_STATE_DIR)/kubeconfig -contexts member-1,member-2 \
		-ginkgo.label-filter='$(CONFORMANCE_FILTER)' -ginkgo.v -project mcs-apiserver; \
	status=$$?; $(PYTHON) -m mcs_apiserver local down --state-dir $(CONFORMANCE_STATE_DIR); \
	echo "report: $(CONFORMANCE_OUT)/report/report.html, report.yaml"; exit $$status
