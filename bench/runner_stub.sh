#!/bin/sh
# BENCHMARK STUB — used only by bench/operator_bench.py, never by the product or the tests.
# Stands in for `quantgate run ... --publish-configmap NS/NAME --role R` so that 200-1,000
# evaluations fit on a 2-core machine: instead of running lm-eval it publishes a results
# ConfigMap prepared from a REAL tiny lm-eval run (made by the bench at start-up), as the
# runner ServiceAccount, with one curl POST the way in-cluster clients authenticate (the
# pod's projected token and CA). curl, not kubectl: 400 kubectl starts cost more CPU than
# the whole operator and would measure the stub, not the operator.
# Usage (as the operator's --runner-command): runner_stub.sh TEMPLATE_DIR run ...args...
# Templates: TEMPLATE_DIR/<role>.json with @NS@ @NAME@ @OWNER@ @UID@ @BKEY@ @JOB@ @JOBUID@ @POD@ @PODUID@
# (the Job and pod identity the operator verifies, from the downward API like the real runner).
set -eu
templates="$1"; shift
target=""; role=""
while [ $# -gt 0 ]; do
  case "$1" in
    --publish-configmap) target="$2"; shift 2 ;;
    --role) role="$2"; shift 2 ;;
    *) shift ;;
  esac
done
ns="${target%%/*}"; name="${target#*/}"
sa="${KUBELET_ROOT:-}/var/run/secrets/kubernetes.io/serviceaccount"
sed -e "s|@NS@|$ns|g" -e "s|@NAME@|$name|g" -e "s|@OWNER@|${QUANTGATE_OWNER_NAME}|g" \
    -e "s|@UID@|${QUANTGATE_OWNER_UID}|g" -e "s|@BKEY@|${QUANTGATE_BASELINE_KEY:-none}|g" \
    -e "s|@JOBUID@|${QUANTGATE_JOB_UID}|g" -e "s|@JOB@|${QUANTGATE_JOB_NAME}|g" \
    -e "s|@PODUID@|${QUANTGATE_POD_UID}|g" -e "s|@POD@|${QUANTGATE_POD_NAME}|g" \
    "${templates}/${role}.json" |
  curl -sS --fail-with-body -o /dev/null --cacert "$sa/ca.crt" -H "Authorization: Bearer $(cat "$sa/token")" \
    -H "Content-Type: application/json" --data-binary @- \
    "https://${KUBERNETES_SERVICE_HOST}:${KUBERNETES_SERVICE_PORT}/api/v1/namespaces/${ns}/configmaps"
echo "bench stub: published $target ($role)"
