#!/usr/bin/env bash
# make e2e: fresh dev cluster → CRD + RBAC → operator → simulated models + InferenceServices →
# manifests/samples/ → wait → `kubectl get meval` → tear down. See tests/e2e/e2e.py.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python tests/e2e/e2e.py "$@"
