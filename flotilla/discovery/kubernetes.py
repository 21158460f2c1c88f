"""Kubernetes DNS discovery: the Service's cluster name; kube-proxy or the mesh picks the pod."""

from __future__ import annotations

from collections.abc import Mapping


class KubernetesResolver:
    """``name`` -> ``http://name.<namespace>.svc.<cluster domain>:<port>``.

    No lookup happens here: cluster DNS resolves the name when httpx connects, and the Service's
    virtual IP (or the sidecar) spreads calls over ready pods, so there is nothing to cache.
    ``ports`` overrides the port of single services whose Service does not listen on ``port``.
    """

    def __init__(
        self,
        namespace: str,
        *,
        port: int = 80,
        cluster_domain: str = "cluster.local",
        ports: Mapping[str, int] | None = None,
        scheme: str = "http",
    ) -> None:
        self.namespace = namespace
        self.port = port
        self.cluster_domain = cluster_domain
        self.ports = dict(ports or {})
        self.scheme = scheme

    def resolve(self, name: str) -> str:
        port = self.ports.get(name, self.port)
        return f"{self.scheme}://{name}.{self.namespace}.svc.{self.cluster_domain}:{port}"
