{{/* Names and labels for the objects the store chart itself renders (not the services'). */}}

{{- define "flotilla.labels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: flotilla
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{/*
The store's services: every top-level value that is a map with a serviceName and is enabled, as a JSON list of
{alias, name, values}. Adding a service to Chart.yaml and values.yaml is enough for the templates to see it.
*/}}
{{- define "flotilla.services" -}}
{{- $out := list -}}
{{- range $alias, $v := .Values -}}
{{- if and (kindIs "map" $v) (hasKey $v "serviceName") (ne (toString (dig "enabled" true $v)) "false") -}}
{{- $out = append $out (dict "alias" $alias "name" (default $v.serviceName $v.fullnameOverride) "values" $v) -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* Pods of one service (by name) of this release. */}}
{{- define "flotilla.serviceSelector" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .release }}
{{- end -}}

{{/* A small dev dependency: Deployment + Service, locked down like the services. Input: dict name, port, image, args, env, writable, root. */}}
{{- define "flotilla.devDependency" -}}
{{- $root := .root -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "flotilla.labels" $root | nindent 4 }}
    app.kubernetes.io/name: {{ .name }}
    app.kubernetes.io/component: dev-dependency
  {{- if ne (int .uid) 65532 }}
  annotations:
    checkov.io/skip1: CKV_K8S_40=dev-only upstream image whose data directories belong to its built-in user {{ .uid }}
  {{- end }}
spec:
  replicas: 1
  selector:
    matchLabels:
      app.kubernetes.io/name: {{ .name }}
      app.kubernetes.io/instance: {{ $root.Release.Name }}
  template:
    metadata:
      labels:
        {{- include "flotilla.labels" $root | nindent 8 }}
        app.kubernetes.io/name: {{ .name }}
        app.kubernetes.io/component: dev-dependency
        sidecar.istio.io/inject: "false"
    spec:
      automountServiceAccountToken: false
      securityContext:
        runAsNonRoot: true
        runAsUser: {{ .uid }}
        runAsGroup: {{ .uid }}
        fsGroup: {{ .uid }}
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: {{ .name }}
          image: {{ if kindIs "map" .image }}{{ include "flotilla-service.pinnedImage" .image }}{{ else }}{{ .image }}{{ end }}
          imagePullPolicy: IfNotPresent
          {{- with .args }}
          args:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          ports:
            - name: tcp
              containerPort: {{ .port }}
              protocol: TCP
          {{- with .env }}
          env:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          readinessProbe:
            tcpSocket:
              port: tcp
            periodSeconds: 5
          livenessProbe:
            tcpSocket:
              port: tcp
            periodSeconds: 10
            failureThreshold: 6
          securityContext:
            runAsNonRoot: true
            runAsUser: {{ .uid }}
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            privileged: false
            capabilities:
              drop: [ALL]
          resources:
            requests:
              cpu: 50m
              memory: 128Mi
            limits:
              cpu: 500m
              memory: 512Mi
          volumeMounts:
            {{- range $i, $path := .writable }}
            - name: scratch-{{ $i }}
              mountPath: {{ $path }}
            {{- end }}
      volumes:
        {{- range $i, $path := .writable }}
        - name: scratch-{{ $i }}
          emptyDir:
            sizeLimit: 1Gi
        {{- end }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ .name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "flotilla.labels" $root | nindent 4 }}
    app.kubernetes.io/name: {{ .name }}
    app.kubernetes.io/component: dev-dependency
spec:
  selector:
    app.kubernetes.io/name: {{ .name }}
    app.kubernetes.io/instance: {{ $root.Release.Name }}
  ports:
    - name: tcp
      port: {{ .port }}
      targetPort: tcp
      protocol: TCP
---
{{- /* Who may reach it, and the matching egress for each client (policies add up). */}}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ .name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "flotilla.labels" $root | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      app.kubernetes.io/name: {{ .name }}
      app.kubernetes.io/instance: {{ $root.Release.Name }}
  policyTypes: [Ingress, Egress]
  ingress:
    - from:
        {{- range .clients }}
        - podSelector:
            matchLabels:
              {{- include "flotilla.serviceSelector" (dict "name" . "release" $root.Release.Name) | nindent 14 }}
        {{- end }}
      ports:
        - protocol: TCP
          port: {{ .port }}
  egress: []
{{- range .clients }}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ . }}-to-{{ $.name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "flotilla.labels" $root | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "flotilla.serviceSelector" (dict "name" . "release" $root.Release.Name) | nindent 6 }}
  policyTypes: [Egress]
  egress:
    - to:
        - podSelector:
            matchLabels:
              app.kubernetes.io/name: {{ $.name }}
              app.kubernetes.io/instance: {{ $root.Release.Name }}
      ports:
        - protocol: TCP
          port: {{ $.port }}
{{- end }}
{{- end -}}
