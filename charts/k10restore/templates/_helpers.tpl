{{/*
The name of the Job, its ServiceAccount and its namespaced RBAC objects: k10-restore, as the
product's documentation and the DR runbook name it.
*/}}
{{- define "k10restore.fullname" -}}
k10-restore
{{- end }}

{{/*
Cluster-scoped RBAC objects carry the release namespace, so that restores into two installations
on one cluster do not fight over one ClusterRole (names of cluster-scoped objects are global).
*/}}
{{- define "k10restore.clusterName" -}}
{{- printf "%s-%s" (include "k10restore.fullname" .) .Release.Namespace | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "k10restore.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "k10restore.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "k10restore.labels" -}}
helm.sh/chart: {{ include "k10restore.chart" . }}
{{ include "k10restore.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: dr-restore
app.kubernetes.io/part-of: k10
{{- end }}

{{/* The required values, failing the render with a message that says what to set. */}}
{{- define "k10restore.sourceClusterID" -}}
{{- required "sourceClusterID is required: the cluster ID of the source cluster (the UID of its default namespace, as `kubectl k10 dr status` prints it); set it with --set sourceClusterID=<id>" .Values.sourceClusterID }}
{{- end }}

{{- define "k10restore.profileName" -}}
{{- required "profile.name is required: the location profile in this namespace that points at the bucket holding the source cluster's DR backups; set it with --set profile.name=<profile>" (.Values.profile | default dict).name }}
{{- end }}

{{- define "k10restore.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
