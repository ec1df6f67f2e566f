{{/*
The name of the ServiceAccount, ClusterRole and ClusterRoleBinding: k10, as `kubectl k10 install`
names them (src/cli/install.rs), so the chart and the plugin describe one installation.
*/}}
{{- define "k10.name" -}}
k10
{{- end }}

{{- define "k10.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "k10.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "k10.labels" -}}
helm.sh/chart: {{ include "k10.chart" . }}
{{ include "k10.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: k10
{{- end }}

{{- define "k10.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
