{{/*
An ADOT-style collector as an OpenTelemetryCollector (operator) resource: OTLP in; traces to X-Ray's OTLP
endpoint signed with SigV4; metrics to Amazon Managed Prometheus (remote write) or CloudWatch (EMF).
Input: dict name, namespace, labels, region, collector (the otelCollector values).
*/}}
{{- define "flotilla-service.otelCollector.resource" -}}
{{- $c := .collector -}}
apiVersion: opentelemetry.io/v1beta1
kind: OpenTelemetryCollector
metadata:
  name: {{ .name }}
  namespace: {{ .namespace }}
  labels:
    {{- toYaml .labels | nindent 4 }}
spec:
  mode: deployment
  replicas: {{ $c.replicas }}
  image: {{ include "flotilla-service.pinnedImage" $c.image }}
  serviceAccount: {{ .name }}
  podSecurityContext:
    runAsNonRoot: true
    runAsUser: 65532
    runAsGroup: 65532
    seccompProfile:
      type: RuntimeDefault
  securityContext:
    allowPrivilegeEscalation: false
    readOnlyRootFilesystem: true
    capabilities:
      drop: [ALL]
  resources:
    requests:
      cpu: 100m
      memory: 256Mi
    limits:
      cpu: "1"
      memory: 512Mi
  config:
    extensions:
      health_check:
        endpoint: 0.0.0.0:13133
      sigv4auth/xray:
        region: {{ .region }}
        service: xray
      {{- if eq $c.metricsExporter "amp" }}
      sigv4auth/aps:
        region: {{ .region }}
        service: aps
      {{- end }}
    receivers:
      otlp:
        protocols:
          grpc:
            endpoint: 0.0.0.0:4317
          http:
            endpoint: 0.0.0.0:4318
    processors:
      memory_limiter:
        check_interval: 1s
        limit_percentage: 80
        spike_limit_percentage: 20
      batch: {}
    exporters:
      otlphttp/xray:
        traces_endpoint: https://xray.{{ .region }}.amazonaws.com/v1/traces
        auth:
          authenticator: sigv4auth/xray
      {{- if eq $c.metricsExporter "amp" }}
      prometheusremotewrite/amp:
        endpoint: {{ required "otelCollector.ampRemoteWriteUrl is required with metricsExporter amp" $c.ampRemoteWriteUrl }}
        auth:
          authenticator: sigv4auth/aps
      {{- else if eq $c.metricsExporter "cloudwatch" }}
      awsemf:
        region: {{ .region }}
        namespace: Flotilla
        log_group_name: /flotilla/metrics
      {{- end }}
    service:
      extensions:
        - health_check
        - sigv4auth/xray
        {{- if eq $c.metricsExporter "amp" }}
        - sigv4auth/aps
        {{- end }}
      pipelines:
        traces:
          receivers: [otlp]
          processors: [memory_limiter, batch]
          exporters: [otlphttp/xray]
        {{- if ne $c.metricsExporter "none" }}
        metrics:
          receivers: [otlp]
          processors: [memory_limiter, batch]
          exporters: [{{ ternary "prometheusremotewrite/amp" "awsemf" (eq $c.metricsExporter "amp") }}]
        {{- end }}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ .name }}
  namespace: {{ .namespace }}
  labels:
    {{- toYaml .labels | nindent 4 }}
  {{- with $c.roleArn }}
  annotations:
    eks.amazonaws.com/role-arn: {{ . }}
  {{- end }}
automountServiceAccountToken: false
{{- end -}}
