{{/*
The chassis' resources spec (services/<name>/resources.yaml, the `awsResources` value) resolved to names and
ARNs by the chassis' rules (flotilla/resources/naming.py, docs/resources.md): `<env>-<service>-<name>`, `-dlq`
for a dead-letter queue, `.fifo` for FIFO topics and queues, the account's `default` bus unprefixed.
tests/deploy/test_deploy_resources.py renders every service spec in the repository and compares with the Python code.
*/}}

{{/* Where the resources live, as JSON: env, service, region, account and the region's partition. */}}
{{- define "flotilla-service.awsPlace" -}}
{{- $region := include "flotilla-service.awsRegion" . -}}
{{- $partition := "aws" -}}
{{- if hasPrefix "cn-" $region -}}{{- $partition = "aws-cn" -}}
{{- else if hasPrefix "us-gov-" $region -}}{{- $partition = "aws-us-gov" -}}
{{- end -}}
{{- $account := required "aws.accountId is required with ack.enabled (ARNs in policies)" .Values.aws.accountId -}}
{{- toJson (dict "env" (include "flotilla-service.environment" .) "service" .Values.serviceName "region" $region "account" (toString $account) "partition" $partition) -}}
{{- end -}}

{{/*
One resource by reference, as JSON {name, arn, fifo}. Input: dict place, owns (the spec's `owns`), kind (topic,
queue, deadLetter, table, bus) and ref: an own logical name, or another service's `<service>/<name>[.fifo]`.
*/}}
{{- define "flotilla-service.awsResolve" -}}
{{- $place := .place -}}
{{- $ref := toString .ref -}}
{{- $service := $place.service -}}
{{- if contains "/" $ref -}}{{- $service = regexReplaceAll "/[^/]*$" $ref "" -}}{{- end -}}
{{- $name := regexReplaceAll "^.*/" $ref "" -}}
{{- $fifo := hasSuffix ".fifo" $name -}}
{{- $name = trimSuffix ".fifo" $name -}}
{{- $own := not (contains "/" $ref) -}}
{{- $suffix := "" -}}
{{- if and $own (has .kind (list "topic" "queue" "deadLetter")) -}}
{{- $section := ternary "topics" "queues" (eq .kind "topic") -}}
{{- $fifo = dig $section $name "fifo" false (default (dict) .owns) -}}
{{- end -}}
{{- if eq .kind "deadLetter" -}}{{- $suffix = "-dlq" -}}{{- end -}}
{{- $physical := printf "%s-%s-%s%s%s" $place.env $service $name $suffix (ternary ".fifo" "" (and $fifo (ne .kind "table") (ne .kind "bus"))) -}}
{{- if and (eq .kind "bus") $own (eq $name "default") -}}{{- $physical = "default" -}}{{- end -}}
{{- $arn := "" -}}
{{- $prefix := printf "arn:%s:%%s:%s:%s:" $place.partition $place.region $place.account -}}
{{- if eq .kind "topic" -}}{{- $arn = printf "%s%s" (printf $prefix "sns") $physical -}}
{{- else if has .kind (list "queue" "deadLetter") -}}{{- $arn = printf "%s%s" (printf $prefix "sqs") $physical -}}
{{- else if eq .kind "table" -}}{{- $arn = printf "%stable/%s" (printf $prefix "dynamodb") $physical -}}
{{- else if eq .kind "bus" -}}{{- $arn = printf "%sevent-bus/%s" (printf $prefix "events") $physical -}}
{{- end -}}
{{- if and (has .kind (list "queue" "deadLetter")) (gt (len $physical) 80) -}}
{{- fail (printf "awsResources: queue name %q is longer than 80 characters; shorten the name" $physical) -}}
{{- end -}}
{{- toJson (dict "name" $physical "arn" $arn "fifo" $fifo) -}}
{{- end -}}

