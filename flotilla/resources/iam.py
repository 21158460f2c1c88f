"""The least-privilege IAM policy a service needs at run time, derived from its resources spec.

Only the actions the spec implies, on exactly the ARNs it names: a service that only publishes
to a topic gets ``sns:Publish`` on that topic and nothing else. Creating resources is not the
service's job (``flotilla provision`` or ACK do it with their own credentials), so no ``Create*``
action ever appears here. The table of what each entry grants is in ``docs/resources.md``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from flotilla.resources.naming import Resolved
from flotilla.resources.spec import QueueAccess, ResourcesSpec, TableAccess

# (statement id, actions), keyed by what the spec says the service does.
SNS_PUBLISH = ("SnsPublish", ("sns:Publish",))
EVENTS_PUT = ("EventsPutEvents", ("events:PutEvents",))
SQS_CONSUME = (
    "SqsConsume",
    (
        "sqs:ChangeMessageVisibility",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
        "sqs:ReceiveMessage",
    ),
)
SQS_SEND = ("SqsSend", ("sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:SendMessage"))
DYNAMODB_READ = (
    "DynamodbRead",
    ("dynamodb:BatchGetItem", "dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:Query"),
)
DYNAMODB_QUERY_INDEXES = ("DynamodbQueryIndexes", ("dynamodb:Query",))
DYNAMODB_WRITE = (
    "DynamodbWrite",
    (
        "dynamodb:BatchWriteItem",
        "dynamodb:ConditionCheckItem",
        "dynamodb:DeleteItem",
        "dynamodb:DescribeTable",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
    ),
)
SSM_READ = ("SsmGetParametersByPath", ("ssm:GetParametersByPath",))

_Grant = tuple[str, tuple[str, ...]]
_ORDER = [
    SNS_PUBLISH,
    EVENTS_PUT,
    SQS_CONSUME,
    SQS_SEND,
    DYNAMODB_READ,
    DYNAMODB_QUERY_INDEXES,
    DYNAMODB_WRITE,
]


def policy_document(spec: ResourcesSpec, resolved: Resolved, *, ssm_enabled: bool = False) -> dict[str, Any]:
    """The IAM policy document (``Version`` 2012-10-17) for the service ``resolved`` was made for.

    Statements come in a fixed order with sorted actions and resources, so the output diffs
    cleanly between versions and a test can assert the whole document.
    """
    grants: dict[_Grant, set[str]] = defaultdict(set)
    for topic in resolved.topics.values():
        grants[SNS_PUBLISH].add(topic.arn)
    for reference in spec.uses.topics:
        grants[SNS_PUBLISH].add(resolved.topic(reference).arn)
    for bus in resolved.buses.values():
        grants[EVENTS_PUT].add(bus.arn)
    for reference in spec.uses.buses:
        grants[EVENTS_PUT].add(resolved.bus(reference).arn)
    for name, queue in spec.owns.queues.items():
        _queue_grants(grants, queue.access, resolved.queues[name].arn)
    for use in spec.uses.queues:
        _queue_grants(grants, use.access, resolved.queue(use.queue).arn)
    for name, table in spec.owns.tables.items():
        _table_grants(grants, table.access, resolved.tables[name].arn, bool(table.global_secondary_indexes))
    for table_use in spec.uses.tables:
        # Another service's indexes are not visible from here: allow Query on any of that table's.
        _table_grants(grants, table_use.access, resolved.table(table_use.table).arn, True)

    statements = [
        _statement(sid, actions, grants[(sid, actions)])
        for sid, actions in _ORDER
        if grants.get((sid, actions))
    ]
    if ssm_enabled:
        place = resolved.place
        path = place.arn("ssm", f"parameter/flotilla/{place.env}/{resolved.service}")
        statements.append(_statement(*SSM_READ, {path, f"{path}/*"}))
    return {"Version": "2012-10-17", "Statement": statements}


def _queue_grants(grants: dict[_Grant, set[str]], access: QueueAccess, arn: str) -> None:
    if access in ("consume", "send-consume"):
        grants[SQS_CONSUME].add(arn)
    if access in ("send", "send-consume"):
        grants[SQS_SEND].add(arn)


def _table_grants(grants: dict[_Grant, set[str]], access: TableAccess, arn: str, indexes: bool) -> None:
    if access in ("read", "readwrite"):
        grants[DYNAMODB_READ].add(arn)
        if indexes:
            grants[DYNAMODB_QUERY_INDEXES].add(f"{arn}/index/*")
    if access in ("write", "readwrite"):
        grants[DYNAMODB_WRITE].add(arn)


def _statement(sid: str, actions: tuple[str, ...], resources: set[str]) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": sorted(actions), "Resource": sorted(resources)}
