#!/usr/bin/env bash
# make demo: a live evaluation. Starts simulated vLLM servers playing FP16, INT8, INT4-g128 and INT4-g64
# variants of one model (examples/simulate/demo-fleet.yaml), runs lm-eval's local suite against each
# through `quantgate run`, prints the decision matrix under the general rule and the math-tutoring
# profile, writes HTML reports to demo-output/ and stops the servers.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m quantgate.demo.simulated --fleet examples/simulate/demo-fleet.yaml --output demo-output "$@"
