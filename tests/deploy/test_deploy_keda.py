"""KEDA reads the consumer's queue under every IAM mode, as KEDA's `aws` provider resolves the identity.

`identityOwner: workload` makes KEDA take the role from the ServiceAccount's IRSA annotation
(`eks.amazonaws.com/role-arn`) and assume it; EKS Pod Identity sets no annotation, so there KEDA must own the
identity and be told the role (`roleArn`). The two fields exclude each other (KEDA's webhook refuses both).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from deploy_support import CELLS, CrdIndex, HelmError, Renderer, one

CONSUMER = CELLS["flotilla-service:consumer-ack"]
SERVICE_ROLE = "arn:aws:iam::123456789012:role/flotilla-staging-notifications"
BROUGHT_ROLE = "arn:aws:iam::123456789012:role/notifications"
KEDA_ROLE = "arn:aws:iam::123456789012:role/keda-operator"
IRSA_ANNOTATION = "eks.amazonaws.com/role-arn"
MODES = {
    "podIdentity": (),
    "irsa": ("iam.mode=irsa", f"iam.roleArn={BROUGHT_ROLE}", "ack.iam.createRole=false"),
    "none": ("iam.mode=none", "ack.iam.createRole=false"),
}


def keda_role(docs: list[dict[str, Any]]) -> str:
    """The role KEDA's operator reads the queue with, resolved as KEDA's aws provider does ("" = its own)."""
    identity = one(docs, "TriggerAuthentication")["spec"]["podIdentity"]
    assert identity["provider"] == "aws", "aws-eks is IRSA-only and deprecated"
    assert not (identity.get("roleArn") and identity.get("identityOwner") == "workload"), "mutually exclusive"
    if identity.get("identityOwner") == "workload":
        annotations = one(docs, "ServiceAccount")["metadata"].get("annotations") or {}
        assert IRSA_ANNOTATION in annotations, "KEDA finds no role: the ServiceAccount has no IRSA annotation"
        return str(annotations[IRSA_ANNOTATION])
    return str(identity.get("roleArn", ""))


@pytest.mark.parametrize("mode", list(MODES))
def test_keda_reads_the_queue_with_the_right_identity(
    renderer: Renderer, crds: CrdIndex | None, mode: str
) -> None:
    docs = renderer.render(CONSUMER, "1.35", MODES[mode])
    auth = one(docs, "TriggerAuthentication")
    if crds is not None:
        assert crds.validate(auth) == []
    expected = {"podIdentity": SERVICE_ROLE, "irsa": BROUGHT_ROLE, "none": ""}[mode]
    assert keda_role(docs) == expected
    so = one(docs, "ScaledObject")
    assert so["spec"]["triggers"][0]["authenticationRef"] == {"name": auth["metadata"]["name"]}


def test_under_pod_identity_keda_owns_the_identity_and_the_role_trusts_it(renderer: Renderer) -> None:
    docs = renderer.render(CONSUMER)
    assert one(docs, "TriggerAuthentication")["spec"]["podIdentity"] == {
        "provider": "aws",
        "roleArn": SERVICE_ROLE,
    }
    assert one(docs, "PodIdentityAssociation")["spec"]["roleRef"] == {"from": {"name": "notifications"}}
    trust = json.loads(one(docs, "Role", "notifications")["spec"]["assumeRolePolicyDocument"])
    principals = [s["Principal"] for s in trust["Statement"]]
    assert {"Service": "pods.eks.amazonaws.com"} in principals, "the pods, through Pod Identity"
    assert {"AWS": KEDA_ROLE} in principals, "the KEDA operator, which assumes the role to read the queue"


def test_workload_identity_under_pod_identity_is_refused(renderer: Renderer) -> None:
    with pytest.raises(HelmError, match=r"keda\.identityOwner workload needs iam\.mode irsa"):
        renderer.render(CONSUMER, "1.35", ["keda.identityOwner=workload"])


def test_keda_may_read_the_queue_as_itself(renderer: Renderer) -> None:
    docs = renderer.render(CONSUMER, "1.35", ["keda.identityOwner=keda"])
    assert one(docs, "TriggerAuthentication")["spec"]["podIdentity"] == {
        "provider": "aws",
        "identityOwner": "keda",
    }
    trust = json.loads(one(docs, "Role", "notifications")["spec"]["assumeRolePolicyDocument"])
    assert [s["Principal"] for s in trust["Statement"]] == [{"Service": "pods.eks.amazonaws.com"}]


def test_a_created_role_needs_the_operator_role_to_trust(renderer: Renderer) -> None:
    with pytest.raises(HelmError, match=r"keda\.operatorRoleArn .* is required with ack\.iam\.createRole"):
        renderer.render(CONSUMER, "1.35", ["keda.operatorRoleArn="])