{{/*
The least-privilege policy document, as JSON: the statements `flotilla iam-policy` prints for the same spec,
environment, region and account (flotilla/resources/iam.py): grouped by action list in a fixed order, actions
and resources sorted; SSM read when ssmEnabled. Input: the chart context.
*/}}
{{- define "flotilla-service.awsPolicyDocument" -}}
{{- $place := include "flotilla-service.awsPlace" . | fromJson -}}
{{- $spec := default (dict) .Values.awsResources -}}
{{- $owns := default (dict) $spec.owns -}}
{{- $uses := default (dict) $spec.uses -}}
{{- $grants := dict "SnsPublish" list "EventsPutEvents" list "SqsConsume" list "SqsSend" list "DynamodbRead" list "DynamodbQueryIndexes" list "DynamodbWrite" list -}}
{{- $r := dict "place" $place "owns" $owns -}}
{{- range $name, $_ := default (dict) $owns.topics -}}
{{- $_ := set $grants "SnsPublish" (append $grants.SnsPublish (include "flotilla-service.awsResolve" (merge (dict "kind" "topic" "ref" $name) $r) | fromJson).arn) -}}
{{- end -}}
{{- range $ref := default list $uses.topics -}}
{{- $_ := set $grants "SnsPublish" (append $grants.SnsPublish (include "flotilla-service.awsResolve" (merge (dict "kind" "topic" "ref" $ref) $r) | fromJson).arn) -}}
{{- end -}}
{{- range $ref := concat (keys (default (dict) $owns.buses)) (default list $uses.buses) -}}
{{- $_ := set $grants "EventsPutEvents" (append $grants.EventsPutEvents (include "flotilla-service.awsResolve" (merge (dict "kind" "bus" "ref" $ref) $r) | fromJson).arn) -}}
{{- end -}}
{{- $queues := list -}}
{{- range $name, $q := default (dict) $owns.queues -}}
{{- $queues = append $queues (dict "ref" $name "access" (dig "access" "consume" (default (dict) $q))) -}}
{{- end -}}
{{- range $use := default list $uses.queues -}}
{{- $queues = append $queues (dict "ref" $use.queue "access" (default "send" $use.access)) -}}
{{- end -}}
{{- range $queues -}}
{{- $arn := (include "flotilla-service.awsResolve" (merge (dict "kind" "queue" "ref" .ref) $r) | fromJson).arn -}}
{{- if has .access (list "consume" "send-consume") -}}{{- $_ := set $grants "SqsConsume" (append $grants.SqsConsume $arn) -}}{{- end -}}
{{- if has .access (list "send" "send-consume") -}}{{- $_ := set $grants "SqsSend" (append $grants.SqsSend $arn) -}}{{- end -}}
{{- end -}}
{{- $tables := list -}}
{{- range $name, $t := default (dict) $owns.tables -}}
{{- $tables = append $tables (dict "ref" $name "access" (default "readwrite" $t.access) "indexes" (not (empty $t.globalSecondaryIndexes))) -}}
{{- end -}}
{{- range $use := default list $uses.tables -}}
{{- /* another service's indexes are not visible here: Query on any of them */}}
{{- $tables = append $tables (dict "ref" $use.table "access" (default "read" $use.access) "indexes" true) -}}
{{- end -}}
{{- range $tables -}}
{{- $arn := (include "flotilla-service.awsResolve" (merge (dict "kind" "table" "ref" .ref) $r) | fromJson).arn -}}
{{- if has .access (list "read" "readwrite") -}}
{{- $_ := set $grants "DynamodbRead" (append $grants.DynamodbRead $arn) -}}
{{- if .indexes -}}{{- $_ := set $grants "DynamodbQueryIndexes" (append $grants.DynamodbQueryIndexes (printf "%s/index/*" $arn)) -}}{{- end -}}
{{- end -}}
{{- if has .access (list "write" "readwrite") -}}{{- $_ := set $grants "DynamodbWrite" (append $grants.DynamodbWrite $arn) -}}{{- end -}}
{{- end -}}
{{- $actions := dict
  "SnsPublish" (list "sns:Publish")
  "EventsPutEvents" (list "events:PutEvents")
  "SqsConsume" (list "sqs:ChangeMessageVisibility" "sqs:DeleteMessage" "sqs:GetQueueAttributes" "sqs:GetQueueUrl" "sqs:ReceiveMessage")
  "SqsSend" (list "sqs:GetQueueAttributes" "sqs:GetQueueUrl" "sqs:SendMessage")
  "DynamodbRead" (list "dynamodb:BatchGetItem" "dynamodb:DescribeTable" "dynamodb:GetItem" "dynamodb:Query")
  "DynamodbQueryIndexes" (list "dynamodb:Query")
  "DynamodbWrite" (list "dynamodb:BatchWriteItem" "dynamodb:ConditionCheckItem" "dynamodb:DeleteItem" "dynamodb:DescribeTable" "dynamodb:PutItem" "dynamodb:UpdateItem")
-}}
{{- $statements := list -}}
{{- range $sid := list "SnsPublish" "EventsPutEvents" "SqsConsume" "SqsSend" "DynamodbRead" "DynamodbQueryIndexes" "DynamodbWrite" -}}
{{- with get $grants $sid -}}
{{- $statements = append $statements (dict "Sid" $sid "Effect" "Allow" "Action" (get $actions $sid) "Resource" (uniq . | sortAlpha)) -}}
{{- end -}}
{{- end -}}
{{- if .Values.ssmEnabled -}}
{{- $path := printf "arn:%s:ssm:%s:%s:parameter/flotilla/%s/%s" $place.partition $place.region $place.account $place.env $place.service -}}
{{- $statements = append $statements (dict "Sid" "SsmGetParametersByPath" "Effect" "Allow" "Action" (list "ssm:GetParametersByPath") "Resource" (list $path (printf "%s/*" $path))) -}}
{{- end -}}
{{- toJson (dict "Version" "2012-10-17" "Statement" (concat $statements (default list .Values.ack.iam.extraStatements))) -}}
{{- end -}}

