{{/*
RBAC rules: exactly the calls the code makes (operator/quantgate/k8s/cluster.py and handlers.py for
the operator, operator/quantgate/k8s/results_channel.py for the runner; manifests/rbac/ is the
operator's own account of them). tests/integration/test_rbac.py proves they are enough (impersonating
the chart's ServiceAccounts) and that nothing more is allowed.
*/}}

{{/* The operator, in each watched namespace (or cluster-wide). */}}
{{- define "quantgate.operatorRules" -}}
# Watch evaluations; the operator writes their status (it adds no finalizer). It creates and deletes
# only the child ModelEvaluations of a ModelEvaluationMatrix (admission policy <fullname>-matrix-children).
- apiGroups: [quantgate.io]
  resources: [modelevaluations]
  verbs: [get, list, watch, create, delete]
# The verdict: one status patch per generation.
- apiGroups: [quantgate.io]
  resources: [modelevaluations/status]
  verbs: [get, patch]
# Watch decision matrices; the operator writes only their status (rows and selection).
- apiGroups: [quantgate.io]
  resources: [modelevaluationmatrices]
  verbs: [get, list, watch]
- apiGroups: [quantgate.io]
  resources: [modelevaluationmatrices/status]
  verbs: [get, patch]
# One runner Job per generation, watched for its outcome; superseded Jobs are deleted.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, delete]
# Read the results the runner published (and find cached baselines by label); create baseline cache
# entries from verified results. Never update or delete (the admission policy also forbids others to).
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, create]
# The runner pod that created a results ConfigMap: its UID and owning Job are checked before a verdict.
- apiGroups: [""]
  resources: [pods]
  verbs: [get]
# InferenceService endpoints and readiness (watched: the operator's informer cache).
- apiGroups: [serving.kserve.io]
  resources: [inferenceservices]
  verbs: [get, list, watch]
# A code evaluation's runner Job first gets a NetworkPolicy of its own (egress pinned to its model endpoints);
# a superseded Job's is deleted; one already holding the name is read to check it is the operator's.
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, create, delete]
# ... pinned through the endpoint's Service (selector, ports) and, for a Service without a selector, its
# EndpointSlices (by the kubernetes.io/service-name label).
- apiGroups: [""]
  resources: [services]
  verbs: [get]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list]
# Verdict / Blocked / Failed events (kopf's own event posting is off).
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create]
{{- if .Values.runner.kueueQueue }}
# Why Kueue holds a runner Job back (its Workload's conditions), shown in the evaluation's status.
- apiGroups: [kueue.x-k8s.io]
  resources: [workloads]
  verbs: [get, list]
{{- end }}
{{- if .Values.operator.readSecrets }}
# API keys of endpoints for the preflight check: get by name only, never list or watch.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
{{- end }}
{{- end -}}

{{/* kopf's discovery, cluster-scoped and read-only: it notices the CRD appearing or changing, and,
when watching a list of namespaces, which of them exist. Without it kopf retries, logs errors and
falls back to a fixed view at start-up. */}}
{{- define "quantgate.discoveryRules" -}}
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
{{- if .Values.watch.namespaces }}
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list, watch]
{{- end }}
{{- end -}}

{{/* The runner Job, in its own namespace: create its results ConfigMaps, nothing else. */}}
{{- define "quantgate.runnerRules" -}}
- apiGroups: [""]
  resources: [configmaps]
  verbs: [create]
{{- end -}}
