"""Each backend fixture gives a working, throwaway server."""

from __future__ import annotations

import uuid

import pytest

pytestmark = pytest.mark.slow


def test_postgres_url_accepts_queries(postgres_url: str) -> None:
    psycopg = pytest.importorskip("psycopg")
    with psycopg.connect(postgres_url, connect_timeout=5) as conn:
        conn.execute("CREATE TEMP TABLE probe (id int)")
        conn.execute("INSERT INTO probe VALUES (42)")
        assert conn.execute("SELECT id FROM probe").fetchone() == (42,)


def test_redis_url_stores_and_reads(redis_url: str) -> None:
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    key = f"probe:{uuid.uuid4()}"
    client.set(key, "ok", ex=60)
    assert client.get(key) == b"ok"
    assert client.config_get("save") == {"save": ""}


def test_aws_endpoint_serves_s3_and_sqs(aws_endpoint: str) -> None:
    import boto3

    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    s3 = session.client("s3", endpoint_url=aws_endpoint)
    bucket = f"probe-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
    sqs = session.client("sqs", endpoint_url=aws_endpoint)
    queue = sqs.create_queue(QueueName=bucket)["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody="hello")
    assert sqs.receive_message(QueueUrl=queue)["Messages"][0]["Body"] == "hello"
