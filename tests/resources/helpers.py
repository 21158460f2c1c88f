"""Small helpers shared by the tests that read what landed in a moto queue."""

from __future__ import annotations

import json
import time
from typing import Any


def drain(sqs: Any, url: str, expect: int, settle: float = 0.5, timeout: float = 5.0) -> list[Any]:
    """JSON bodies received until ``expect`` came, then ``settle`` s more for strays."""
    return [json.loads(message["Body"]) for message in receive(sqs, url, expect, settle, timeout)]


def receive(
    sqs: Any, url: str, expect: int, settle: float = 0.5, timeout: float = 5.0
) -> list[dict[str, Any]]:
    """Raw SQS messages (with all message attributes), deleted as they are read."""
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, MessageAttributeNames=["All"]
        )
        for message in answer.get("Messages", []):
            messages.append(message)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        if len(messages) >= expect and deadline - time.monotonic() > settle:
            deadline = time.monotonic() + settle
        time.sleep(0.05)
    return messages
