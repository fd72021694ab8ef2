# quantgate — make targets (see README.md).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test unit integration tools system-deps e2e crd manifests lock bench clean tools-argo e2e-gitops tools-llama demo-real

# Create/refresh .venv/ when pyproject.toml changes.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

demo: venv
	bash scripts/demo.sh

tools:
	bash scripts/build-tools.sh

system-deps:
	bash scripts/system-deps.sh

# Argo CD, kustomize and Argo Rollouts for the GitOps tests (cached like the control plane).
tools-argo:
	bash scripts/build-argo.sh

test: venv tools tools-argo tools-llama system-deps
	QUANTGATE_REQUIRE_CLUSTER=1 $(BIN)/python -m pytest tests -q
	$(BIN)/python tests/e2e/gitops.py

unit: venv
	$(BIN)/python -m pytest tests/unit -q

integration: venv tools tools-argo tools-llama
	QUANTGATE_REQUIRE_CLUSTER=1 $(BIN)/python -m pytest tests/integration -q

e2e: venv tools
	bash scripts/e2e.sh

# Argo CD v3.6.1 syncs manifests/argocd/example/ (Ship, Block, ABTest); last line JSON. See tests/e2e/gitops.py.
e2e-gitops: venv tools tools-argo system-deps
	$(BIN)/python tests/e2e/gitops.py

crd: venv
	$(BIN)/quantgate crd -o manifests/crd/modelevaluations.quantgate.io.yaml
	$(BIN)/quantgate crd --kind ModelEvaluationMatrix -o manifests/crd/modelevaluationmatrices.quantgate.io.yaml
	cp manifests/crd/modelevaluations.quantgate.io.yaml manifests/crd/modelevaluationmatrices.quantgate.io.yaml \
		charts/quantgate/crds/  # the chart ships the same CRDs

# Plain install YAML (manifests/install/) and the chart's copies of the CRD and alert rules, from the chart.
manifests: tools
	bash scripts/manifests.sh

# Hash-pinned dependency locks the Dockerfile installs from (after changing dependencies in pyproject.toml).
lock: venv
	bash scripts/lock.sh

bench: venv
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache

# The real-model test ground: llama-cpp-python's wheel (built once, cached), the SmolLM2 Q4_1
# reference GGUF and its Q3_K_M / Q2_K requantizations, under ~/.cache/quantgate/.
tools-llama: venv system-deps
	bash scripts/build-llama.sh $(VENV)

# Reference vs Q3_K_M and Q2_K through the in-process llama.cpp engine: real scores, flips, fidelity;
# gsm8k also through llama-cpp-python's server, its answers compared with the engine's.
demo-real: tools-llama
	bash scripts/demo-real.sh
