#!/bin/sh
# BENCHMARK STUB — used only by bench/operator_bench.py, never by the product or the tests.
# Stands in for `quantgate run ... --publish-configmap NS/NAME --role R` so that 200-1,000
# evaluations fit on a 2-core machine: instead of running lm-eval it publishes a results
# ConfigMap prepared from a REAL tiny lm-eval run (made by the bench at start-up) with
# kubectl, as the runner ServiceAccount. The operator reads, compares and decides as usual.
# Usage (as the operator's --runner-command): runner_stub.sh TEMPLATE_DIR run ...args...
# Templates: TEMPLATE_DIR/<role>.json with @NS@ @NAME@ @OWNER@ @UID@ @BKEY@.
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
sed -e "s|@NS@|$ns|g" -e "s|@NAME@|$name|g" -e "s|@OWNER@|${QUANTGATE_OWNER_NAME}|g" \
    -e "s|@UID@|${QUANTGATE_OWNER_UID}|g" -e "s|@BKEY@|${QUANTGATE_BASELINE_KEY:-none}|g" \
    "${templates}/${role}.json" | kubectl create -f - >/dev/null
echo "bench stub: published $target ($role)"
