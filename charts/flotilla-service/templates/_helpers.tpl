{{/*
Names, labels and the values that fall back to global.flotilla. Every template goes through these.
*/}}

{{/* The service name: app.kubernetes.io/name and the default object name. */}}
{{- define "flotilla-service.name" -}}
{{- default .Values.serviceName .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Object name. Deliberately not prefixed with the release: callers reach a service as http://<service>. */}}
{{- define "flotilla-service.fullname" -}}
{{- default .Values.serviceName .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "flotilla-service.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels: stable for the life of the Deployment. */}}
{{- define "flotilla-service.selectorLabels" -}}
app.kubernetes.io/name: {{ include "flotilla-service.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Standard labels on every object. */}}
{{- define "flotilla-service.labels" -}}
{{ include "flotilla-service.selectorLabels" . }}
helm.sh/chart: {{ include "flotilla-service.chart" . }}
app.kubernetes.io/version: {{ include "flotilla-service.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: flotilla
app.kubernetes.io/component: {{ .Values.role }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* metadata.annotations body for commonAnnotations, or nothing. */}}
{{- define "flotilla-service.annotations" -}}
{{- with .Values.commonAnnotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The headless Service of the pods (service.yaml); callers' Envoy sidecars resolve `<name>-pods`. */}}
{{- define "flotilla-service.podsServiceName" -}}
{{- printf "%s-pods" (include "flotilla-service.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "flotilla-service.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "flotilla-service.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Values that fall back to global.flotilla, then to a built-in default. */}}
{{- define "flotilla-service.global" -}}
{{- $g := dict -}}
{{- if .Values.global -}}{{- $g = default (dict) .Values.global.flotilla -}}{{- end -}}
{{- toYaml $g -}}
{{- end -}}

{{- define "flotilla-service.environment" -}}
{{- $g := include "flotilla-service.global" . | fromYaml -}}
{{- .Values.environment | default $g.environment | default "dev" -}}
{{- end -}}

{{- define "flotilla-service.awsRegion" -}}
{{- $g := include "flotilla-service.global" . | fromYaml -}}
{{- .Values.aws.region | default $g.awsRegion | default "us-east-1" -}}
{{- end -}}

{{- define "flotilla-service.meshProvider" -}}
{{- $g := include "flotilla-service.global" . | fromYaml -}}
{{- $p := .Values.mesh.provider | default $g.meshProvider | default "none" -}}
{{- if not (has $p (list "none" "envoy" "istio" "lattice")) -}}
{{- fail (printf "mesh.provider %q is not one of none, envoy, istio, lattice (App Mesh reached end of support on 2026-09-30; use envoy, istio or lattice)" $p) -}}
{{- end -}}
{{- $p -}}
{{- end -}}

{{/* "true" when the mesh retries, so the chassis client must not (no retry amplification). */}}
{{/*
The Lattice service network's domain: every service's route hostname is <service>.<domain>, and callers call that
name, which resolves (through the record the AWS Gateway API controller has external-dns create) to the Lattice
service, so each call crosses Lattice with its auth policy and health checks. Without it callers would resolve the
ClusterIP and Lattice would never see a request.
*/}}
{{- define "flotilla-service.latticeDomain" -}}
{{- required "mesh.lattice.domain is required with mesh provider lattice: callers reach <service>.<domain> through VPC Lattice (without it they would call the ClusterIP and bypass Lattice)" .Values.mesh.lattice.domain -}}
{{- end -}}

{{- define "flotilla-service.meshRetries" -}}
{{- if has (include "flotilla-service.meshProvider" .) (list "envoy" "istio") -}}true{{- end -}}
{{- end -}}

{{- define "flotilla-service.istioRoutesFromParent" -}}
{{- $g := include "flotilla-service.global" . | fromYaml -}}
{{- if $g.istioRoutesFromParent -}}true{{- end -}}
{{- end -}}

{{- define "flotilla-service.otlpEndpoint" -}}
{{- $g := include "flotilla-service.global" . | fromYaml -}}
{{- if .Values.tracing.otlpEndpoint -}}
{{- .Values.tracing.otlpEndpoint -}}
{{- else if $g.otlpEndpoint -}}
{{- $g.otlpEndpoint -}}
{{- else if .Values.otelCollector.enabled -}}
{{- printf "http://%s-otel-collector:4318" (include "flotilla-service.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* Image reference: registry/repository:tag, or @digest when a digest is given. */}}
{{- define "flotilla-service.imageTag" -}}
{{- $g := include "flotilla-service.global" . | fromYaml -}}
{{- .Values.image.tag | default $g.imageTag | default .Chart.AppVersion -}}
{{- end -}}

{{/*
registry/repository, or the repository alone when it already names a registry host: its first path part has a
"." or ":" or is "localhost" (Docker's rule). skaffold sets image.repository to the name it pushed, already under
its --default-repo, so a registry from the values is never put in front of it twice. Input: dict registry,
repository.
*/}}
{{- define "flotilla-service.imageRepository" -}}
{{- $first := splitList "/" .repository | first -}}
{{- $qualified := and (contains "/" .repository) (or (contains "." $first) (contains ":" $first) (eq $first "localhost")) -}}
{{- if and .registry (not $qualified) -}}
{{- printf "%s/%s" (trimSuffix "/" .registry) .repository -}}
{{- else -}}
{{- .repository -}}
{{- end -}}
{{- end -}}

{{- define "flotilla-service.image" -}}
{{- $g := include "flotilla-service.global" . | fromYaml -}}
{{- $registry := .Values.image.registry | default $g.imageRegistry -}}
{{- $repository := .Values.image.repository | default (printf "flotilla/%s" .Values.serviceName) -}}
{{- $ref := include "flotilla-service.imageRepository" (dict "registry" $registry "repository" $repository) -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $ref .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $ref (include "flotilla-service.imageTag" .) -}}
{{- end -}}
{{- end -}}

{{/*
A third-party image (Envoy, the collector, the dev dependencies) as `repository:tag@digest`: the tag says what it
is, the digest pins what runs (a pushed-over tag changes nothing). Without a digest, `repository:tag`. Input: dict
repository, tag, digest (the values' PinnedImage).
*/}}
{{- define "flotilla-service.pinnedImage" -}}
{{- printf "%s:%s" .repository (toString .tag) -}}
{{- with .digest }}@{{ . }}{{- end -}}
{{- end -}}

{{/*
FLOTILLA_FORWARDED_ALLOW_IPS: server.forwardedAllowIps, else the VPC CIDR (network.vpcCidr, then global) and
loopback, plus 127.0.0.6 under Istio (its sidecar's inbound connections to the app come from there). Never `*`:
the schema refuses it, since any peer could then forge X-Forwarded-For and X-Forwarded-Proto.
*/}}
{{- define "flotilla-service.forwardedAllowIps" -}}
{{- $g := include "flotilla-service.global" . | fromYaml -}}
{{- if .Values.server.forwardedAllowIps -}}
{{- .Values.server.forwardedAllowIps -}}
{{- else -}}
{{- $trusted := list -}}
{{- with .Values.network.vpcCidr | default $g.vpcCidr }}{{- $trusted = append $trusted . -}}{{- end -}}
{{- $trusted = append $trusted "127.0.0.1" -}}
{{- if eq (include "flotilla-service.meshProvider" .) "istio" }}{{- $trusted = append $trusted "127.0.0.6" -}}{{- end -}}
{{- join "," $trusted -}}
{{- end -}}
{{- end -}}

{{/*
terminationGracePeriodSeconds: the kubelet's budget covers the preStop sleep, then the drain (readyz 503),
then gunicorn's graceful timeout; a margin on top so SIGKILL never lands mid-request.
*/}}
{{- define "flotilla-service.terminationGracePeriodSeconds" -}}
{{- $s := .Values.server -}}
{{- if eq .Values.role "consumer" -}}
{{- /* A consumer finishes its in-flight handlers after SIGTERM (docs/messaging.md): the slowest one bounds it. */ -}}
{{- add $s.preStopSleepSeconds .Values.consumer.slowestHandlerSeconds $s.terminationMarginSeconds -}}
{{- else -}}
{{- add $s.preStopSleepSeconds $s.drainSeconds $s.gracefulTimeoutSeconds $s.terminationMarginSeconds -}}
{{- end -}}
{{- end -}}

{{/*
The main container's arguments: `serve` (`--reload` with dev.sync, so gunicorn restarts its workers when skaffold
syncs a file), or `consume` (with the outbox relay when asked) for consumers.
*/}}
{{- define "flotilla-service.args" -}}
{{- if eq .Values.role "web" -}}
{{- if .Values.dev.sync.enabled -}}
{{- toJson (list "serve" .Values.serviceName "--reload") -}}
{{- else -}}
{{- toJson (list "serve" .Values.serviceName) -}}
{{- end -}}
{{- else if .Values.consumer.outboxRelay -}}
{{- toJson (list "consume" .Values.serviceName "--outbox-relay") -}}
{{- else -}}
{{- toJson (list "consume" .Values.serviceName) -}}
{{- end -}}
{{- end -}}

{{/* The shared principal Secret as JSON {secretName, key}; secretName empty when none is configured. */}}
{{- define "flotilla-service.principalSecret" -}}
{{- $g := include "flotilla-service.global" . | fromYaml -}}
{{- $gp := default (dict) $g.principalSecret -}}
{{- toJson (dict
  "secretName" (.Values.principalSecret.secretName | default $gp.secretName | default "")
  "key" (.Values.principalSecret.key | default $gp.key | default "FLOTILLA_PRINCIPAL_SECRET")) -}}
{{- end -}}

{{/* Sorted upstream names: envoy ports and listeners follow this order. */}}
{{- define "flotilla-service.upstreamNames" -}}
{{- keys .Values.upstreams | sortAlpha | toJson -}}
{{- end -}}

{{/* Where the app reaches each upstream, as JSON {name: url}: a local envoy listener, Lattice, or cluster DNS. */}}
{{- define "flotilla-service.upstreamUrls" -}}
{{- $provider := include "flotilla-service.meshProvider" . -}}
{{- $urls := dict -}}
{{- range $i, $name := include "flotilla-service.upstreamNames" . | fromJsonArray -}}
{{- if eq $provider "envoy" -}}
{{- $_ := set $urls $name (printf "http://127.0.0.1:%d" (add $.Values.mesh.envoy.outboundBasePort $i | int)) -}}
{{- else if eq $provider "lattice" -}}
{{- $_ := set $urls $name (printf "http://%s.%s" $name (include "flotilla-service.latticeDomain" $)) -}}
{{- else -}}
{{- $_ := set $urls $name (printf "http://%s.%s.svc.cluster.local:%d" $name $.Release.Namespace ($.Values.service.port | int)) -}}
{{- end -}}
{{- end -}}
{{- toJson $urls -}}
{{- end -}}

{{/*
Non-secret environment as a map (name -> string). One source for the ConfigMap and the migration Job.
*/}}
{{- define "flotilla-service.configData" -}}
{{- $s := .Values.server -}}
{{- $data := dict
  "FLOTILLA_ENV" (include "flotilla-service.environment" .)
  "FLOTILLA_LOG_LEVEL" .Values.logLevel
  "FLOTILLA_AWS_REGION" (include "flotilla-service.awsRegion" .)
  "FLOTILLA_SSM_ENABLED" (toString .Values.ssmEnabled)
  "FLOTILLA_TRACE_SAMPLE_RATIO" (toString .Values.tracing.sampleRatio)
  "FLOTILLA_BIND" (printf "0.0.0.0:%d" ($s.port | int))
  "FLOTILLA_DRAIN_SECONDS" (toString $s.drainSeconds)
  "FLOTILLA_GRACEFUL_TIMEOUT" (toString $s.gracefulTimeoutSeconds)
  "FLOTILLA_WORKERS" (toString $s.workers)
  "FLOTILLA_THREADS" (toString $s.threads)
  "FLOTILLA_KEEPALIVE" (toString $s.keepaliveSeconds)
  "FLOTILLA_FORWARDED_ALLOW_IPS" (include "flotilla-service.forwardedAllowIps" .)
  "PROMETHEUS_MULTIPROC_DIR" "/tmp/flotilla-metrics"
  "FLOTILLA_UPSTREAMS" (include "flotilla-service.upstreams" .)
  "FLOTILLA_CLIENT_RETRIES" (ternary "false" "true" (eq (include "flotilla-service.meshRetries" .) "true"))
  "FLOTILLA_MESH_PROVIDER" (include "flotilla-service.meshProvider" .)
-}}
{{- /* Discovery (docs/discovery.md): cluster DNS, or fixed addresses when calls go through envoy or Lattice. */}}
{{- $provider := include "flotilla-service.meshProvider" . -}}
{{- if has $provider (list "envoy" "lattice") }}
{{- $_ := set $data "FLOTILLA_DISCOVERY" "static" -}}
{{- $_ := set $data "FLOTILLA_DISCOVERY_STATIC" (include "flotilla-service.upstreamUrls" .) -}}
{{- else }}
{{- $_ := set $data "FLOTILLA_DISCOVERY" "kubernetes" -}}
{{- $_ := set $data "FLOTILLA_DISCOVERY_PORT" (toString .Values.service.port) -}}
{{- end }}
{{- with .Values.aws.endpointUrl }}{{- $_ := set $data "FLOTILLA_AWS_ENDPOINT_URL" . -}}{{- end }}
{{- with include "flotilla-service.otlpEndpoint" . }}{{- $_ := set $data "OTEL_EXPORTER_OTLP_ENDPOINT" . -}}{{- end }}
{{- range $k, $v := .Values.config }}{{- $_ := set $data $k (toString $v) -}}{{- end }}
{{- toYaml $data -}}
{{- end -}}

{{/*
Env from the downward API, the image version and the shared principal Secret: the same for every container of the
chart (the Deployment and the hook Jobs).
*/}}
{{- define "flotilla-service.runtimeEnv" -}}
- name: FLOTILLA_SERVICE_VERSION
  value: {{ include "flotilla-service.imageTag" . | quote }}
- name: K8S_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: K8S_NAMESPACE_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: K8S_NODE_NAME
  valueFrom:
    fieldRef:
      fieldPath: spec.nodeName
{{- $principal := include "flotilla-service.principalSecret" . | fromJson }}
{{- if $principal.secretName }}
- name: FLOTILLA_PRINCIPAL_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ $principal.secretName }}
      key: {{ $principal.key }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "flotilla-service.externalSecretName" -}}
{{- printf "%s-external" (include "flotilla-service.fullname" .) -}}
{{- end -}}

{{/* ExternalSecret spec from externalSecrets.*, writing the Secret `target`. Input: dict root, target. */}}
{{- define "flotilla-service.externalSecretSpec" -}}
{{- $es := .root.Values.externalSecrets -}}
refreshInterval: {{ $es.refreshInterval }}
secretStoreRef:
  name: {{ $es.secretStoreRef.name }}
  kind: {{ $es.secretStoreRef.kind }}
target:
  name: {{ .target }}
  creationPolicy: Owner
  deletionPolicy: Retain
data:
  {{- range required "externalSecrets.data needs at least one item" $es.data }}
  - secretKey: {{ .envName }}
    remoteRef:
      key: {{ .remoteKey }}
      {{- with .property }}
      property: {{ . }}
      {{- end }}
  {{- end }}
{{- end -}}

{{/* envFrom entries for secrets: existing Secrets, then the ExternalSecret's. */}}
{{- define "flotilla-service.secretEnvFrom" -}}
{{- range .Values.secretEnvFrom }}
- secretRef:
    name: {{ . }}
{{- end }}
{{- if .Values.externalSecrets.enabled }}
- secretRef:
    name: {{ include "flotilla-service.externalSecretName" . }}
{{- end }}
{{- end -}}

{{/* The writable /tmp every container of the chart mounts. */}}
{{- define "flotilla-service.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpVolume.sizeLimit }}
    {{- with .Values.tmpVolume.medium }}
    medium: {{ . }}
    {{- end }}
{{- end -}}

{{/* Pod-level fields shared by the Deployment, the migration Job and the test pod. */}}
{{- define "flotilla-service.podCommon" -}}
serviceAccountName: {{ include "flotilla-service.serviceAccountName" . }}
automountServiceAccountToken: {{ .Values.serviceAccount.automountToken }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- end -}}

{{/*
A policy duration in seconds (number) as "<n>s" / "<n>ms": Istio and Gateway API. Envoy rejects "ms" (its JSON
durations are seconds with one trailing "s"): Envoy fields use flotilla-service.envoyDuration.
*/}}
{{- define "flotilla-service.duration" -}}
{{- $ms := mulf . 1000 | int -}}
{{- if eq (mod $ms 1000) 0 -}}{{ div $ms 1000 }}s{{- else -}}{{ $ms }}ms{{- end -}}
{{- end -}}

{{/* A duration in seconds (number) as Envoy's JSON/YAML proto Duration: "0.5s", "2s" (at most 9 decimals). */}}
{{- define "flotilla-service.envoyDuration" -}}
{{- regexReplaceAll "\\.?0+$" (printf "%.9f" (float64 .)) "" -}}s
{{- end -}}

{{/* The IAM role the pods assume: iam.roleArn, else the role the chart creates through ACK. */}}
{{- define "flotilla-service.roleArn" -}}
{{- if .Values.iam.roleArn -}}
{{- .Values.iam.roleArn -}}
{{- else if and .Values.ack.enabled .Values.ack.iam.createRole -}}
{{- printf "arn:aws:iam::%s:role/%s" (required "aws.accountId is required to name the role the chart creates" .Values.aws.accountId) (include "flotilla-service.awsRoleName" .) -}}
{{- else -}}
{{- fail (printf "iam.roleArn is required when iam.mode is %s (or set ack.iam.createRole)" .Values.iam.mode) -}}
{{- end -}}
{{- end -}}

{{/* AWS-side names are prefixed with the environment so dev and prod can share an account. */}}
{{- define "flotilla-service.awsRoleName" -}}
{{- printf "flotilla-%s-%s" (include "flotilla-service.environment" .) .Values.serviceName -}}
{{- end -}}

{{/* The hook Jobs that are enabled, as JSON [{name, hooks, weight}], in weight order. */}}
{{- define "flotilla-service.hookJobs" -}}
{{- $jobs := list -}}
{{- if .Values.provision.enabled }}{{- $jobs = append $jobs (dict "name" "provision" "hooks" .Values.provision.hooks "weight" -10) -}}{{- end }}
{{- if .Values.migration.enabled }}{{- $jobs = append $jobs (dict "name" "migrate" "hooks" .Values.migration.hooks "weight" -5) -}}{{- end }}
{{- if .Values.seed.enabled }}{{- $jobs = append $jobs (dict "name" "seed" "hooks" .Values.seed.hooks "weight" 5) -}}{{- end }}
{{- toJson $jobs -}}
{{- end -}}

{{/*
Hook events of the Jobs that run in some pre-* event (they use the hook ServiceAccount and Secret, which must
exist in each of those events), as a sorted JSON list; empty when no Job runs before the release's objects.
*/}}
{{- define "flotilla-service.jobsPreHooks" -}}
{{- $events := list -}}
{{- range include "flotilla-service.hookJobs" . | fromJsonArray -}}
{{- if contains "pre-" .hooks -}}
{{- $events = concat $events (splitList "," .hooks) -}}
{{- end -}}
{{- end -}}
{{- toJson ($events | uniq | sortAlpha) -}}
{{- end -}}

{{/* The hook ServiceAccount of pre-* Jobs, or "" when no Job runs before the release's objects exist. */}}
{{- define "flotilla-service.jobsServiceAccount" -}}
{{- if include "flotilla-service.jobsPreHooks" . | fromJsonArray -}}
{{- printf "%s-jobs" (include "flotilla-service.fullname" .) -}}
{{- end -}}
{{- end -}}


{{/*
dev.sync: the directory first on the image's PYTHONPATH (Dockerfile; tests/deploy checks they agree). skaffold's
file sync copies flotilla/** and services/<service>/** there (skaffold.yaml).
*/}}
{{- define "flotilla-service.syncDir" -}}/opt/sync{{- end -}}

{{/*
dev.sync's init container: copies the installed chassis and this image's service (/opt/service) into the emptyDir, so the
directory holds complete regular packages (a synced file alone would make a namespace portion, which Python
skips for the installed regular package) and the app imports, and gunicorn's reloader watches, the copies.
*/}}
{{- define "flotilla-service.syncSeedContainer" -}}
- name: sync-seed
  image: {{ include "flotilla-service.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command:
    - python
    - -c
    - |
      import os, shutil, flotilla
      skip = shutil.ignore_patterns("__pycache__", "*.dist-info")
      sync = {{ include "flotilla-service.syncDir" . | quote }}
      shutil.copytree(os.path.dirname(flotilla.__file__), os.path.join(sync, "flotilla"), dirs_exist_ok=True, ignore=skip)
      shutil.copytree("/opt/service", sync, dirs_exist_ok=True, ignore=skip)
  securityContext:
    {{- toYaml .Values.containerSecurityContext | nindent 4 }}
  resources:
    {{- toYaml .Values.resources | nindent 4 }}
  volumeMounts:
    - name: tmp
      mountPath: /tmp
    - name: sync
      mountPath: {{ include "flotilla-service.syncDir" . }}
{{- end -}}
