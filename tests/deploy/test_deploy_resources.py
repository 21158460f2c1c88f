"""One resources spec, one truth: the chart's ACK objects are what `flotilla provision` and `iam-policy` make.

Every services/*/resources.yaml (and the richer spec in values/service-consumer.yaml) is passed unchanged as the
service chart's `awsResources`; the rendered names, attributes and IAM document are compared with
flotilla.resources called in-process, and every ACK object is validated against its CRD. The store chart gets
its services' specs from the generated values-resources.yaml, checked here to be current.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import (
    REPO,
    SERVICE_CHART,
    STORE_CHART,
    VALUES,
    Cell,
    CrdIndex,
    Renderer,
    find,
    one,
    validate_core,
)

from flotilla.resources.helm import STORE_VALUES_FILE, dump_values, render_store_values, update_chart_schema
from flotilla.resources.iam import policy_document
from flotilla.resources.naming import Place, Resolved, resolve
from flotilla.resources.provision import (  # the code provision runs
    queue_attributes,
    subscription_attributes,
    table_definition,
)
from flotilla.resources.spec import ResourcesSpec, parse_spec

Doc = dict[str, Any]
ACCOUNT = "123456789012"
SERVICES = REPO / "services"
ACK_GROUPS = (
    "sqs.services.k8s.aws",
    "sns.services.k8s.aws",
    "dynamodb.services.k8s.aws",
    "iam.services.k8s.aws",
)


def _cases() -> list[Any]:
    """(service, place, ssm, spec document): every service spec in the repository, plus the feature-rich one."""
    cases = [
        pytest.param(
            path.parent.name,
            "prod",
            "eu-west-1",
            False,
            yaml.safe_load(path.read_text()),
            id=path.parent.name,
        )
        for path in sorted(SERVICES.glob("*/resources.yaml"))
    ]
    consumer = yaml.safe_load((VALUES / "service-consumer.yaml").read_text())
    cases.append(
        pytest.param("notifications", "staging", "eu-west-1", True, consumer["awsResources"], id="consumer")
    )
    sample = yaml.safe_load((SERVICES / "sample" / "resources.yaml").read_text())
    cases.append(pytest.param("sample", "dev", "cn-north-1", True, sample, id="sample-aws-cn"))
    return cases


def _render(
    renderer: Renderer, tmp: Path, service: str, env: str, region: str, ssm: bool, doc: Doc
) -> list[Doc]:
    values = tmp / f"{service}-{env}-{region}.yaml"
    values.write_text(
        dump_values(
            {
                "serviceName": service,
                "environment": env,
                "aws": {"region": region, "accountId": ACCOUNT},
                "ssmEnabled": ssm,
                "ack": {"enabled": True},
                "awsResources": doc,
            }
        )
    )
    return renderer.render(Cell(SERVICE_CHART, f"resources-{service}", (str(values),), release="svc"))


def _camel(node: Any) -> Any:
    """boto3 argument names to ACK field names: KeySchema -> keySchema, recursively."""
    if isinstance(node, dict):
        return {key[0].lower() + key[1:]: _camel(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_camel(item) for item in node]
    return node


def _json_fields(spec: Doc, *names: str) -> Doc:
    return {k: (json.loads(v) if k in names else v) for k, v in spec.items()}


def assert_matches_chassis(docs: list[Doc], spec: ResourcesSpec, resolved: Resolved, ssm: bool) -> None:
    """The ACK objects in docs are exactly what flotilla provision / iam-policy produce for spec in place."""
    ours = [d for d in docs if d["apiVersion"].split("/")[0] in ACK_GROUPS]
    queues = {d["spec"]["queueName"]: d["spec"] for d in find(ours, "Queue")}
    expected_queues = {q.name for q in resolved.queues.values()} | {
        q.name for q in resolved.dead_letters.values()
    }
    assert set(queues) == expected_queues
    for name, queue in spec.owns.queues.items():
        got = _json_fields(queues[resolved.queues[name].name], "redrivePolicy", "policy")
        attributes = queue_attributes(resolved, name, queue)  # what provision sets on the queue
        want = _json_fields(_camel(attributes), "redrivePolicy", "policy")
        if queue.fifo:
            want["fifoQueue"] = "true"
        assert {k: got.get(k) for k in want} == want, name
        assert set(got) - set(want) <= {"queueName", "sqsManagedSSEEnabled", "tags"}, name
        if queue.dead_letter is not None:
            dlq = queues[resolved.dead_letters[name].name]
            assert dlq["messageRetentionPeriod"] == str(queue.dead_letter.message_retention_seconds)
            assert dlq.get("fifoQueue") == ("true" if queue.fifo else None)

    topics = {d["spec"]["name"]: d["spec"] for d in find(ours, "Topic")}
    assert set(topics) == {t.name for t in resolved.topics.values()}
    for name, topic in spec.owns.topics.items():
        got = topics[resolved.topics[name].name]
        want = {
            "FifoTopic": "true",
            "ContentBasedDeduplication": str(topic.content_based_deduplication).lower(),
        }
        assert {k: got.get(k) for k in ("fifoTopic", "contentBasedDeduplication")} == (
            _camel(want) if topic.fifo else {"fifoTopic": None, "contentBasedDeduplication": None}
        )

    subscriptions = {
        (d["spec"]["topicARN"], d["spec"]["endpoint"]): d["spec"] for d in find(ours, "Subscription")
    }
    expected_subs = {}
    for name, queue in spec.owns.queues.items():
        for sub in queue.subscriptions:
            key = (resolved.topic(sub.topic).arn, resolved.queues[name].arn)
            attrs = subscription_attributes(
                sub.raw_message_delivery, sub.filter_policy, sub.filter_policy_scope
            )
            expected_subs[key] = {"protocol": "sqs", **_json_fields(_camel(attrs), "filterPolicy")}
    assert set(subscriptions) == set(expected_subs)
    for key, want in expected_subs.items():
        got = _json_fields(subscriptions[key], "filterPolicy")
        assert {k: got.get(k) for k in want} == want, key

    tables = {d["spec"]["tableName"]: d["spec"] for d in find(ours, "Table")}
    assert set(tables) == {t.name for t in resolved.tables.values()}
    for name, table in spec.owns.tables.items():
        got = tables[resolved.tables[name].name]
        want = _camel(table_definition(table))  # CreateTable's arguments, as provision calls it
        assert {k: got.get(k) for k in want} == want, name
        ttl = {"attributeName": table.ttl_attribute, "enabled": True} if table.ttl_attribute else None
        assert got.get("timeToLive") == ttl

    document = policy_document(spec, resolved, ssm_enabled=ssm)
    policies = find(docs, "Policy")
    if document["Statement"]:
        assert json.loads(one(docs, "Policy")["spec"]["policyDocument"]) == document
    else:
        assert not policies
    groups = {d["apiVersion"].split("/")[0] for d in docs if d["apiVersion"].endswith(".aws/v1alpha1")}
    assert not any(g.startswith("eventbridge") for g in groups), "buses and rules: flotilla provision"


def assert_valid(docs: list[Doc], crds: CrdIndex | None) -> None:
    errors = []
    for doc in docs:
        found = validate_core(doc, "1.35")
        if found is None and crds is not None:
            found = crds.validate(doc)
            assert found is not None, f"{doc['apiVersion']} {doc['kind']}: no CRD"
        errors += found or []
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize(("service", "env", "region", "ssm", "doc"), _cases())
def test_ack_resources_are_what_the_chassis_provisions(
    renderer: Renderer,
    crds: CrdIndex | None,
    tmp_path: Path,
    service: str,
    env: str,
    region: str,
    ssm: bool,
    doc: Doc,
) -> None:
    spec = parse_spec(doc)
    resolved = resolve(spec, service, Place(env, region, ACCOUNT))
    docs = _render(renderer, tmp_path, service, env, region, ssm, doc)
    assert_matches_chassis(docs, spec, resolved, ssm)
    assert_valid([d for d in docs if d["apiVersion"].split("/")[0] in ACK_GROUPS], crds)
    if crds is None:
        pytest.skip("FLOTILLA_CRDS_DIR unset: ACK objects not validated against their CRDs")


def test_chart_schema_is_generated_from_the_spec_models() -> None:
    """awsResources in values.schema.json is ResourcesSpec's schema: a typo fails helm as it fails provision."""
    assert (SERVICE_CHART / "values.schema.json").read_text() == update_chart_schema(SERVICE_CHART), (
        "run: python -m flotilla.resources.helm schema charts/flotilla-service"
    )


