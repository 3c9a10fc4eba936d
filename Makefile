# ACGS operator. `make demo` runs the product locally; `make test` runs every test.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
KUBECONFIG_LOCAL := $(CURDIR)/.cluster/kubeconfig
KUBECTL := $(BIN)/kubectl --kubeconfig=$(KUBECONFIG_LOCAL)
DEMO_NS ?= acgs-demo
IMAGE_REGISTRY ?= ghcr.io/acgs
IMAGE_TAG ?= 0.1.0
KIND_CLUSTER ?= acgs
# The image and real-node tests use a cluster of their own (directory, ports, lock), beside the
# shared one on 6443; with the real node, the operator process takes ports of its own too.
OWN_CLUSTER_ENV := ACGS_CLUSTER_DIR=$(CURDIR)/.cluster-real ACGS_API_PORT=16443 ACGS_ETCD_PORT=12379 \
  ACGS_CM_PORT=20257 ACGS_SCHEDULER_PORT=20259 ACGS_KWOK_PORT=20247 ACGS_PODRUNNER_CIDR=198.18.1.0/24
REALNODE_ENV := ACGS_REAL_NODE=1 $(OWN_CLUSTER_ENV) ACGS_WEBHOOK_PORT=19443 ACGS_HEALTH_PORT=18081 \
  ACGS_METRICS_PORT=18082 ACGS_PROGRESS_PORT=18083
# The product's images, imported into the real node's containerd from podman's store (make images).
PRODUCT_IMAGES := $(IMAGE_REGISTRY)/operator:$(IMAGE_TAG) $(IMAGE_REGISTRY)/trainer:$(IMAGE_TAG) \
  $(IMAGE_REGISTRY)/server:$(IMAGE_TAG)
# REAL_NODE=1: cluster-up, the operator and `make demo` use the real-node cluster (.cluster-real,
# apiserver on 16443): a kubelet node (hack/realnode.py; root, containerd) runs the pods as
# containers from the product's images instead of the pod runner. Wrap it in
# `flock /tmp/acgs-realnode.lock` on a shared machine: one real node per machine.
REAL_NODE ?=
ifeq ($(REAL_NODE),1)
CLUSTER_ENV := $(REALNODE_ENV) ACGS_NODE_IMAGES="$(PRODUCT_IMAGES)"
KUBECONFIG_LOCAL := $(CURDIR)/.cluster-real/kubeconfig
else
CLUSTER_ENV :=
endif
# `make test-kueue` runs on a cluster of its own too (ports, pod CIDR, the operator's and Kueue's
# ports), so it never waits for the shared one's lock.
KUEUE_TEST_ENV := ACGS_KUEUE=1 ACGS_CLUSTER_DIR=$(CURDIR)/.cluster-kueue ACGS_API_PORT=36443 ACGS_ETCD_PORT=32379 \
  ACGS_CM_PORT=40257 ACGS_SCHEDULER_PORT=40259 ACGS_KWOK_PORT=40247 ACGS_PODRUNNER_CIDR=198.18.57.0/24 \
  ACGS_WEBHOOK_PORT=39443 ACGS_HEALTH_PORT=38081 ACGS_METRICS_PORT=38082 ACGS_PROGRESS_PORT=38083 \
  ACGS_KUEUE_WEBHOOK_PORT=39543 ACGS_KUEUE_HEALTH_PORT=39581 ACGS_KUEUE_METRICS_PORT=39582 ACGS_KUEUE_VISIBILITY_PORT=39583

.PHONY: help setup crds crds-check cluster-build cluster-up cluster-down cluster-status install run \
        operator-bg base demo test test-unit test-cluster bench images images-docker node-build test-images \
        test-realnode test-realnode-e2e test-chaos kind-up kind-load deploy webhook-secret clean kstatus promtool browser \
        monitoring monitoring-check lint typecheck kueue-build kueue-up kueue-down test-kueue

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(BIN)/.stamp: requirements.txt requirements-ml.txt pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt -r requirements-ml.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

