{{- define "skein-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "skein-operator.labels" -}}
app.kubernetes.io/name: skein-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "skein-operator.selector" -}}
app.kubernetes.io/name: skein-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "skein-operator.serviceAccount" -}}
{{- default (include "skein-operator.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "skein-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository .Values.image.tag -}}
{{- end -}}

{{/* The rules the operator needs in a namespace it manages: nothing more. */}}
{{- define "skein-operator.rules" -}}
- apiGroups: ["skein.dev"]
  resources: ["kafkaclusters", "topics", "kafkausers"]
  verbs: ["get", "list", "watch", "patch", "update"]
- apiGroups: ["skein.dev"]
  resources: ["kafkaclusters/status", "topics/status", "kafkausers/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["skein.dev"]
  resources: ["kafkaclusters/finalizers", "topics/finalizers", "kafkausers/finalizers"]
  verbs: ["update"]
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["services", "configmaps", "serviceaccounts"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "delete"]
# A secured cluster's CAs and certificates; KafkaUsers' Secrets (watched).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["get", "list", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
# The web console lists a cluster's recent Events (core/v1, by involvedObject).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["list"]
# The broker init container's rights in its namespace (Services, to find its
# node port or load balancer address).
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles", "rolebindings"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
{{- end -}}