def test_schema_rejects_a_spec_typo(renderer: Renderer, tmp_path: Path) -> None:
    from deploy_support import HelmError

    values = tmp_path / "typo.yaml"
    values.write_text(yaml.safe_dump({"awsResources": {"owns": {"queues": {"jobs": {"deadLeter": {}}}}}}))
    with pytest.raises(HelmError, match="deadLeter"):
        renderer.render(Cell(SERVICE_CHART, "typo", (str(values),), release="svc"))


def test_store_values_are_generated_from_the_service_specs() -> None:
    assert (STORE_CHART / STORE_VALUES_FILE).read_text() == render_store_values(STORE_CHART, SERVICES), (
        "run: python -m flotilla.resources.helm store charts/flotilla"
    )


def test_store_wires_each_service_spec(renderer: Renderer, crds: CrdIndex | None, tmp_path: Path) -> None:
    """A service of the store with a resources.yaml gets its ACK objects from that file and nothing else."""
    services = tmp_path / "services"
    (services / "cart").mkdir(parents=True)
    specs = {"cart": (SERVICES / "sample" / "resources.yaml").read_text()}
    for path in sorted(SERVICES.glob("*/resources.yaml")):
        specs.setdefault(path.parent.name, path.read_text())
    for name, text in specs.items():
        (services / name).mkdir(exist_ok=True)
        (services / name / "resources.yaml").write_text(text)
    generated = tmp_path / STORE_VALUES_FILE
    generated.write_text(render_store_values(STORE_CHART, services))
    ack = tmp_path / "ack.yaml"
    store = yaml.safe_load((STORE_CHART / "values.yaml").read_text())
    aliases = [a for a, v in store.items() if isinstance(v, dict) and "serviceName" in v]
    ack.write_text(
        dump_values({a: {"ack": {"enabled": True}, "aws": {"accountId": ACCOUNT}} for a in aliases})
    )
    docs = renderer.render(
        Cell(STORE_CHART, "resources", (str(STORE_CHART / "values-eks.yaml"), str(generated), str(ack)))
    )
    assert_valid([d for d in docs if d["apiVersion"].split("/")[0] in ACK_GROUPS], crds)
    for alias in aliases:
        name = store[alias]["serviceName"]
        mine = [d for d in docs if d["metadata"].get("labels", {}).get("app.kubernetes.io/name") == name]
        path = services / name / "resources.yaml"
        spec = parse_spec(yaml.safe_load(path.read_text()) if path.exists() else {})
        resolved = resolve(spec, name, Place("prod", "eu-west-1", ACCOUNT))
        ssm = bool(
            yaml.safe_load((STORE_CHART / "values-eks.yaml").read_text()).get(alias, {}).get("ssmEnabled")
        )
        assert_matches_chassis(mine, spec, resolved, ssm)
    assert find(docs, "Table"), "cart's table reached the store through values-resources.yaml"
