{{/*
RBAC rules: exactly the calls the code makes (operator/quantgate/k8s/cluster.py for the operator,
operator/quantgate/k8s/results_channel.py for the runner, plus what kopf itself needs).
tests/integration/test_rbac.py proves they are enough and that nothing more is allowed.
*/}}

{{/* The operator, in each watched namespace (or cluster-wide). */}}
{{- define "quantgate.operatorRules" -}}
# Watch evaluations; kopf patches its progress annotations and finalizer on the object.
- apiGroups: [quantgate.io]
  resources: [modelevaluations]
  verbs: [get, list, watch, patch]
# The verdict: one status patch per generation.
- apiGroups: [quantgate.io]
  resources: [modelevaluations/status]
  verbs: [get, patch]
# One runner Job per generation; superseded Jobs are deleted.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, delete]
# Read the results the runner published (and find cached baselines by label).
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list]
# InferenceService endpoints and readiness.
- apiGroups: [serving.kserve.io]
  resources: [inferenceservices]
  verbs: [get]
# Verdict events (events.k8s.io) and kopf's handler events (core).
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create]
{{- if .Values.operator.readSecrets }}
# API keys of endpoints for the preflight check: get by name only, never list or watch.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
{{- end }}
{{- end -}}

{{/* The runner Job, in its own namespace: publish results ConfigMaps (delete only to replace its own). */}}
{{- define "quantgate.runnerRules" -}}
- apiGroups: [""]
  resources: [configmaps]
  verbs: [create, delete]
{{- end -}}
