{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "uffdemu.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Fully qualified app name (63 characters at most); the release name alone when it contains the chart name. */}}
{{- define "uffdemu.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Chart name and version for the helm.sh/chart label. */}}
{{- define "uffdemu.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels (immutable once deployed). */}}
{{- define "uffdemu.selectorLabels" -}}
app.kubernetes.io/name: {{ include "uffdemu.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Common labels. */}}
{{- define "uffdemu.labels" -}}
helm.sh/chart: {{ include "uffdemu.chart" . }}
{{ include "uffdemu.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: server
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* ServiceAccount name. */}}
{{- define "uffdemu.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "uffdemu.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Image reference: repository:tag or repository@digest. */}}
{{- define "uffdemu.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Backend name passed to the server (uffdemu.backend). */}}
{{- define "uffdemu.backend" -}}
{{- if .Values.backend.native.enabled -}}linux{{- else -}}emulated{{- end -}}
{{- end -}}

{{/* Pod securityContext: the values minus `enabled`; the native backend runs the pod as root. */}}
{{- define "uffdemu.podSecurityContext" -}}
{{- $ctx := omit .Values.podSecurityContext "enabled" -}}
{{- if .Values.backend.native.enabled -}}
{{- $_ := set $ctx "runAsUser" 0 -}}
{{- $_ = set $ctx "runAsGroup" 0 -}}
{{- $_ = set $ctx "runAsNonRoot" false -}}
{{- end -}}
{{- toYaml $ctx -}}
{{- end -}}

{{/*
Container securityContext: the values minus `enabled`. The native backend (explicit opt-in) runs as root with
the configured capabilities added and the native seccomp profile; all other capabilities stay dropped, the
root filesystem stays read-only and privilege escalation stays off.
*/}}
{{- define "uffdemu.containerSecurityContext" -}}
{{- $ctx := omit .Values.containerSecurityContext "enabled" -}}
{{- if .Values.backend.native.enabled -}}
{{- $caps := dict "drop" (default (list "ALL") .Values.containerSecurityContext.capabilities.drop) "add" .Values.backend.native.capabilities -}}
{{- /* `set`, not merge: Sprig's merge skips zero values such as uid 0 and false */ -}}
{{- $_ := set $ctx "runAsUser" 0 -}}
{{- $_ = set $ctx "runAsGroup" 0 -}}
{{- $_ = set $ctx "runAsNonRoot" false -}}
{{- $_ = set $ctx "capabilities" $caps -}}
{{- $_ = set $ctx "seccompProfile" .Values.backend.native.seccompProfile -}}
{{- end -}}
{{- toYaml $ctx -}}
{{- end -}}

{{/* A probe: the custom override, or gRPC health / the actuator health group, with the timing values. */}}
{{- define "uffdemu.probe" -}}
{{- $root := index . 0 -}}
{{- $probe := index . 1 -}}
{{- $custom := index . 2 -}}
{{- $group := index . 3 -}}
{{- if $custom -}}
{{- toYaml $custom -}}
{{- else -}}
{{- if eq $root.Values.probeMode "http" -}}
httpGet:
  path: /actuator/health/{{ $group }}
  port: http
{{- else -}}
grpc:
  port: {{ $root.Values.containerPorts.grpc }}
{{- end }}
{{ toYaml (omit $probe "enabled") }}
{{- end -}}
{{- end -}}
