{{/* Names and labels. */}}
{{- define "mciv.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "mciv.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component: include with (list $ "analyzer"). */}}
{{- define "mciv.selector" -}}
{{- $ := index . 0 -}}
app.kubernetes.io/name: {{ $.Chart.Name }}
app.kubernetes.io/instance: {{ $.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "mciv.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "mciv.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{ default (include "mciv.fullname" .) .Values.serviceAccount.name }}
{{- else -}}
{{ default "default" .Values.serviceAccount.name }}
{{- end -}}
{{- end -}}

{{/* The configuration every part shares. */}}
{{- define "mciv.baseConfig" -}}
{{- $ := index . 0 -}}
cluster: {{ $.Values.cluster | quote }}
nats:
  url: {{ $.Values.nats.url | quote }}
  creds: /etc/mciv/nats/{{ (index $.Values.nats.credentials (index . 1)).key }}
  {{- with $.Values.nats.replicas }}
  replicas: {{ int . }}
  {{- end }}
  {{- with $.Values.nats.partitions }}
  partitions: {{ int . }}
  {{- end }}
  {{- with $.Values.nats.inputMaxAge }}
  input_max_age: {{ . | quote }}
  {{- end }}
  {{- with $.Values.nats.inputMaxBytes }}
  input_max_bytes: {{ int64 . }}
  {{- end }}
metrics:
  listen: {{ printf "0.0.0.0:%v" $.Values.metrics.port | quote }}
{{- end -}}

{{/* Probes on the metrics listener: /readyz (NATS connected, streams and
consumers set up, rules loaded) and /healthz (the process answers). */}}
{{- define "mciv.probes" -}}
readinessProbe:
  httpGet: {path: /readyz, port: metrics}
  {{- toYaml .Values.probes.readiness | nindent 2 }}
livenessProbe:
  httpGet: {path: /healthz, port: metrics}
  {{- toYaml .Values.probes.liveness | nindent 2 }}
{{- end -}}

{{/* The NATS credentials volume of a role: (list $ "analyzer"). */}}
{{- define "mciv.natsVolume" -}}
{{- $ := index . 0 -}}
{{- $c := index $.Values.nats.credentials (index . 1) -}}
- name: nats-creds
  secret:
    secretName: {{ required (printf "nats.credentials.%s.secretName is required" (index . 1)) $c.secretName }}
    defaultMode: 0400
    items:
      - {key: {{ $c.key }}, path: {{ $c.key }}}
{{- end -}}

{{/* Soft anti-affinity: replicas of a component on different nodes. */}}
{{- define "mciv.antiAffinity" -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "mciv.selector" . | nindent 12 }}
{{- end -}}

{{/* The security context of every part but the collector. */}}
{{- define "mciv.restrictedSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}


{{/* Whether the analyzers run in fleet mode: analyzer.partitioned true,
or auto with more than one replica. */}}
{{- define "mciv.partitioned" -}}
{{- $p := .Values.analyzer.partitioned -}}
{{- if eq (toString $p) "auto" -}}
{{- if gt (int .Values.analyzer.replicas) 1 }}true{{ else }}false{{ end -}}
{{- else if or (eq (toString $p) "true") (eq (toString $p) "false") -}}
{{- toString $p -}}
{{- else -}}
{{- fail (printf "analyzer.partitioned must be auto, true or false, not %v" $p) -}}
{{- end -}}
{{- end -}}
