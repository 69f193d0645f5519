{{/*
Names and labels shared by every template.
*/}}

{{/* The chart's name, or nameOverride. */}}
{{- define "memoturn.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The release's full name: <release>-<chart>, or just <release> when it already contains the
chart's name. Object names derive from it; kept to 63 characters less room for the longest
suffix ("-dev-credentials", 16 characters), so every derived name is a valid DNS label.
*/}}
{{- define "memoturn.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 47 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 47 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 47 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "memoturn.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "memoturn.labels" -}}
helm.sh/chart: {{ include "memoturn.chart" . }}
{{ include "memoturn.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: memoturn
{{- end }}

{{/*
Selector labels (immutable once a Deployment exists). The operator labels what it creates for a
MemoryTenant with instance=<tenant> and managed-by=memoturn-operator; the chart's objects carry
instance=<release> and a component of their own, so the selectors never overlap.
*/}}
{{- define "memoturn.selectorLabels" -}}
app.kubernetes.io/name: {{ include "memoturn.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "memoturn.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "memoturn.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The one Memoturn image (every command). */}}
{{- define "memoturn.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/*
Container securityContext of every pod the chart runs: the Pod Security "restricted" profile.
*/}}
{{- define "memoturn.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end }}

{{/* Pod securityContext: a fixed non-root uid (the image's user 10001) and the runtime's seccomp profile. */}}
{{- define "memoturn.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Dev-only object names. */}}
{{- define "memoturn.devEtcd" -}}{{ include "memoturn.fullname" . }}-dev-etcd{{- end }}
{{- define "memoturn.devMinio" -}}{{ include "memoturn.fullname" . }}-dev-minio{{- end }}
{{- define "memoturn.devCredentials" -}}{{ include "memoturn.fullname" . }}-dev-credentials{{- end }}
