{{/* Chart name, possibly overridden. */}}
{{- define "quantgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Object-name prefix: the release name, plus the chart name unless the release name contains it. */}}
{{- define "quantgate.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "quantgate.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "quantgate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "quantgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: quantgate
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector of the operator pods (stable across upgrades). */}}
{{- define "quantgate.operatorSelector" -}}
app.kubernetes.io/name: {{ include "quantgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "quantgate.operatorServiceAccount" -}}
{{- default (printf "%s-operator" (include "quantgate.fullname" .)) .Values.operator.serviceAccount.name -}}
{{- end -}}

{{/* repository[:tag][@digest] */}}
{{- define "quantgate.image" -}}
{{- $ref := printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- if .Values.image.digest -}}{{- $ref = printf "%s@%s" $ref .Values.image.digest -}}{{- end -}}
{{- $ref -}}
{{- end -}}

{{/* Namespaces the operator watches, as a JSON list (empty: all). */}}
{{- define "quantgate.watchNamespaces" -}}
{{- toJson (.Values.watch.namespaces | default list) -}}
{{- end -}}

{{/* Namespaces where runner Jobs may run, as a JSON list. */}}
{{- define "quantgate.runnerNamespaces" -}}
{{- if .Values.runner.namespaces -}}
{{- toJson .Values.runner.namespaces -}}
{{- else if .Values.watch.namespaces -}}
{{- toJson .Values.watch.namespaces -}}
{{- else -}}
{{- toJson (list .Release.Namespace) -}}
{{- end -}}
{{- end -}}

{{/* The restricted Pod Security profile, for a container. */}}
{{- define "quantgate.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}
