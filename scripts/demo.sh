#!/usr/bin/env bash
# First demo: the decision matrix and one comparison on the example lm-eval result sets in
# examples/ (made by tests/fixtures/lmeval/generate.py). The runner issue replaces this
# with a live evaluation of simulated models.
set -euo pipefail
cd "$(dirname "$0")/.."
QG=.venv/bin/quantgate
echo "== quantgate report: FP16 reference vs INT8, INT4 g128, INT4 g64 (profile general)"
$QG report --baseline examples/fp16 \
  --candidate int8=examples/int8 --candidate int4-g128=examples/int4-g128 --candidate int4-g64=examples/int4-g64 \
  --size Reference=16GB --size int8=8GB --size int4-g128=4.5GB --size int4-g64=4.7GB
echo
echo "== quantgate compare: INT4 g128 for a math-tutoring deployment"
rc=0
$QG compare --baseline examples/fp16 --candidate examples/int4-g128 --profile math-tutoring || rc=$?
echo
echo "exit status $rc (0 promotable, 1 not promotable, 2 bad input)"
[[ $rc -le 1 ]]