setup: $(BIN)/.stamp ## Create .venv with every pinned dependency (torch is a large first download)

crds: setup ## Regenerate crds/ and the webhook configuration from the pydantic models
	$(BIN)/python -m acgs_operator.crdgen
	$(BIN)/python -m acgs_operator.rbac

crds-check: setup ## Fail when the committed CRDs differ from the models
	$(BIN)/python -m acgs_operator.crdgen --check
	$(BIN)/python -m acgs_operator.rbac --check

cluster-build: ## Build etcd, kube-apiserver, controller-manager, scheduler and kwok (cached)
	bash hack/build-control-plane.sh

kstatus: ## Build hack/kstatus-check on sigs.k8s.io/cli-utils/pkg/kstatus (cached; the cluster tests read real objects with it)
	bash hack/build-kstatus.sh

promtool: ## Build promtool from the Prometheus Go module (cached; the alert rules' unit tests use it)
	bash hack/build-promtool.sh

browser: ## Install Debian's chromium (apt) for the dashboard's headless-browser test
	command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq --no-install-recommends chromium; }

monitoring: setup ## Regenerate docs/metrics.md and manifests/monitoring/dashboard.json from code
	$(BIN)/python -m acgs_monitoring

monitoring-check: setup ## Fail when docs/metrics.md or the dashboard differ from what the code generates
	$(BIN)/python -m acgs_monitoring --check

cluster-up: setup ## Start the local control plane (.cluster/kubeconfig, logs in .cluster/logs); REAL_NODE=1: the real-node cluster
	$(CLUSTER_ENV) $(BIN)/python hack/localcluster.py up

node-build: ## Build kubelet, kube-proxy, CoreDNS, kube-network-policies and pause for the real node (cached)
	bash hack/build-node.sh

kueue-build: ## Build the Kueue controller manager from sigs.k8s.io/kueue, with its CRDs (cached; cold ~10+ min)
	bash hack/build-kueue.sh

kueue-up: cluster-up ## Kueue on the local control plane (root): ResourceFlavor, ClusterQueue (4 GPUs), LocalQueue in DEMO_NS
	$(BIN)/python hack/kueue.py up --namespace $(DEMO_NS)

kueue-down: ## Stop Kueue and remove its webhooks (its CRDs and queues stay until cluster-down)
	$(BIN)/python hack/kueue.py down

cluster-down: ## Stop the local control plane and everything started against it (REAL_NODE=1: the real-node cluster)
	$(CLUSTER_ENV) $(BIN)/python hack/localcluster.py down

cluster-status: ## Show which control-plane components run
	$(CLUSTER_ENV) $(BIN)/python hack/localcluster.py status

install: cluster-up ## Install the CRDs and the (local) admission webhook
	$(CLUSTER_ENV) $(BIN)/python hack/install.py crds
	$(CLUSTER_ENV) $(BIN)/python hack/install.py webhook

run: install ## Run the operator in the foreground against .cluster/kubeconfig
	$(CLUSTER_ENV) $(BIN)/python hack/install.py run

operator-bg: install ## Run the operator in the background (pidfile, log in .cluster/logs)
	$(CLUSTER_ENV) $(BIN)/python hack/install.py operator --restart

base: setup ## Pre-train the built-in tiny base on public data, once (cached in ~/.cache/acgs/models)
	$(BIN)/acgs-train build-base >/dev/null

demo: base operator-bg ## Local control plane + operator + the sample pipeline (REAL_NODE=1: pods as containers on the real node)
	$(CLUSTER_ENV) bash hack/demo.sh $(DEMO_NS)

test: base ## Run every test but the chaos ones (starts the local control plane when none is up)
	$(BIN)/python -m pytest -m "not chaos"

test-unit: base ## Only the tests that need no cluster
	$(BIN)/python -m pytest -m "not cluster"

test-cluster: base ## Only the tests on the local control plane (chaos ones aside)
	$(BIN)/python -m pytest -m "cluster and not chaos"

