"""Messaging between services: the CloudEvents envelope, SNS/EventBridge publishers, SQS consumers.

Each piece is its own module and usable alone: ``flotilla.messaging.envelope`` is pure (no AWS
calls), ``flotilla.messaging.publishers`` needs boto3 clients. This package imports nothing heavy
itself, so ``from flotilla.messaging.envelope import parse_body`` stays cheap.
"""
