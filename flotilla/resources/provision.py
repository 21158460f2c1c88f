"""Create what a resources spec declares, idempotently: read what exists, change only what differs.

Each resource is looked up first and created or brought in line only when it differs, so a
second run makes no changing call at all and reports every resource as ``kept``. Nothing is ever
deleted: a resource dropped from the spec stays until a person removes it, because deleting a
queue or table by omission loses data.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from botocore.exceptions import ClientError

from flotilla.resources.naming import QueueRef, Resolved
from flotilla.resources.spec import Queue, ResourcesSpec, Table

Outcome = Literal["created", "updated", "kept", "would create", "would update"]
ClientFactory = Callable[[str], Any]

_NOT_FOUND = frozenset(
    {
        "NotFound",
        "NotFoundException",
        "ResourceNotFoundException",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
    }
)


class ProvisionError(RuntimeError):
    """Something the spec asks for cannot be done (a missing foreign topic, a key change); one line."""


@dataclass(frozen=True)
class Change:
    """What provisioning did (or would do) to one resource."""

    outcome: Outcome
    kind: str
    name: str
    detail: str = ""

    def line(self) -> str:
        detail = f"  ({self.detail})" if self.detail else ""
        return f"{self.outcome:<13}{self.kind:<18}{self.name}{detail}"


def provision(
    spec: ResourcesSpec, resolved: Resolved, clients: ClientFactory, *, dry_run: bool = False
) -> list[Change]:
    """Bring the account (or emulator) in line with ``spec``; one ``Change`` per resource, in order.

    ``clients("sqs")`` must return a boto3 client. With ``dry_run`` only reads are made and the
    outcomes say ``would create`` / ``would update``.
    """
    return list(_Provisioner(spec, resolved, clients, dry_run).run())


def summary(changes: list[Change]) -> str:
    """``2 created, 1 updated, 5 kept``, or ``nothing to change (8 kept)`` when the run was a no-op."""
    counts: dict[str, int] = {}
    for change in changes:
        counts[change.outcome] = counts.get(change.outcome, 0) + 1
    if set(counts) <= {"kept"}:
        return f"nothing to change ({counts.get('kept', 0)} kept)"
    order = ["created", "updated", "would create", "would update", "kept"]
    return ", ".join(f"{counts[key]} {key}" for key in order if key in counts)


def queue_attributes(resolved: Resolved, name: str, queue: Queue) -> dict[str, str]:
    """The attributes provisioning sets on owned queue ``name`` (its dead-letter queue aside).

    Redrive to the resolved dead-letter queue, and a policy letting exactly the subscribed topics
    and targeting rules send; the ACK ``Queue`` the service chart renders carries the same values.
    """
    attributes = {
        "VisibilityTimeout": str(queue.visibility_timeout_seconds),
        "MessageRetentionPeriod": str(queue.message_retention_seconds),
        "ReceiveMessageWaitTimeSeconds": str(queue.receive_wait_time_seconds),
        "DelaySeconds": str(queue.delay_seconds),
    }
    if queue.fifo:
        attributes["ContentBasedDeduplication"] = str(queue.content_based_deduplication).lower()
    if queue.dead_letter is not None:
        attributes["RedrivePolicy"] = json.dumps(
            {
                "deadLetterTargetArn": resolved.dead_letters[name].arn,
                "maxReceiveCount": queue.dead_letter.max_receive_count,
            }
        )
    policy = _queue_policy(resolved, resolved.queues[name])
    if policy is not None:
        attributes["Policy"] = json.dumps(policy)
    return attributes


def subscription_attributes(raw: bool, filter_policy: dict[str, Any] | None, scope: str) -> dict[str, str]:
    """The attributes of a topic-to-queue subscription: raw delivery, and the filter policy when given."""
    wanted = {"RawMessageDelivery": str(raw).lower()}
    if filter_policy is not None:
        wanted["FilterPolicy"] = json.dumps(filter_policy, sort_keys=True)
        wanted["FilterPolicyScope"] = scope
    return wanted


class _Provisioner:
    def __init__(
        self, spec: ResourcesSpec, resolved: Resolved, clients: ClientFactory, dry_run: bool
    ) -> None:
        self.spec = spec
        self.resolved = resolved
        self.clients = clients
        self.dry_run = dry_run

    def run(self) -> Iterator[Change]:
        for name in self.spec.owns.buses:
            yield self._bus(self.resolved.buses[name].name)
        for name, topic in self.spec.owns.topics.items():
            yield self._topic(name, topic.fifo, topic.content_based_deduplication)
        for name, queue in self.spec.owns.queues.items():
            if queue.dead_letter is not None:
                dlq = self.resolved.dead_letters[name]
                attributes = {"MessageRetentionPeriod": str(queue.dead_letter.message_retention_seconds)}
                yield self._queue(dlq, attributes)
            yield self._queue(self.resolved.queues[name], queue_attributes(self.resolved, name, queue))
        for name, queue in self.spec.owns.queues.items():
            for sub in queue.subscriptions:
                yield self._subscription(
                    self.resolved.topic(sub.topic).arn,
                    self.resolved.queues[name],
                    subscription_attributes(
                        sub.raw_message_delivery, sub.filter_policy, sub.filter_policy_scope
                    ),
                )
        for name in self.spec.owns.rules:
            yield self._rule(name)
        for name, table in self.spec.owns.tables.items():
            yield self._table(name, table)

    # --- outcomes -------------------------------------------------------------------------------

    def _created(self, kind: str, name: str, detail: str = "") -> Change:
        return Change("would create" if self.dry_run else "created", kind, name, detail)

    def _updated(self, kind: str, name: str, what: list[str]) -> Change:
        return Change("would update" if self.dry_run else "updated", kind, name, ", ".join(what))

    # --- EventBridge buses and rules ------------------------------------------------------------

    def _bus(self, name: str) -> Change:
        events = self.clients("events")
        if _exists(lambda: events.describe_event_bus(Name=name)):
            return Change("kept", "event bus", name)
        if not self.dry_run:
            events.create_event_bus(Name=name)
        return self._created("event bus", name)

    def _rule(self, logical: str) -> Change:
        rule, ref = self.spec.owns.rules[logical], self.resolved.rules[logical]
        events = self.clients("events")
        wanted = {
            "EventPattern": json.dumps(rule.pattern, sort_keys=True),
            "State": "ENABLED" if rule.enabled else "DISABLED",
            "Description": rule.description,
        }
        current = _get(lambda: events.describe_rule(Name=ref.name, EventBusName=ref.bus.name))
        changed = (
            []
            if current is None
            else [key for key, value in wanted.items() if not _same(current.get(key, ""), value)]
        )
        targets = {queue.logical: queue.arn for queue in ref.targets}
        existing: dict[str, str] = {}
        if current is not None:
            listed = events.list_targets_by_rule(Rule=ref.name, EventBusName=ref.bus.name)["Targets"]
            existing = {target["Id"]: target["Arn"] for target in listed}
        stale = sorted(set(existing) - set(targets))
        missing = {key: arn for key, arn in targets.items() if existing.get(key) != arn}
        if not self.dry_run:
            if current is None or changed:
                events.put_rule(Name=ref.name, EventBusName=ref.bus.name, **wanted)
            if missing:
                entries = [{"Id": key, "Arn": arn} for key, arn in sorted(missing.items())]
                events.put_targets(Rule=ref.name, EventBusName=ref.bus.name, Targets=entries)
            if stale:
                events.remove_targets(Rule=ref.name, EventBusName=ref.bus.name, Ids=stale)
        on_bus = f"on {ref.bus.name}"
        if current is None:
            return self._created("event rule", ref.name, f"{on_bus} -> {', '.join(sorted(targets))}")
        what = (
            changed
            + [f"target {key}" for key in sorted(missing)]
            + [f"removed target {key}" for key in stale]
        )
        return self._updated("event rule", ref.name, what) if what else Change("kept", "event rule", ref.name)

    # --- SNS ------------------------------------------------------------------------------------

    def _topic(self, logical: str, fifo: bool, cbd: bool) -> Change:
        ref = self.resolved.topics[logical]
        sns = self.clients("sns")
        current = _get(lambda: sns.get_topic_attributes(TopicArn=ref.arn)["Attributes"])
        wanted = {"FifoTopic": "true", "ContentBasedDeduplication": str(cbd).lower()} if fifo else {}
        if current is None:
            if not self.dry_run:
                sns.create_topic(Name=ref.name, Attributes=wanted)
            return self._created("sns topic", ref.name)
        if fifo and current.get("ContentBasedDeduplication", "false") != wanted["ContentBasedDeduplication"]:
            if not self.dry_run:
                sns.set_topic_attributes(
                    TopicArn=ref.arn,
                    AttributeName="ContentBasedDeduplication",
                    AttributeValue=wanted["ContentBasedDeduplication"],
                )
            return self._updated("sns topic", ref.name, ["ContentBasedDeduplication"])
        return Change("kept", "sns topic", ref.name)

    def _subscription(self, topic_arn: str, queue: QueueRef, wanted: dict[str, str]) -> Change:
        sns = self.clients("sns")
        topic_name = topic_arn.rsplit(":", 1)[-1]
        label = f"{topic_name} -> {queue.name}"
        try:
            subscription_arn = self._find_subscription(sns, topic_arn, queue.arn)
        except LookupError:
            if self.dry_run:  # the topic is created earlier in a real run
                return self._created("sns subscription", label)
            raise ProvisionError(
                f"topic {topic_arn} does not exist: provision the service that owns it first"
            ) from None
        if subscription_arn is None:
            if not self.dry_run:
                sns.subscribe(
                    TopicArn=topic_arn,
                    Protocol="sqs",
                    Endpoint=queue.arn,
                    Attributes=wanted,
                    ReturnSubscriptionArn=True,
                )
            return self._created("sns subscription", label)
        current = sns.get_subscription_attributes(SubscriptionArn=subscription_arn)["Attributes"]
        changed = [key for key, value in wanted.items() if not _same(current.get(key, ""), value)]
        if not changed:
            return Change("kept", "sns subscription", label)
        if not self.dry_run:
            for key in changed:
                sns.set_subscription_attributes(
                    SubscriptionArn=subscription_arn, AttributeName=key, AttributeValue=wanted[key]
                )
        return self._updated("sns subscription", label, changed)

    @staticmethod
    def _find_subscription(sns: Any, topic_arn: str, queue_arn: str) -> str | None:
        try:
            pages = sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn)
            for page in pages:
                for sub in page["Subscriptions"]:
                    if sub["Protocol"] == "sqs" and sub["Endpoint"] == queue_arn:
                        return str(sub["SubscriptionArn"])
        except ClientError as err:
            if _code(err) in _NOT_FOUND:
                raise LookupError(topic_arn) from None
            raise
        return None

    # --- SQS ------------------------------------------------------------------------------------

    def _queue(self, queue: QueueRef, wanted: dict[str, str]) -> Change:
        sqs = self.clients("sqs")
        url = _get(lambda: sqs.get_queue_url(QueueName=queue.name)["QueueUrl"])
        kind = "sqs queue"
        if url is None:
            if not self.dry_run:
                create_only = {"FifoQueue": "true"} if queue.fifo else {}
                sqs.create_queue(QueueName=queue.name, Attributes={**create_only, **wanted})
            return self._created(kind, queue.name)
        current = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        changed = [key for key, value in wanted.items() if not _same(current.get(key, ""), value)]
        if not changed:
            return Change("kept", kind, queue.name)
        if not self.dry_run:
            sqs.set_queue_attributes(QueueUrl=url, Attributes={key: wanted[key] for key in changed})
        return self._updated(kind, queue.name, changed)

    # --- DynamoDB -------------------------------------------------------------------------------

    def _table(self, logical: str, table: Table) -> Change:
        ref = self.resolved.tables[logical]
        ddb = self.clients("dynamodb")
        current = _get(lambda: ddb.describe_table(TableName=ref.name)["Table"])
        if current is None:
            if not self.dry_run:
                ddb.create_table(TableName=ref.name, **table_definition(table))
                ddb.get_waiter("table_exists").wait(TableName=ref.name, WaiterConfig={"Delay": 1})
                if table.ttl_attribute:
                    self._enable_ttl(ddb, ref.name, table.ttl_attribute)
            detail = f"ttl {table.ttl_attribute}" if table.ttl_attribute else ""
            return self._created("dynamodb table", ref.name, detail)
        if _key_schema(current["KeySchema"]) != _key_schema(_keys(table.hash_key.name, table.range_key)):
            raise ProvisionError(
                f"table {ref.name} exists with other keys than owns.tables.{logical} declares; "
                "keys cannot change: create a new table"
            )
        changed: list[str] = []
        billing = current.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED")
        if billing != table.billing_mode:
            changed.append("BillingMode")
            if not self.dry_run:
                ddb.update_table(TableName=ref.name, **_billing(table))
        existing = {index["IndexName"] for index in current.get("GlobalSecondaryIndexes", [])}
        definition = table_definition(table)
        for index in definition.get("GlobalSecondaryIndexes", []):
            if index["IndexName"] not in existing:
                changed.append(f"index {index['IndexName']}")
                if not self.dry_run:
                    ddb.update_table(
                        TableName=ref.name,
                        AttributeDefinitions=definition["AttributeDefinitions"],
                        GlobalSecondaryIndexUpdates=[{"Create": index}],
                    )
        if table.ttl_attribute:
            ttl = ddb.describe_time_to_live(TableName=ref.name)["TimeToLiveDescription"]
            if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING") or (
                ttl.get("AttributeName") != table.ttl_attribute
            ):
                changed.append(f"ttl {table.ttl_attribute}")
                if not self.dry_run:
                    self._enable_ttl(ddb, ref.name, table.ttl_attribute)
        return (
            self._updated("dynamodb table", ref.name, changed)
            if changed
            else Change("kept", "dynamodb table", ref.name)
        )

    @staticmethod
    def _enable_ttl(ddb: Any, table_name: str, attribute: str) -> None:
        ddb.update_time_to_live(
            TableName=table_name, TimeToLiveSpecification={"Enabled": True, "AttributeName": attribute}
        )


def _keys(hash_key: str, range_key: Any) -> list[dict[str, str]]:
    keys = [{"AttributeName": hash_key, "KeyType": "HASH"}]
    if range_key is not None:
        keys.append({"AttributeName": range_key.name, "KeyType": "RANGE"})
    return keys


def _key_schema(keys: list[dict[str, str]]) -> list[tuple[str, str]]:
    return sorted((key["KeyType"], key["AttributeName"]) for key in keys)


def _billing(table: Table) -> dict[str, Any]:
    if table.billing_mode == "PAY_PER_REQUEST":
        return {"BillingMode": "PAY_PER_REQUEST"}
    return {
        "BillingMode": "PROVISIONED",
        "ProvisionedThroughput": {
            "ReadCapacityUnits": table.read_capacity,
            "WriteCapacityUnits": table.write_capacity,
        },
    }


def table_definition(table: Table) -> dict[str, Any]:
    """CreateTable arguments (without the name): keys, every key attribute defined once, billing, GSIs."""
    attributes: dict[str, str] = {}
    for key in (table.hash_key, table.range_key):
        if key is not None:
            attributes[key.name] = key.type
    indexes = []
    for index in table.global_secondary_indexes:
        for key in (index.hash_key, index.range_key):
            if key is not None:
                attributes[key.name] = key.type
        projection: dict[str, Any] = {"ProjectionType": index.projection}
        if index.non_key_attributes:
            projection["NonKeyAttributes"] = index.non_key_attributes
        entry: dict[str, Any] = {
            "IndexName": index.name,
            "KeySchema": _keys(index.hash_key.name, index.range_key),
            "Projection": projection,
        }
        if table.billing_mode == "PROVISIONED":
            entry["ProvisionedThroughput"] = _billing(table)["ProvisionedThroughput"]
        indexes.append(entry)
    definition: dict[str, Any] = {
        "KeySchema": _keys(table.hash_key.name, table.range_key),
        "AttributeDefinitions": [
            {"AttributeName": name, "AttributeType": kind} for name, kind in attributes.items()
        ],
        **_billing(table),
    }
    if indexes:
        definition["GlobalSecondaryIndexes"] = indexes
    return definition


def _queue_policy(resolved: Resolved, queue: QueueRef) -> dict[str, Any] | None:
    """Who may send to the queue: its subscribed topics and the rules that target it, nobody else."""
    topics = sorted({sub.topic.arn for sub in resolved.subscriptions if sub.queue == queue})
    rules = sorted({rule.arn for rule in resolved.rules.values() if queue in rule.targets})
    statements = [
        {
            "Sid": sid,
            "Effect": "Allow",
            "Principal": {"Service": principal},
            "Action": "sqs:SendMessage",
            "Resource": queue.arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": arns}},
        }
        for sid, principal, arns in (
            ("FromSnsTopics", "sns.amazonaws.com", topics),
            ("FromEventBridgeRules", "events.amazonaws.com", rules),
        )
        if arns
    ]
    if not statements:
        return None
    return {"Version": "2012-10-17", "Id": f"{queue.arn}/flotilla", "Statement": statements}


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def _get(call: Callable[[], Any]) -> Any:
    """The call's answer, or None when AWS says the resource does not exist."""
    try:
        return call()
    except ClientError as err:
        if _code(err) in _NOT_FOUND:
            return None
        raise


def _exists(call: Callable[[], Any]) -> bool:
    return _get(call) is not None


def _same(current: Any, wanted: str) -> bool:
    """Compare attribute values as AWS returns them: JSON documents by content, numbers as text."""
    if current == wanted:
        return True
    try:
        return bool(json.loads(str(current), parse_int=str) == json.loads(wanted, parse_int=str))
    except ValueError:
        return False


__all__ = [
    "Change",
    "ProvisionError",
    "provision",
    "queue_attributes",
    "subscription_attributes",
    "summary",
    "table_definition",
]
