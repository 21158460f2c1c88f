"""`helm uninstall` keeps the data: ACK's retain policy on every stateful object, and no uninstall that hangs.

ACK deletes the AWS resource when its Kubernetes object goes, unless the object says `services.k8s.aws/deletion-policy:
retain`. A table with deletion protection cannot be deleted at all, so under `delete` its object would wait on its
finalizer forever: such a table is always retained and helm never deletes its object (`helm.sh/resource-policy: keep`).
"""

from __future__ import annotations

from typing import Any

import pytest
from deploy_support import CELLS, HelmError, Renderer, find

POLICY = "services.k8s.aws/deletion-policy"
KEEP = "helm.sh/resource-policy"
STATEFUL = ("Queue", "Topic", "Table")


def _annotations(doc: dict[str, Any]) -> dict[str, str]:
    return doc["metadata"].get("annotations") or {}


def _stateful(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for kind in STATEFUL for d in find(docs, kind)]


def test_stateful_ack_objects_are_retained_by_default(renderer: Renderer) -> None:
    docs = renderer.render(CELLS["flotilla-service:consumer-ack"])
    stateful = _stateful(docs)
    assert {d["kind"] for d in stateful} == set(STATEFUL)
    assert len(find(docs, "Queue")) == 5, "queues and their dead-letter queues"
    for doc in stateful:
        assert _annotations(doc).get(POLICY) == "retain", f"{doc['kind']}/{doc['metadata']['name']}"
        assert KEEP not in _annotations(doc), (
            "staging tables have no deletion protection: helm may delete them"
        )
    # Wiring and permissions hold no data: they go with the release.
    for kind in ("Subscription", "Policy", "Role", "PodIdentityAssociation"):
        assert all(POLICY not in _annotations(d) for d in find(docs, kind)), kind


def test_delete_policy_when_asked(renderer: Renderer) -> None:
    docs = renderer.render(CELLS["flotilla-service:consumer-ack"], "1.35", ["ack.deletionPolicy=delete"])
    assert {_annotations(d)[POLICY] for d in _stateful(docs)} == {"delete"}


@pytest.mark.parametrize("sets", [(), ("cart.ack.deletionPolicy=delete",)], ids=["default", "delete-asked"])
def test_a_protected_table_never_hangs_an_uninstall(renderer: Renderer, sets: tuple[str, ...]) -> None:
    docs = renderer.render(CELLS["flotilla:eks"], "1.35", sets)
    (table,) = find(docs, "Table")
    assert table["spec"]["deletionProtectionEnabled"] is True
    assert _annotations(table)[POLICY] == "retain", "ACK must not try a DeleteTable that AWS refuses"
    assert _annotations(table)[KEEP] == "keep", "helm leaves the object: the table stays under ACK"


def test_every_protected_table_of_the_matrix_is_retained_and_kept(renderer: Renderer) -> None:
    tables = [t for cell in CELLS.values() for t in find(renderer.render(cell), "Table")]
    protected = [t for t in tables if t["spec"].get("deletionProtectionEnabled")]
    assert protected and len(protected) < len(tables)
    for table in protected:
        assert (_annotations(table)[POLICY], _annotations(table)[KEEP]) == ("retain", "keep")
    for table in tables:
        assert _annotations(table)[POLICY] in ("retain", "delete")


def test_schema_takes_only_ack_deletion_policies(renderer: Renderer) -> None:
    with pytest.raises(HelmError, match="/ack/deletionPolicy"):
        renderer.render(CELLS["flotilla-service:consumer-ack"], "1.35", ["ack.deletionPolicy=orphan"])
