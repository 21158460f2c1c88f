{{/*
One upstream policy (the `upstreams` shape) rendered for each mesh provider. Each named template takes a dict
with "policy" (one upstreams entry) and what else it names, so the umbrella chart can reuse them.
*/}}

{{/* Status codes in retryOn ("502") versus Envoy/Istio retry conditions (connect-failure). */}}
{{- define "flotilla-service.retryCodes" -}}
{{- $codes := list -}}
{{- range . -}}{{- if regexMatch "^[0-9]{3}$" (toString .) -}}{{- $codes = append $codes (toString . | atoi) -}}{{- end -}}{{- end -}}
{{- toJson $codes -}}
{{- end -}}

{{- define "flotilla-service.retryConditions" -}}
{{- $conds := list -}}
{{- range . -}}{{- if not (regexMatch "^[0-9]{3}$" (toString .)) -}}{{- $conds = append $conds (toString .) -}}{{- end -}}{{- end -}}
{{- toJson $conds -}}
{{- end -}}

{{/* Envoy route action (timeout + retry policy) for one upstream. Input: the policy. */}}
{{- define "flotilla-service.envoy.routeAction" -}}
{{- $p := . -}}
{{- with $p.timeoutSeconds }}
timeout: {{ include "flotilla-service.envoyDuration" . }}
{{- end }}
{{- with $p.retries }}
{{- $codes := include "flotilla-service.retryCodes" .retryOn | fromJsonArray }}
{{- $conds := include "flotilla-service.retryConditions" .retryOn | fromJsonArray }}
{{- if $codes }}{{- $conds = append $conds "retriable-status-codes" }}{{- end }}
retry_policy:
  retry_on: {{ join "," $conds | quote }}
  num_retries: {{ .attempts }}
  {{- with .perTryTimeoutSeconds }}
  per_try_timeout: {{ include "flotilla-service.envoyDuration" . }}
  {{- end }}
  {{- with $codes }}
  retriable_status_codes: {{ toJson . }}
  {{- end }}
  retry_back_off:
    base_interval: 0.025s
    max_interval: 0.25s
{{- end }}
{{- end -}}

{{/* Envoy cluster policy: circuit breakers (connections, pending, bulkhead) and outlier detection. */}}
{{- define "flotilla-service.envoy.clusterPolicy" -}}
{{- $p := . -}}
{{- if or $p.circuitBreaker $p.bulkhead }}
circuit_breakers:
  thresholds:
    - priority: DEFAULT
      {{- with $p.circuitBreaker }}
      {{- with .maxConnections }}
      max_connections: {{ . }}
      {{- end }}
      {{- with .maxPendingRequests }}
      max_pending_requests: {{ . }}
      {{- end }}
      {{- end }}
      {{- with $p.bulkhead }}
      max_requests: {{ .maxConcurrent }}
      {{- end }}
      {{- with $p.retries }}
      max_retries: {{ max 3 .attempts }}
      {{- end }}
{{- end }}
{{- with $p.outlierDetection }}
outlier_detection:
  consecutive_5xx: {{ .consecutive5xxErrors }}
  interval: {{ include "flotilla-service.envoyDuration" .intervalSeconds }}
  base_ejection_time: {{ include "flotilla-service.envoyDuration" .baseEjectionSeconds }}
  max_ejection_percent: {{ .maxEjectionPercent }}
{{- end }}
{{- end -}}

{{/* Istio HTTP route for calls from one caller. Input: dict policy, host, port, callerLabels. */}}
{{- define "flotilla-service.istio.httpRoute" -}}
{{- $p := .policy -}}
- name: {{ .caller }}
  match:
    - sourceLabels:
        {{- toYaml .callerLabels | nindent 8 }}
  route:
    - destination:
        host: {{ .host }}
        port:
          number: {{ .port }}
  {{- with $p.timeoutSeconds }}
  timeout: {{ include "flotilla-service.duration" . }}
  {{- end }}
  {{- with $p.retries }}
  retries:
    attempts: {{ .attempts }}
    {{- with .perTryTimeoutSeconds }}
    perTryTimeout: {{ include "flotilla-service.duration" . }}
    {{- end }}
    {{- with .retryOn }}
    retryOn: {{ join "," . | quote }}
    {{- end }}
  {{- end }}
{{- end -}}

