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

.PHONY: help setup crds crds-check cluster-build cluster-up cluster-down cluster-status install run \
        operator-bg demo test test-unit test-cluster lint typecheck bench images kind-up kind-load deploy \
        webhook-secret clean

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

crds-check: setup ## Fail when the committed CRDs differ from the models
	$(BIN)/python -m acgs_operator.crdgen --check

cluster-build: ## Build etcd, kube-apiserver, controller-manager, scheduler and kwok (cached)
	bash hack/build-control-plane.sh

cluster-up: setup ## Start the local control plane (.cluster/kubeconfig, logs in .cluster/logs)
	$(BIN)/python hack/localcluster.py up

cluster-down: ## Stop the local control plane and everything started against it
	$(BIN)/python hack/localcluster.py down

cluster-status: ## Show which control-plane components run
	$(BIN)/python hack/localcluster.py status

install: cluster-up ## Install the CRDs and the (local) admission webhook
	$(BIN)/python hack/install.py crds
	$(BIN)/python hack/install.py webhook

run: install ## Run the operator in the foreground against .cluster/kubeconfig
	$(BIN)/python hack/install.py run

operator-bg: install ## Run the operator in the background (pidfile, log in .cluster/logs)
	$(BIN)/python hack/install.py operator --restart

demo: operator-bg ## Local control plane + operator + the sample pipeline, then `kubectl get acgs`
	bash hack/demo.sh $(DEMO_NS)

test: setup ## Run every test (starts the local control plane when none is up)
	$(BIN)/python -m pytest

test-unit: setup ## Only the tests that need no cluster
	$(BIN)/python -m pytest -m "not cluster"

test-cluster: setup ## Only the tests on the local control plane
	$(BIN)/python -m pytest -m cluster

lint: setup ## ruff (configuration in pyproject.toml)
	$(BIN)/python -m ruff check .

typecheck: setup ## mypy: strict on the operator, as strict as practical elsewhere (pyproject.toml)
	$(BIN)/python -m mypy

bench: setup ## Benchmarks; results in bench/RESULTS.md
	$(BIN)/python bench/run.py

# ---- Laptops with Docker (cannot run on machines without a container engine) -----------------
images: ## Build the operator, trainer and server images
	docker build -f operator/Dockerfile -t $(IMAGE_REGISTRY)/operator:$(IMAGE_TAG) .
	docker build -f trainer_image/Dockerfile -t $(IMAGE_REGISTRY)/trainer:$(IMAGE_TAG) .
	docker build -f server_image/Dockerfile -t $(IMAGE_REGISTRY)/server:$(IMAGE_TAG) .

kind-up: ## Create a kind cluster
	kind create cluster --name $(KIND_CLUSTER)

kind-load: images ## Load the images into the kind cluster
	for i in operator trainer server; do kind load docker-image --name $(KIND_CLUSTER) $(IMAGE_REGISTRY)/$$i:$(IMAGE_TAG); done

webhook-secret: setup ## Without cert-manager: create the webhook's TLS Secret and CA bundle for a real cluster
	$(BIN)/python hack/webhook_secret.py | kubectl apply -f -

deploy: ## Install the operator into the current kubectl context (kind or real cluster)
	kubectl apply -k manifests/
	$(MAKE) webhook-secret

clean: cluster-down ## Remove local state (keeps .venv and the Go build cache)
	rm -rf .cluster
