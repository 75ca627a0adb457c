{{/*
Helpers of the nodedrop chart. The templates keep to a small subset of Helm's template language
(.Values, .Release.Name, include, toYaml, nindent, quote, default, range, if), which
tests/unit/deploy/helm_render.py renders in the tests.
*/}}

{{/* Labels that select one release's pods; each template adds its component. */}}
{{- define "nodedrop.selectorLabels" -}}
app.kubernetes.io/name: nodedrop
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "nodedrop.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end }}

{{/* The NATS servers: natsUrl, else the client Service of the NATS chart's cluster. */}}
{{- define "nodedrop.natsUrl" -}}
{{- if .Values.natsUrl -}}
{{ .Values.natsUrl }}
{{- else -}}
nats://{{ .Release.Name }}-nats:4222
{{- end -}}
{{- end }}

{{/* The notifiers' WebSocket servers, behind their Service; the api relays /ws/* there. */}}
{{- define "nodedrop.notifierUrl" -}}
http://{{ .Release.Name }}-notifier:{{ .Values.notifier.port }}
{{- end }}

{{/* Environment of every service that talks to NATS. */}}
{{- define "nodedrop.natsEnv" -}}
- name: NODEDROP_NATS_URL
  value: {{ include "nodedrop.natsUrl" . | quote }}
- name: NODEDROP_STREAM_REPLICAS
  value: {{ .Values.streamReplicas | quote }}
- name: NODEDROP_PARTITIONS
  value: {{ .Values.partitions | quote }}
- name: NODEDROP_LOG_FORMAT
  value: "json"
{{- if .Values.secret.natsTokenKey }}
- name: NODEDROP_NATS_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secret.name | quote }}
      key: {{ .Values.secret.natsTokenKey | quote }}
{{- end }}
{{- end }}

{{- define "nodedrop.databaseEnv" -}}
- name: NODEDROP_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secret.name | quote }}
      key: {{ .Values.secret.databaseUrlKey | quote }}
{{- end }}

{{- define "nodedrop.adminEnv" -}}
- name: NODEDROP_ADMIN_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secret.name | quote }}
      key: {{ .Values.secret.adminTokenKey | quote }}
{{- end }}

{{- define "nodedrop.secretKeyEnv" -}}
- name: NODEDROP_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secret.name | quote }}
      key: {{ .Values.secret.secretKeyKey | quote }}
{{- end }}

{{- define "nodedrop.podSecurityContext" -}}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end }}

{{- define "nodedrop.containerSecurityContext" -}}
securityContext:
  allowPrivilegeEscalation: false
  capabilities:
    drop: ["ALL"]
{{- end }}

{{/* The scheduler's and the runner's metrics and probes listener (they serve no other HTTP). */}}
{{- define "nodedrop.opsEnv" -}}
- name: NODEDROP_OPS_HOST
  value: "0.0.0.0"
- name: NODEDROP_OPS_PORT
  value: {{ .Values.opsPort | quote }}
{{- end }}

{{/* Probes on that listener: ready once connected with consumers attached (and, for a
scheduler, a lease round done: a standby holding no partition is ready too); live while the
process answers, so a NATS outage makes pods unready, never restarts them. */}}
{{- define "nodedrop.opsProbes" -}}
readinessProbe:
  httpGet:
    path: /readyz
    port: ops
  periodSeconds: 5
livenessProbe:
  httpGet:
    path: /livez
    port: ops
  periodSeconds: 10
  failureThreshold: 6
{{- end }}
