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

{{/*
The operator's rules on the namespaced kinds it reconciles: in a ClusterRole (every namespace)
or in a Role per namespace (operator.watchNamespaces).
*/}}
{{- define "memoturn.operatorRules" -}}
# Its own resources: kopf watches them and patches its finalizer and progress annotations onto
# them. The operator neither creates nor deletes them (users and their tools do).
- apiGroups: ["memoturn.io"]
  resources: ["memorytenants", "memorybranches"]
  verbs: ["get", "list", "watch", "patch", "update"]
# Phase, conditions, endpoints and usage are reported through the status subresource.
- apiGroups: ["memoturn.io"]
  resources: ["memorytenants/status", "memorybranches/status"]
  verbs: ["get", "patch", "update"]
# Owned objects carry ownerReferences with blockOwnerDeletion: true, which the
# OwnerReferencesPermissionEnforcement admission plugin allows only with update on the owner's
# finalizers subresource.
- apiGroups: ["memoturn.io"]
  resources: ["memorytenants/finalizers", "memorybranches/finalizers"]
  verbs: ["update"]
# A tenant's node and gateway Deployments: applied on every reconcile, scaled with the hot set;
# watched so a deleted or hand-edited one is repaired at once.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch"]
# A tenant's Services, ConfigMap and ServiceAccount (which mounts no token and has no role).
# Services are also read for their selectors: the operator reaches a tenant's gateway and
# nodes at the ready pods a Service selects.
- apiGroups: [""]
  resources: ["services", "configmaps", "serviceaccounts"]
  verbs: ["get", "list", "watch", "create", "patch"]
# The generated admin-token Secret: created once, never deleted (garbage collection removes
# it with its tenant); read back for the token the operator calls the data plane with, and a
# tls Secret's ca.crt, to verify the nodes it probes.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "patch"]
# Node pods: watched for failover (a node pod gone or failed has its etcd lease revoked) and
# annotated. Never created or deleted directly: Deployments own them.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "patch"]
# kopf posts Kubernetes events about handler progress and errors (both APIs, whichever the
# client library uses).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
# A tenant's PodDisruptionBudgets (at most one node, one gateway down during voluntary disruptions).
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch"]
# A tenant's NetworkPolicies (gateway open to clients; nodes to the gateway, peers, the operator).
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "list", "watch", "create", "patch"]
{{- end }}

{{/* Cluster-scoped reads kopf makes in either mode. */}}
{{- define "memoturn.operatorClusterReads" -}}
# kopf scans the CRDs at start-up and watches them, so it begins serving MemoryTenants and
# MemoryBranches once their CRDs appear (and stops if they are removed).
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["get", "list", "watch"]
{{- end }}
