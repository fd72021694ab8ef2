#!/usr/bin/env bash
# Waits for a ModelEvaluation's verdict on its current spec generation (for CI pipelines):
#   scripts/wait-promotable.sh NAMESPACE NAME [TIMEOUT_SECONDS]      (default 7200)
# Exit 0: promotable (Ship, Monitor). 1: decided and not promotable (ABTest, Block) or Failed,
# as soon as that is known. 2: usage error, or no verdict before the timeout.
# Unlike `kubectl wait --for=condition=Promotable`, it does not wait out the timeout on a Block.
# Env: KUBECTL (default kubectl), QUANTGATE_POLL_SECONDS (default 5).
set -uo pipefail
if (($# < 2 || $# > 3)); then
  echo "usage: wait-promotable.sh NAMESPACE NAME [TIMEOUT_SECONDS]" >&2
  exit 2
fi
ns=$1 name=$2 timeout=${3:-7200}
kubectl=${KUBECTL:-kubectl}
poll=${QUANTGATE_POLL_SECONDS:-5}
fields='{.metadata.generation}|{.status.observedGeneration}|{.status.phase}|{.status.verdict}|{.status.message}'
deadline=$((SECONDS + timeout))
while :; do
  line=$("$kubectl" get modelevaluations.quantgate.io "$name" -n "$ns" -o "jsonpath=$fields" 2>/dev/null) || line=""
  IFS='|' read -r generation observed phase verdict message <<<"$line"
  # A status only counts for the generation it names (a spec change makes the old verdict stale).
  if [[ -n $observed && $observed == "$generation" ]]; then
    case $phase in
      Succeeded)
        echo "$ns/$name: $verdict (generation $generation): $message"
        [[ $verdict == Ship || $verdict == Monitor ]] && exit 0
        exit 1 ;;
      Failed)
        echo "$ns/$name: Failed (generation $generation): $message"
        exit 1 ;;
    esac
  fi
  if ((SECONDS >= deadline)); then
    echo "$ns/$name: no verdict for generation ${generation:-?} after ${timeout}s (phase ${phase:-none})" >&2
    exit 2
  fi
  sleep "$poll"
done