{{/* DynamoDB key schema of a table or index (hashKey, optional rangeKey), ACK field names. */}}
{{- define "flotilla-service.awsKeySchema" -}}
- attributeName: {{ .hashKey.name }}
  keyType: HASH
{{- with .rangeKey }}
- attributeName: {{ .name }}
  keyType: RANGE
{{- end }}
{{- end -}}

{{/*
The queue KEDA watches: keda.queueUrl, else the URL of keda.queue (an own queue or `<service>/<name>` from
awsResources) by the chassis naming rule: https://sqs.<region>.<domain>/<account>/<physical name>.
*/}}
{{- define "flotilla-service.kedaQueueUrl" -}}
{{- $k := .Values.keda -}}
{{- if $k.queueUrl -}}
{{- $k.queueUrl -}}
{{- else -}}
{{- $ref := required "keda.queue (a queue of awsResources) or keda.queueUrl is required when keda.enabled" $k.queue -}}
{{- $owns := default (dict) (default (dict) .Values.awsResources).owns -}}
{{- if and (not (contains "/" $ref)) (not (hasKey (default (dict) $owns.queues) (trimSuffix ".fifo" $ref))) -}}
{{- fail (printf "keda.queue %q is not a queue in awsResources.owns.queues" $ref) -}}
{{- end -}}
{{- $place := include "flotilla-service.awsPlace" . | fromJson -}}
{{- $queue := include "flotilla-service.awsResolve" (dict "place" $place "owns" $owns "kind" "queue" "ref" $ref) | fromJson -}}
{{- printf "https://sqs.%s.%s/%s/%s" $place.region (ternary "amazonaws.com.cn" "amazonaws.com" (eq $place.partition "aws-cn")) $place.account $queue.name -}}
{{- end -}}
{{- end -}}

{{/*
Annotations that keep a stateful ACK object's data when the object goes (helm uninstall, a renamed resource):
ACK's deletion policy, `retain` by default (ack.deletionPolicy), leaves the queue, topic or table in AWS and only
drops the Kubernetes object. A table with deletion protection is always retained and never deleted by helm
(`helm.sh/resource-policy: keep`): AWS refuses its DeleteTable, so under `delete` ACK would retry forever and the
object would hang on its finalizer, and with it the uninstall and the namespace. Input: dict root, protected.
*/}}
{{- define "flotilla-service.ackRetention" -}}
{{- if .protected -}}
services.k8s.aws/deletion-policy: retain
helm.sh/resource-policy: keep
{{- else -}}
services.k8s.aws/deletion-policy: {{ .root.Values.ack.deletionPolicy }}
{{- end -}}
{{- with .root.Values.commonAnnotations }}
{{ toYaml . }}
{{- end -}}
{{- end -}}

{{/*
How KEDA reads the queue, as JSON {identityOwner, roleArn} (either may be empty). KEDA's `aws` provider with
identityOwner `workload` takes the role from the ServiceAccount's IRSA annotation (eks.amazonaws.com/role-arn) and
assumes it with the operator's own credentials; Pod Identity sets no such annotation, so under iam.mode podIdentity
KEDA is the identity owner and assumes the service's role named in `roleArn` (the two fields exclude each other).
With iam.mode none KEDA reads the queue as itself. `aws-eks` (IRSA only) is deprecated and never used.
*/}}
{{- define "flotilla-service.kedaIdentity" -}}
{{- $owner := .Values.keda.identityOwner -}}
{{- $mode := .Values.iam.mode -}}
{{- if and (eq $owner "workload") (ne $mode "irsa") -}}
{{- fail (printf "keda.identityOwner workload needs iam.mode irsa: KEDA reads the role from the ServiceAccount's eks.amazonaws.com/role-arn annotation, which iam.mode %s does not set; leave keda.identityOwner empty" $mode) -}}
{{- end -}}
{{- if or (eq $owner "workload") (and (not $owner) (eq $mode "irsa")) -}}
{{- toJson (dict "identityOwner" "workload" "roleArn" "") -}}
{{- else if and (not $owner) (eq $mode "podIdentity") -}}
{{- toJson (dict "identityOwner" "" "roleArn" (include "flotilla-service.roleArn" .)) -}}
{{- else -}}
{{- toJson (dict "identityOwner" "keda" "roleArn" "") -}}
{{- end -}}
{{- end -}}

{{/* "true" when the KEDA operator assumes this service's role (so the role must trust the operator's). */}}
{{- define "flotilla-service.kedaAssumesRole" -}}
{{- if .Values.keda.enabled -}}
{{- $identity := include "flotilla-service.kedaIdentity" . | fromJson -}}
{{- if or (eq $identity.identityOwner "workload") $identity.roleArn -}}true{{- end -}}
{{- end -}}
{{- end -}}