CHAOS ?= chaos
test-chaos: setup ## Fault tests: operator HA and SIGKILLs, apiserver/etcd restarts, webhook down, API fuzzing (~5.5 min)
	$(BIN)/python -m pytest -m "$(CHAOS)" tests/chaos

lint: setup ## ruff (configuration in pyproject.toml)
	$(BIN)/python -m ruff check .

typecheck: setup ## mypy: strict on the operator and tools/ (kubectl plugin, monitoring), as strict as practical elsewhere
	$(BIN)/python -m mypy


images: ## Build the operator, trainer and server images with podman from a Debian-archive base (no Docker)
	bash hack/build-images.sh

test-kueue: base ## Two over-quota TrainingJobs queued by a real Kueue (root; builds Kueue once; own cluster on 36443; not in CI)
	bash hack/build-kueue.sh >/dev/null
	flock /tmp/acgs-kueue.lock bash -c '$(KUEUE_TEST_ENV) $(BIN)/python -m pytest -m kueue tests/kueue; \
	  rc=$$?; $(KUEUE_TEST_ENV) $(BIN)/python hack/localcluster.py down; exit $$rc'

test-images: setup ## Run each image as UID 65532 with a read-only root (needs `make images`; own cluster on 16443)
	flock /tmp/acgs-realnode.lock bash -c '$(OWN_CLUSTER_ENV) $(BIN)/python -m pytest -m images tests/images; \
	  rc=$$?; $(OWN_CLUSTER_ENV) $(BIN)/python hack/localcluster.py down; exit $$rc'

test-realnode: setup ## NetworkPolicies and pods on a real kubelet node (own cluster on port 16443; not in CI)
	flock /tmp/acgs-realnode.lock bash -c '$(REALNODE_ENV) $(BIN)/python -m pytest -m realnode tests/realnode; \
	  rc=$$?; $(REALNODE_ENV) $(BIN)/python hack/localcluster.py down; exit $$rc'

test-realnode-e2e: base ## The training, serving and flywheel e2e tests with their pods in the product's images on the real node (needs `make images`; not in CI)
	flock /tmp/acgs-realnode.lock bash -c '$(REALNODE_ENV) ACGS_NODE_IMAGES="$(PRODUCT_IMAGES)" $(BIN)/python -m pytest \
	  tests/realnode tests/cluster/test_trainingjob_e2e.py tests/cluster/test_deployment_e2e.py \
	  tests/cluster/test_flywheel_collect.py tests/cluster/test_flywheel_loop.py $(PYTEST_ARGS); rc=$$?; $(REALNODE_ENV) $(BIN)/python hack/localcluster.py down; exit $$rc'

bench: base ## Benchmarks; results in bench/RESULTS.md
	$(BIN)/python bench/run.py $(BENCH)

# ---- Laptops with Docker ---------------------------------------------------------------------
images-docker: ## Build the operator, trainer and server images with Docker
	docker build -f operator/Dockerfile -t $(IMAGE_REGISTRY)/operator:$(IMAGE_TAG) .
	docker build -f trainer_image/Dockerfile -t $(IMAGE_REGISTRY)/trainer:$(IMAGE_TAG) .
	docker build -f server_image/Dockerfile -t $(IMAGE_REGISTRY)/server:$(IMAGE_TAG) .

kind-up: ## Create a kind cluster
	kind create cluster --name $(KIND_CLUSTER)

kind-load: images-docker ## Load the images into the kind cluster
	for i in operator trainer server; do kind load docker-image --name $(KIND_CLUSTER) $(IMAGE_REGISTRY)/$$i:$(IMAGE_TAG); done

webhook-secret: setup ## Without cert-manager: create the webhook's TLS Secret and CA bundle for a real cluster
	$(BIN)/python hack/webhook_secret.py | kubectl apply -f -

deploy: ## Install the operator into the current kubectl context (kind or real cluster)
	kubectl apply -k manifests/
	$(MAKE) webhook-secret

clean: cluster-down ## Remove local state (keeps .venv and the Go build cache)
	rm -rf .cluster