{{/*
Istio VirtualService for one host, one route per caller (matched on the caller's labels) and a plain default
route. Istio allows one VirtualService per host, so a chart that is one of several callers leaves this to the
parent (global.flotilla.istioRoutesFromParent). Input: dict name, namespace, host, port, labels, callers
(list of dict caller, callerLabels, policy).
*/}}
{{- define "flotilla-service.istio.virtualService" -}}
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: {{ .name }}
  namespace: {{ .namespace }}
  labels:
    {{- toYaml .labels | nindent 4 }}
spec:
  hosts:
    - {{ .host }}
  exportTo:
    - "."
  http:
    {{- range .callers }}
    {{- include "flotilla-service.istio.httpRoute" (dict "caller" .caller "callerLabels" .callerLabels "policy" .policy "host" $.host "port" $.port) | nindent 4 }}
    {{- end }}
    - name: default
      route:
        - destination:
            host: {{ .host }}
            port:
              number: {{ .port }}
{{- end -}}

{{/* Istio DestinationRule traffic policy: connection pool (circuit breaker, bulkhead) and outlier detection. */}}
{{- define "flotilla-service.istio.trafficPolicy" -}}
{{- $p := . -}}
{{- if or $p.circuitBreaker $p.bulkhead }}
connectionPool:
  {{- with $p.circuitBreaker }}
  {{- with .maxConnections }}
  tcp:
    maxConnections: {{ . }}
  {{- end }}
  {{- end }}
  http:
    {{- with $p.circuitBreaker }}
    {{- with .maxPendingRequests }}
    http1MaxPendingRequests: {{ . }}
    {{- end }}
    {{- end }}
    {{- with $p.bulkhead }}
    http2MaxRequests: {{ .maxConcurrent }}
    {{- end }}
{{- end }}
{{- with $p.outlierDetection }}
outlierDetection:
  consecutive5xxErrors: {{ .consecutive5xxErrors }}
  interval: {{ include "flotilla-service.duration" .intervalSeconds }}
  baseEjectionTime: {{ include "flotilla-service.duration" .baseEjectionSeconds }}
  maxEjectionPercent: {{ .maxEjectionPercent }}
{{- end }}
{{- end -}}

{{/*
The chassis' UpstreamPolicy defaults (flotilla/http/policy.py, docs/upstream-policy.schema.json): every key a
declared policy leaves out. test_deploy_service.py checks this against the pydantic model.
*/}}
{{- define "flotilla-service.upstreamDefaults" -}}
timeoutSeconds: 5
retries:
  attempts: 2
  retryOn: [connect-failure, "429", "502", "503", "504"]
  backoffBaseSeconds: 0.05
  backoffMaxSeconds: 2
  maxRetryAfterSeconds: 10
  budget: {ratio: 0.2, minRetries: 3, windowSeconds: 10}
circuitBreaker:
  consecutiveFailures: 5
  failureRateThreshold: 0.5
  windowSeconds: 30
  minimumCalls: 10
  openSeconds: 30
  halfOpenMaxCalls: 2
  maxConnections: 100
  maxPendingRequests: 100
outlierDetection: {consecutive5xxErrors: 5, intervalSeconds: 10, baseEjectionSeconds: 30, maxEjectionPercent: 50}
bulkhead: {maxConcurrent: 20}
{{- end -}}

{{/*
One upstream's policy, complete, as JSON: the declared keys over the chassis defaults, key by key (sprig's merge
would treat a declared 0 or false as unset). Input: the declared policy, possibly partial or empty.
*/}}
{{- define "flotilla-service.upstreamPolicy" -}}
{{- $out := include "flotilla-service.upstreamDefaults" . | fromYaml -}}
{{- range $key, $value := default (dict) . -}}
{{- $section := get $out $key -}}
{{- if and (kindIs "map" $value) (kindIs "map" $section) -}}
{{- range $k, $v := $value -}}
{{- $inner := get $section $k -}}
{{- if and (kindIs "map" $v) (kindIs "map" $inner) -}}
{{- range $k2, $v2 := $v -}}{{- $_ := set $inner $k2 $v2 -}}{{- end -}}
{{- else -}}
{{- $_ := set $section $k $v -}}
{{- end -}}
{{- end -}}
{{- else -}}
{{- $_ := set $out $key $value -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* Every declared upstream with its complete policy, as JSON {name: policy}: FLOTILLA_UPSTREAMS and the mesh. */}}
{{- define "flotilla-service.upstreams" -}}
{{- $out := dict -}}
{{- range $name, $policy := .Values.upstreams -}}
{{- $_ := set $out $name (include "flotilla-service.upstreamPolicy" $policy | fromJson) -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}
