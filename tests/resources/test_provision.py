"""`flotilla provision` against a real moto server: idempotent, complete, and honest about changes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import Result

from tests.resources.helpers import drain
from tests.support import ROOT

ACCOUNT = "123456789012"  # moto's account


def test_sample_twice_second_run_changes_nothing(
    aws_env: str, aws: Callable[[str], Any], flotilla: Callable[..., Result]
) -> None:
    env = aws_env
    first = flotilla("provision", "sample")
    assert first.exit_code == 0, first.output
    lines = first.output.splitlines()
    assert lines[1:] == [
        f"created      sns topic         {env}-sample-events",
        f"created      sqs queue         {env}-sample-greetings-dlq",
        f"created      sqs queue         {env}-sample-greetings",
        f"created      sns subscription  {env}-sample-events -> {env}-sample-greetings",
        f"created      dynamodb table    {env}-sample-greetings  (ttl expires_at)",
        "5 created",
    ]

    second = flotilla("provision", "sample")
    assert second.exit_code == 0, second.output
    assert second.output.splitlines()[-1] == "nothing to change (5 kept)"
    assert all(line.startswith("kept") for line in second.output.splitlines()[1:-1])

    sqs = aws("sqs")
    url = sqs.get_queue_url(QueueName=f"{env}-sample-greetings")["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": f"arn:aws:sqs:us-east-1:{ACCOUNT}:{env}-sample-greetings-dlq",
        "maxReceiveCount": 5,
    }
    policy = json.loads(attributes["Policy"])
    assert policy["Statement"] == [
        {
            "Sid": "FromSnsTopics",
            "Effect": "Allow",
            "Principal": {"Service": "sns.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": f"arn:aws:sqs:us-east-1:{ACCOUNT}:{env}-sample-greetings",
            "Condition": {
                "ArnEquals": {"aws:SourceArn": [f"arn:aws:sns:us-east-1:{ACCOUNT}:{env}-sample-events"]}
            },
        }
    ]
    sns = aws("sns")
    topic_arn = f"arn:aws:sns:us-east-1:{ACCOUNT}:{env}-sample-events"
    (subscription,) = sns.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]
    sub_attributes = sns.get_subscription_attributes(SubscriptionArn=subscription["SubscriptionArn"])[
        "Attributes"
    ]
    assert json.loads(sub_attributes["FilterPolicy"]) == {"type": ["greeting.requested"]}
    assert sub_attributes["RawMessageDelivery"] == "true"
    ttl = aws("dynamodb").describe_time_to_live(TableName=f"{env}-sample-greetings")["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires_at")


def test_a_changed_spec_updates_only_what_differs(
    aws_env: str, aws: Callable[[str], Any], flotilla: Callable[..., Result], tmp_path: Path
) -> None:
    spec = (ROOT / "services" / "sample" / "resources.yaml").read_text()
    assert flotilla("provision", "sample").exit_code == 0
    changed = tmp_path / "resources.yaml"
    changed.write_text(
        spec.replace("visibilityTimeoutSeconds: 30", "visibilityTimeoutSeconds: 90").replace(
            "type: [greeting.requested]", "type: [greeting.requested, greeting.sent]"
        )
    )
    result = flotilla("provision", "sample", "--file", str(changed))
    assert result.exit_code == 0, result.output
    env = aws_env
    assert f"updated      sqs queue         {env}-sample-greetings  (VisibilityTimeout)" in result.output
    assert "FilterPolicy)" in result.output
    assert result.output.splitlines()[-1] == "2 updated, 3 kept"
    url = aws("sqs").get_queue_url(QueueName=f"{env}-sample-greetings")["QueueUrl"]
    assert aws("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])[
        "Attributes"
    ] == {"VisibilityTimeout": "90"}


def test_dry_run_changes_nothing(
    aws_env: str, aws: Callable[[str], Any], flotilla: Callable[..., Result]
) -> None:
    result = flotilla("provision", "sample", "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "5 would create"
    queues = aws("sqs").list_queues(QueueNamePrefix=f"{aws_env}-").get("QueueUrls", [])
    assert queues == []


def test_sns_fan_out_honours_the_filter_policy(
    aws_env: str, aws: Callable[[str], Any], flotilla: Callable[..., Result]
) -> None:
    assert flotilla("provision", "sample").exit_code == 0
    sns, sqs = aws("sns"), aws("sqs")
    topic_arn = f"arn:aws:sns:us-east-1:{ACCOUNT}:{aws_env}-sample-events"
    for kind in ("greeting.requested", "greeting.sent"):
        sns.publish(
            TopicArn=topic_arn,
            Message=json.dumps({"kind": kind}),
            MessageAttributes={"type": {"DataType": "String", "StringValue": kind}},
        )
    url = sqs.get_queue_url(QueueName=f"{aws_env}-sample-greetings")["QueueUrl"]
    bodies = drain(sqs, url, expect=1)
    assert bodies == [{"kind": "greeting.requested"}]  # raw delivery: the body is the message itself


def test_eventbridge_rule_delivers_to_the_queue(
    aws_env: str, aws: Callable[[str], Any], flotilla: Callable[..., Result], tmp_path: Path
) -> None:
    spec = tmp_path / "resources.yaml"
    spec.write_text(
        """
owns:
  buses:
    domain: {}
  queues:
    orders: {}
  rules:
    order-placed:
      bus: domain
      pattern: {source: [flotilla.orders], detail-type: [order.placed]}
      targets: [{queue: orders}]
"""
    )
    first = flotilla("provision", "sample", "--file", str(spec))
    assert first.exit_code == 0, first.output
    bus = f"{aws_env}-sample-domain"
    assert (
        f"created      event rule        {aws_env}-sample-order-placed  (on {bus} -> orders)" in first.output
    )
    assert (
        flotilla("provision", "sample", "--file", str(spec)).output.splitlines()[-1]
        == "nothing to change (3 kept)"
    )

    events, sqs = aws("events"), aws("sqs")
    for detail_type in ("order.placed", "order.cancelled"):
        events.put_events(
            Entries=[
                {
                    "Source": "flotilla.orders",
                    "DetailType": detail_type,
                    "Detail": '{"n": 1}',
                    "EventBusName": bus,
                }
            ]
        )
    url = sqs.get_queue_url(QueueName=f"{aws_env}-sample-orders")["QueueUrl"]
    (body,) = drain(sqs, url, expect=1)
    assert (body["detail-type"], body["detail"]) == ("order.placed", {"n": 1})
    policy = json.loads(
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])["Attributes"]["Policy"]
    )
    assert policy["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"] == [
        f"arn:aws:events:us-east-1:{ACCOUNT}:rule/{bus}/{aws_env}-sample-order-placed"
    ]


def test_subscribing_to_a_topic_nobody_created_fails_with_one_line(
    aws_env: str, flotilla: Callable[..., Result], tmp_path: Path
) -> None:
    spec = tmp_path / "resources.yaml"
    spec.write_text("owns:\n  queues:\n    orders:\n      subscriptions: [{topic: orders/events}]\n")
    result = flotilla("provision", "sample", "--file", str(spec))
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"flotilla: topic arn:aws:sns:us-east-1:{ACCOUNT}:{aws_env}-orders-events does not exist: "
        "provision the service that owns it first"
    )
