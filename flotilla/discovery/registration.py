"""Self-registration in AWS Cloud Map: register at start, report health, deregister at shutdown.

For places with no controller doing it (the local stack against the emulator, plain EC2); on EKS
the Cloud Map controller or the mesh registers pods instead. Plain start/stop methods, so a
gunicorn hook (``when_ready`` / ``on_exit``), a test or a script can drive it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from flotilla.discovery.base import DiscoveryError

log = logging.getLogger(__name__)


class CloudMapRegistration:
    """One instance of ``service`` in the Cloud Map ``namespace``, at ``address:port``.

    With ``create_missing`` an absent HTTP namespace and service (with custom health checks) are
    created first, which is what the local stack wants; elsewhere they belong to provisioning.
    """

    def __init__(
        self,
        client: Any,
        *,
        namespace: str,
        service: str,
        instance_id: str,
        address: str,
        port: int,
        attributes: Mapping[str, str] | None = None,
        create_missing: bool = False,
    ) -> None:
        self._client = client
        self.namespace = namespace
        self.service = service
        self.instance_id = instance_id
        self.address = address
        self.port = port
        self.attributes = dict(attributes or {})
        self.create_missing = create_missing
        self.service_id: str | None = None

    def start(self) -> None:
        """Register this instance (idempotent: registering the same id again updates it)."""
        service_id = self._service_id()
        key = "AWS_INSTANCE_IPV6" if ":" in self.address else "AWS_INSTANCE_IPV4"
        self._client.register_instance(
            ServiceId=service_id,
            InstanceId=self.instance_id,
            Attributes={**self.attributes, key: self.address, "AWS_INSTANCE_PORT": str(self.port)},
        )
        log.info(
            "registered %s in Cloud Map %s/%s at %s:%d",
            self.instance_id,
            self.namespace,
            self.service,
            self.address,
            self.port,
        )

    def set_healthy(self, healthy: bool) -> None:
        """Report health; discovery with ``HealthStatus=HEALTHY`` then includes or skips us."""
        if self.service_id is None:
            raise DiscoveryError("set_healthy before start: the instance is not registered")
        self._client.update_instance_custom_health_status(
            ServiceId=self.service_id,
            InstanceId=self.instance_id,
            Status="HEALTHY" if healthy else "UNHEALTHY",
        )

    def stop(self) -> None:
        """Deregister; failures are logged, not raised, since this runs on the way out."""
        if self.service_id is None:
            return
        try:
            self._client.deregister_instance(ServiceId=self.service_id, InstanceId=self.instance_id)
        except (BotoCoreError, ClientError) as err:
            log.warning("could not deregister %s from Cloud Map: %s", self.instance_id, err)
            return
        log.info("deregistered %s from Cloud Map %s/%s", self.instance_id, self.namespace, self.service)

    def __enter__(self) -> CloudMapRegistration:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _service_id(self) -> str:
        if self.service_id is None:
            namespace_id = self._find_namespace()
            self.service_id = self._find_service(namespace_id)
        return self.service_id

    def _find_namespace(self) -> str:
        for page in self._client.get_paginator("list_namespaces").paginate():
            for namespace in page["Namespaces"]:
                if namespace["Name"] == self.namespace:
                    return str(namespace["Id"])
        if not self.create_missing:
            raise DiscoveryError(f"no Cloud Map namespace named {self.namespace!r}")
        operation = self._client.create_http_namespace(Name=self.namespace)["OperationId"]
        return self._wait(operation, "NAMESPACE")

    def _find_service(self, namespace_id: str) -> str:
        pages = self._client.get_paginator("list_services").paginate(
            Filters=[{"Name": "NAMESPACE_ID", "Values": [namespace_id], "Condition": "EQ"}]
        )
        for page in pages:
            for service in page["Services"]:
                # Confirm the namespace: the filter is advisory in some implementations (moto).
                if service["Name"] == self.service and self._in_namespace(service["Id"], namespace_id):
                    return str(service["Id"])
        if not self.create_missing:
            raise DiscoveryError(f"no Cloud Map service {self.service!r} in namespace {self.namespace!r}")
        created = self._client.create_service(
            Name=self.service, NamespaceId=namespace_id, HealthCheckCustomConfig={"FailureThreshold": 1}
        )
        return str(created["Service"]["Id"])

    def _in_namespace(self, service_id: str, namespace_id: str) -> bool:
        found = self._client.get_service(Id=service_id)["Service"]
        return bool(found.get("NamespaceId") == namespace_id)

    def _wait(self, operation_id: str, target: str, timeout: float = 60.0) -> str:
        """Namespace creation is asynchronous: poll the operation until it names the new id."""
        give_up = time.monotonic() + timeout
        while True:
            operation = self._client.get_operation(OperationId=operation_id)["Operation"]
            if operation["Status"] == "SUCCESS":
                return str(operation["Targets"][target])
            if operation["Status"] == "FAIL" or time.monotonic() > give_up:
                raise DiscoveryError(f"creating Cloud Map namespace {self.namespace!r}: {operation}")
            time.sleep(1.0)
