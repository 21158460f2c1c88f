"""`flotilla iam-policy`: exactly the actions the spec implies, on exactly its ARNs."""

from __future__ import annotations

import json
from collections.abc import Callable

from click.testing import Result

from flotilla.resources import Place, parse_spec, resolve
from flotilla.resources.iam import policy_document

ARN = "arn:aws:{service}:eu-west-1:210987654321:{resource}"
CONSUME = [
    "sqs:ChangeMessageVisibility",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:GetQueueUrl",
    "sqs:ReceiveMessage",
]
READ = ["dynamodb:BatchGetItem", "dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:Query"]
WRITE = [
    "dynamodb:BatchWriteItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:DeleteItem",
    "dynamodb:DescribeTable",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
]


def _allow(sid: str, actions: list[str], resources: list[str]) -> dict[str, object]:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}


def test_sample_policy_is_exactly_this(aws_env: str, flotilla: Callable[..., Result]) -> None:
    result = flotilla(
        "iam-policy",
        "sample",
        "--account-id",
        "210987654321",
        "--env",
        "prod",
        "--region",
        "eu-west-1",
        "--ssm",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "Version": "2012-10-17",
        "Statement": [
            _allow("SnsPublish", ["sns:Publish"], [ARN.format(service="sns", resource="prod-sample-events")]),
            _allow(
                "EventsPutEvents",
                ["events:PutEvents"],
                [ARN.format(service="events", resource="event-bus/default")],
            ),
            _allow("SqsConsume", CONSUME, [ARN.format(service="sqs", resource="prod-sample-greetings")]),
            _allow(
                "DynamodbRead", READ, [ARN.format(service="dynamodb", resource="table/prod-sample-greetings")]
            ),
            _allow(
                "DynamodbWrite",
                WRITE,
                [ARN.format(service="dynamodb", resource="table/prod-sample-greetings")],
            ),
            _allow(
                "SsmGetParametersByPath",
                ["ssm:GetParametersByPath"],
                [
                    ARN.format(service="ssm", resource="parameter/flotilla/prod/sample"),
                    ARN.format(service="ssm", resource="parameter/flotilla/prod/sample/*"),
                ],
            ),
        ],
    }


def test_uses_grant_only_their_access_and_dlqs_rules_subscriptions_grant_nothing() -> None:
    spec = parse_spec(
        {
            "owns": {
                "topics": {"events": {}},
                "queues": {"inbox": {"deadLetter": {}, "subscriptions": [{"topic": "events"}]}},
                "tables": {
                    "ledger": {
                        "hashKey": {"name": "pk"},
                        "access": "read",
                        "globalSecondaryIndexes": [{"name": "by-day", "hashKey": {"name": "day"}}],
                    }
                },
                "rules": {"paid": {"pattern": {"source": ["x"]}, "targets": [{"queue": "inbox"}]}},
            },
            "uses": {
                "topics": ["orders/events.fifo"],
                "tables": [{"table": "orders/orders", "access": "write"}],
                "queues": [{"queue": "mail/outbox"}, {"queue": "audit/trail", "access": "send-consume"}],
            },
        }
    )
    document = policy_document(spec, resolve(spec, "billing", Place("dev", "eu-west-1", "210987654321")))
    sqs = ARN.format(service="sqs", resource="{}")
    assert document["Statement"] == [
        _allow(
            "SnsPublish",
            ["sns:Publish"],
            [
                ARN.format(service="sns", resource=name)
                for name in ("dev-billing-events", "dev-orders-events.fifo")
            ],
        ),
        _allow("SqsConsume", CONSUME, [sqs.format("dev-audit-trail"), sqs.format("dev-billing-inbox")]),
        _allow(
            "SqsSend",
            ["sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:SendMessage"],
            [sqs.format("dev-audit-trail"), sqs.format("dev-mail-outbox")],
        ),
        _allow("DynamodbRead", READ, [ARN.format(service="dynamodb", resource="table/dev-billing-ledger")]),
        _allow(
            "DynamodbQueryIndexes",
            ["dynamodb:Query"],
            [ARN.format(service="dynamodb", resource="table/dev-billing-ledger/index/*")],
        ),
        _allow("DynamodbWrite", WRITE, [ARN.format(service="dynamodb", resource="table/dev-orders-orders")]),
    ]


def test_account_id_must_be_twelve_digits(aws_env: str, flotilla: Callable[..., Result]) -> None:
    result = flotilla("iam-policy", "sample", "--account-id", "12345")
    assert (result.exit_code, result.stderr) == (
        2,
        "flotilla: --account-id must be 12 digits (got '12345')\n",
    )


def test_account_id_defaults_to_the_callers(aws_env: str, flotilla: Callable[..., Result]) -> None:
    result = flotilla("iam-policy", "sample")
    assert result.exit_code == 0, result.output
    assert f"arn:aws:sns:us-east-1:123456789012:{aws_env}-sample-events" in result.stdout
