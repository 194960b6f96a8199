{{/*
A Deployment of one part of mciv, its PodDisruptionBudget and its metrics
Service. Called with a dict: root ($), role, component (values section),
command, configMap, configKey, env, ports (extra container ports),
checksum, extraVolumes, extraMounts.
*/}}
{{- define "mciv.workload" -}}
{{- $ := .root -}}
{{- $v := .component -}}
{{- $name := printf "%s-%s" (include "mciv.fullname" $) .role -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  labels:
    {{- include "mciv.labels" $ | nindent 4 }}
    app.kubernetes.io/component: {{ .role }}
spec:
  replicas: {{ $v.replicas }}
  selector:
    matchLabels:
      {{- include "mciv.selector" (list $ .role) | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "mciv.selector" (list $ .role) | nindent 8 }}
      annotations:
        checksum/config: {{ .checksum }}
        {{- with $v.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "mciv.serviceAccountName" $ }}
      automountServiceAccountToken: false
      securityContext:
        runAsNonRoot: true
        fsGroup: 65532
      {{- with $.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      affinity:
        {{- include "mciv.antiAffinity" (list $ .role) | nindent 8 }}
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: {{ .role }}
          image: {{ include "mciv.image" $ }}
          imagePullPolicy: {{ $.Values.image.pullPolicy }}
          args: [{{ .command }}, --config, /etc/mciv/{{ .configKey }}, --log-level, {{ $.Values.logLevel }}]
          {{- with .env }}
          env:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          ports:
            - {name: metrics, containerPort: {{ $.Values.metrics.port }}, protocol: TCP}
            {{- with .ports }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- include "mciv.probes" $ | nindent 10 }}
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          securityContext:
            {{- include "mciv.restrictedSecurity" $ | nindent 12 }}
          volumeMounts:
            - {name: config, mountPath: /etc/mciv/{{ .configKey }}, subPath: {{ .configKey }}, readOnly: true}
            - {name: nats-creds, mountPath: /etc/mciv/nats, readOnly: true}
            - {name: tmp, mountPath: /tmp}
            {{- with .extraMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
      volumes:
        - name: config
          configMap:
            name: {{ .configMap }}
        {{- include "mciv.natsVolume" (list $ .natsRole) | nindent 8 }}
        - name: tmp
          emptyDir: {sizeLimit: 256Mi}
        {{- with .extraVolumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $name }}
  labels:
    {{- include "mciv.labels" $ | nindent 4 }}
    app.kubernetes.io/component: {{ .role }}
spec:
  minAvailable: {{ $v.pdb.minAvailable }}
  selector:
    matchLabels:
      {{- include "mciv.selector" (list $ .role) | nindent 6 }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}-metrics
  labels:
    {{- include "mciv.labels" $ | nindent 4 }}
    app.kubernetes.io/component: {{ .role }}
    mciv.io/metrics: "true"
spec:
  clusterIP: None
  selector:
    {{- include "mciv.selector" (list $ .role) | nindent 4 }}
  ports:
    - {name: metrics, port: {{ $.Values.metrics.port }}, targetPort: metrics, protocol: TCP}
{{- end -}}
