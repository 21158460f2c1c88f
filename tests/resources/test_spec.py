"""The resources spec: the sample loads, names follow the rule, bad files fail with one line per problem."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from flotilla.resources import Place, SpecError, load_spec, parse_spec, resolve
from tests.support import ROOT

SAMPLE = ROOT / "services" / "sample" / "resources.yaml"


def test_sample_spec_resolves_to_env_prefixed_names() -> None:
    resolved = resolve(load_spec(SAMPLE), "sample", Place("prod", "eu-west-1", "123456789012"))
    assert resolved.topics["events"].arn == "arn:aws:sns:eu-west-1:123456789012:prod-sample-events"
    assert resolved.queues["greetings"].name == "prod-sample-greetings"
    assert resolved.dead_letters["greetings"].name == "prod-sample-greetings-dlq"
    assert (
        resolved.tables["greetings"].arn
        == "arn:aws:dynamodb:eu-west-1:123456789012:table/prod-sample-greetings"
    )
    assert resolved.bus("default").arn == "arn:aws:events:eu-west-1:123456789012:event-bus/default"


def test_fifo_names_partitions_and_foreign_references() -> None:
    spec = parse_spec(
        {
            "owns": {
                "topics": {"ledger": {"fifo": True}},
                "queues": {
                    "ledger": {"fifo": True, "deadLetter": {}, "subscriptions": [{"topic": "ledger"}]}
                },
            },
            "uses": {"topics": ["orders/events.fifo"]},
        }
    )
    resolved = resolve(spec, "billing", Place("dev", "cn-north-1", "123456789012"))
    assert (
        resolved.dead_letters["ledger"].arn
        == "arn:aws-cn:sqs:cn-north-1:123456789012:dev-billing-ledger-dlq.fifo"
    )
    assert resolved.topic("orders/events.fifo").name == "dev-orders-events.fifo"


@pytest.mark.parametrize(
    ("doc", "problems"),
    [
        (
            {"owns": {"queues": {"q": {"deadLetter": {"maxReceiveCount": 5000}}}}},
            ["owns.queues.q.deadLetter.maxReceiveCount: Input should be less than or equal to 1000"],
        ),
        (
            {"owns": {"queues": {"q": {"visibilityTimeout": 30}}}},
            ["owns.queues.q.visibilityTimeout: unknown key (check the spelling against docs/resources.md)"],
        ),
        (
            {"owns": {"queues": {"q": {"subscriptions": [{"topic": "missing"}]}}}},
            ["owns.queues.q.subscriptions[0].topic: no topic 'missing' under owns.topics"],
        ),
        (
            {
                "owns": {
                    "topics": {"t": {}},
                    "queues": {"q": {"fifo": True, "subscriptions": [{"topic": "t"}]}},
                    "tables": {"x": {"hashKey": {"name": "pk"}, "billingMode": "PROVISIONED"}},
                }
            },
            [
                "owns.queues.q.subscriptions[0].topic: a FIFO queue can only subscribe to a FIFO topic",
                "owns.tables.x.readCapacity: required with billingMode PROVISIONED",
                "owns.tables.x.writeCapacity: required with billingMode PROVISIONED",
            ],
        ),
        (
            {
                "owns": {
                    "rules": {"r": {"bus": "nope", "pattern": {"source": ["a"]}, "targets": [{"queue": "q"}]}}
                }
            },
            [
                "owns.rules.r.bus: no bus 'nope' under owns.buses (or use 'default')",
                "owns.rules.r.targets[0].queue: no queue 'q' under owns.queues",
            ],
        ),
        ({"uses": {"topics": ["events"]}}, ["uses.topics[0]: String should match pattern"]),
    ],
)
def test_each_problem_is_one_line_with_its_path(doc: object, problems: list[str]) -> None:
    with pytest.raises(SpecError) as err:
        parse_spec(doc, "r.yaml")
    assert len(err.value.problems) == len(problems)
    for line, expected in zip(err.value.problems, problems, strict=True):
        assert line.startswith(f"r.yaml: {expected}")


def test_names_too_long_for_aws_are_caught_once_the_env_is_known() -> None:
    spec = parse_spec({"owns": {"queues": {"a" * 40: {"deadLetter": {}}}}})
    with pytest.raises(SpecError, match=r"owns.queues.a+.deadLetter: physical name .* longer than 80"):
        resolve(spec, "a-rather-long-service-name-indeed", Place("staging", "us-east-1", "123456789012"))


def test_duplicate_keys_and_broken_yaml_are_errors(tmp_path: Path) -> None:
    duplicate = tmp_path / "dup.yaml"
    duplicate.write_text("owns:\n  queues: {}\n  queues: {}\n")
    with pytest.raises(SpecError, match=r"dup.yaml:3:3: not valid YAML: duplicate key 'queues'"):
        load_spec(duplicate)
    broken = tmp_path / "broken.yaml"
    broken.write_text("owns: [\n")
    with pytest.raises(SpecError, match=r"broken.yaml:2:1: not valid YAML"):
        load_spec(broken)


def test_cli_reports_a_bad_spec_in_one_line_and_exits_2(
    aws_env: str, flotilla: Callable[..., Result], tmp_path: Path
) -> None:
    spec = tmp_path / "resources.yaml"
    spec.write_text("owns:\n  queues:\n    Greetings: {}\n")
    for command in ("provision", "iam-policy"):
        result = flotilla(command, "sample", "--file", str(spec))
        assert result.exit_code == 2
        assert result.stdout == ""
        assert result.stderr.count("\n") == 1
        assert result.stderr.startswith(
            f"flotilla: {spec}: owns.queues.Greetings: bad name: String should match pattern"
        )
