{{/* Chart name, truncated to 63 characters (a DNS label). */}}
{{- define "consumer.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart, or the release name alone when it already holds the chart name. */}}
{{- define "consumer.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "consumer.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "consumer.selectorLabels" -}}
app.kubernetes.io/name: {{ include "consumer.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "consumer.labels" -}}
helm.sh/chart: {{ include "consumer.chart" . }}
{{ include "consumer.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: detection
app.kubernetes.io/part-of: elastic-rules-consumer
{{- end }}

{{- define "consumer.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "consumer.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "consumer.image" -}}
{{- $repo := .Values.image.repository }}
{{- if .Values.image.registry }}{{ $repo = printf "%s/%s" .Values.image.registry $repo }}{{ end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repo .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repo (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* Mount points inside the pod. */}}
{{- define "consumer.rulesDir" -}}/etc/consumer/rules{{- end }}
{{- define "consumer.rulesExtraDir" -}}/etc/consumer/rules-extra{{- end }}
{{- define "consumer.saslDir" -}}/etc/consumer/kafka-sasl{{- end }}
{{- define "consumer.tlsDir" -}}/etc/consumer/kafka-tls{{- end }}

{{/* CONSUMER_RULES: the rule paths the member loads, comma-separated; empty: the built-in ones. */}}
{{- define "consumer.rulePaths" -}}
{{- $paths := list }}
{{- $extra := or .Values.rules.files .Values.rules.existingConfigMap }}
{{- if and .Values.rules.builtin $extra }}{{ $paths = append $paths .Values.rules.builtinPath }}{{ end }}
{{- if .Values.rules.files }}{{ $paths = append $paths (include "consumer.rulesDir" .) }}{{ end }}
{{- if .Values.rules.existingConfigMap }}{{ $paths = append $paths (include "consumer.rulesExtraDir" .) }}{{ end }}
{{- if and (not .Values.rules.builtin) (not $extra) }}
{{- fail "rules: no rules to run; keep rules.builtin true or add rules.files or rules.existingConfigMap" }}
{{- end }}
{{- join "," $paths }}
{{- end }}

{{/* librdkafka security.protocol from kafka.sasl.enabled and kafka.tls.enabled. */}}
{{- define "consumer.securityProtocol" -}}
{{- $k := .Values.kafka }}
{{- if and $k.sasl.enabled $k.tls.enabled }}SASL_SSL
{{- else if $k.sasl.enabled }}SASL_PLAINTEXT
{{- else if $k.tls.enabled }}SSL
{{- end }}
{{- end }}

{{/*
The librdkafka property NAME as the consumer's KAFKA_CONFIG_<NAME> variable: upper case,
"_" doubled, "." as "_" (consumer/settings.py).
*/}}
{{- define "consumer.kafkaConfigEnv" -}}
KAFKA_CONFIG_{{ . | replace "_" "__" | replace "." "_" | upper }}
{{- end }}

{{/*
A value as environment text. YAML numbers reach templates as float64, and toString would
write 2097152 as 2.097152e+06: whole numbers are written as integers.
*/}}
{{- define "consumer.envValue" -}}
{{- if and (kindIs "float64" .) (eq . (float64 (int64 .))) }}{{ int64 . }}{{ else }}{{ toString . }}{{ end }}
{{- end }}
