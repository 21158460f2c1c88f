"""The generic flotilla-service chart: security, probes, shutdown, EKS wiring, the mesh policy."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from deploy_support import (
    CELLS,
    SERVICE_CHART,
    VALUES,
    Cell,
    CrdIndex,
    Renderer,
    config_of,
    containers,
    find,
    one,
    pod_specs,
    validate_core,
)

from flotilla.http.policy import ClientSettings, UpstreamPolicy

CATALOG_POLICY = yaml.safe_load(
    """
cart:
  timeoutSeconds: 2
  retries: {attempts: 3, perTryTimeoutSeconds: 1, retryOn: [connect-failure, "502", "503", "504", "429"]}
  circuitBreaker:
    consecutiveFailures: 5
    openSeconds: 30
    halfOpenMaxCalls: 2
    maxConnections: 100
    maxPendingRequests: 100
  outlierDetection:
    {consecutive5xxErrors: 5, intervalSeconds: 10, baseEjectionSeconds: 30, maxEjectionPercent: 50}
  bulkhead: {maxConcurrent: 20}
pricing:
  timeoutSeconds: 0.5
  retries: {attempts: 1, retryOn: [connect-failure, "503"]}
"""
)
MESHES = ["none", "envoy", "istio", "lattice"]


def everything(renderer: Renderer, provider: str, *sets: str) -> list[dict[str, Any]]:
    return renderer.render(CELLS[f"flotilla-service:everything-{provider}"], "1.35", sets)


@pytest.mark.parametrize("cell", ["defaults", "everything-envoy", "consumer-ack", "everything-off"])
def test_every_container_is_locked_down(renderer: Renderer, cell: str) -> None:
    docs = renderer.render(CELLS[f"flotilla-service:{cell}"])
    specs = list(pod_specs(docs))
    assert specs
    for where, spec in specs:
        assert spec["automountServiceAccountToken"] is False, where
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 65532, where
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, where
        tmp = {v["name"]: v for v in spec["volumes"]}["tmp"]
        assert "emptyDir" in tmp, where
        for c in containers(spec):
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, (where, c["name"])
            assert sc["allowPrivilegeEscalation"] is False, (where, c["name"])
            assert sc["capabilities"] == {"drop": ["ALL"]}, (where, c["name"])
            assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"], (where, c["name"])
            assert c["resources"]["requests"] and c["resources"]["limits"], (where, c["name"])


def test_service_account_does_not_mount_a_token(renderer: Renderer) -> None:
    sa = one(renderer.render(CELLS["flotilla-service:defaults"]), "ServiceAccount")
    assert sa["automountServiceAccountToken"] is False


def test_probes_target_the_chassis_health_endpoints(renderer: Renderer) -> None:
    deployment = one(renderer.render(CELLS["flotilla-service:defaults"]), "Deployment")
    app = deployment["spec"]["template"]["spec"]["containers"][0]
    assert app["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert app["startupProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert app["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert app["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert app["args"] == ["serve", "sample"]
    assert app["image"] == "flotilla/sample:0.1.0"


@pytest.mark.parametrize(
    "sets",
    [(), ("server.gracefulTimeoutSeconds=45", "server.preStopSleepSeconds=10", "server.drainSeconds=7")],
    ids=["defaults", "custom"],
)
def test_termination_grace_covers_prestop_drain_and_graceful_timeout(renderer: Renderer, sets: tuple) -> None:
    docs = renderer.render(CELLS["flotilla-service:defaults"], "1.35", sets)
    spec = one(docs, "Deployment")["spec"]["template"]["spec"]
    env = config_of(docs, "sample")
    pre_stop = spec["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = int(env["FLOTILLA_DRAIN_SECONDS"])
    graceful = int(env["FLOTILLA_GRACEFUL_TIMEOUT"])
    assert spec["terminationGracePeriodSeconds"] > pre_stop + drain + graceful
    if sets:
        assert (pre_stop, drain, graceful) == (10, 7, 45)
        assert spec["terminationGracePeriodSeconds"] == 10 + 7 + 45 + 5


def test_environment_contract(renderer: Renderer) -> None:
    docs = everything(renderer, "none")
    env = config_of(docs, "catalog")
    assert env["FLOTILLA_ENV"] == "prod"
    assert env["FLOTILLA_AWS_REGION"] == "eu-west-1"
    assert env["FLOTILLA_BIND"] == "0.0.0.0:8000"
    assert env["FLOTILLA_KEEPALIVE"] == "75"
    assert env["PROMETHEUS_MULTIPROC_DIR"] == "/tmp/flotilla-metrics"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://catalog-otel-collector:4318"
    assert env["CATALOG_CACHE_TTL_SECONDS"] == "30"
    assert "FLOTILLA_AWS_ENDPOINT_URL" not in env
    app = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    downward = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in app["env"] if "valueFrom" in e}
    assert downward == {
        "K8S_POD_NAME": "metadata.name",
        "K8S_NAMESPACE_NAME": "metadata.namespace",
        "K8S_NODE_NAME": "spec.nodeName",
    }
    assert {"name": "FLOTILLA_SERVICE_VERSION", "value": "1.4.2"} in app["env"]
    assert app["envFrom"] == [
        {"configMapRef": {"name": "catalog"}},
        {"secretRef": {"name": "catalog-external"}},
    ]
    assert app["image"] == "123456789012.dkr.ecr.eu-west-1.amazonaws.com/flotilla/catalog:1.4.2"


def test_config_change_rolls_the_pods(renderer: Renderer) -> None:
    def checksum(*sets: str) -> str:
        docs = renderer.render(CELLS["flotilla-service:defaults"], "1.35", sets)
        return one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    assert checksum() == checksum()
    assert checksum() != checksum("logLevel=DEBUG")


def test_secrets_come_from_external_secrets(renderer: Renderer) -> None:
    docs = everything(renderer, "none")
    es = one(docs, "ExternalSecret", "catalog-external")
    assert es["spec"]["target"]["name"] == "catalog-external"
    assert es["spec"]["data"] == [
        {"secretKey": "CATALOG_DATABASE_URL", "remoteRef": {"key": "/flotilla/prod/catalog/database-url"}}
    ]
    # The pre-install migration reads the same remote data through a hook copy (jobs.yaml).
    assert one(docs, "ExternalSecret", "catalog-jobs")["spec"]["data"] == es["spec"]["data"]
    assert not find(docs, "Secret"), "secrets are never rendered from values"


@pytest.mark.parametrize("provider", MESHES)
def test_upstream_policy_reaches_the_client_once(
    renderer: Renderer, monkeypatch: pytest.MonkeyPatch, provider: str
) -> None:
    env = config_of(everything(renderer, provider), "catalog")
    # The declared policies completed with the chassis defaults, read by the chassis' own settings model.
    monkeypatch.setenv("FLOTILLA_UPSTREAMS", env["FLOTILLA_UPSTREAMS"])
    client = ClientSettings()
    assert client.upstreams == {k: UpstreamPolicy.model_validate(v) for k, v in CATALOG_POLICY.items()}
    assert " " not in env["FLOTILLA_UPSTREAMS"], "compact JSON"
    mesh_retries = provider in ("envoy", "istio")
    assert env["FLOTILLA_CLIENT_RETRIES"] == ("false" if mesh_retries else "true")
    static = {
        "envoy": {"cart": "http://127.0.0.1:15001", "pricing": "http://127.0.0.1:15002"},
        "lattice": {"cart": "http://cart.flotilla.internal", "pricing": "http://pricing.flotilla.internal"},
    }
    if provider in static:
        assert env["FLOTILLA_DISCOVERY"] == "static"
        assert json.loads(env["FLOTILLA_DISCOVERY_STATIC"]) == static[provider]
    else:
        assert env["FLOTILLA_DISCOVERY"] == "kubernetes"
        assert env["FLOTILLA_DISCOVERY_PORT"] == "80"


def _seconds(duration: str) -> float:
    return float(duration[:-2]) / 1000 if duration.endswith("ms") else float(duration[:-1])


def _envoy_policy(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    bootstrap = yaml.safe_load(one(docs, "ConfigMap", "catalog-envoy")["data"]["envoy.yaml"])
    listener = {x["name"]: x for x in bootstrap["static_resources"]["listeners"]}[f"outbound_{name}"]
    assert listener["address"]["socket_address"]["address"] == "127.0.0.1"
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    route = hcm["route_config"]["virtual_hosts"][0]["routes"][0]["route"]
    cluster = {c["name"]: c for c in bootstrap["static_resources"]["clusters"]}[route["cluster"]]
    out: dict[str, Any] = {"timeoutSeconds": _seconds(route["timeout"])}
    rp = route["retry_policy"]
    conditions = [c for c in rp["retry_on"].split(",") if c != "retriable-status-codes"]
    codes = [str(c) for c in rp.get("retriable_status_codes", [])]
    out["retries"] = {"attempts": rp["num_retries"], "retryOn": sorted(conditions + codes)}
    if "per_try_timeout" in rp:
        out["retries"]["perTryTimeoutSeconds"] = _seconds(rp["per_try_timeout"])
    if "circuit_breakers" in cluster:
        t = cluster["circuit_breakers"]["thresholds"][0]
        out["maxConnections"], out["maxPendingRequests"] = t["max_connections"], t["max_pending_requests"]
        out["maxConcurrent"] = t["max_requests"]
    if "outlier_detection" in cluster:
        o = cluster["outlier_detection"]
        out["outlierDetection"] = {
            "consecutive5xxErrors": o["consecutive_5xx"],
            "intervalSeconds": _seconds(o["interval"]),
            "baseEjectionSeconds": _seconds(o["base_ejection_time"]),
            "maxEjectionPercent": o["max_ejection_percent"],
        }
    return out


def _istio_policy(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    host = f"{name}.flotilla.svc.cluster.local"
    vs = one(docs, "VirtualService", f"catalog-to-{name}")
    assert vs["spec"]["hosts"] == [host]
    route = vs["spec"]["http"][0]
    assert route["match"] == [
        {"sourceLabels": {"app.kubernetes.io/name": "catalog", "app.kubernetes.io/instance": "svc"}}
    ]
    assert route["route"][0]["destination"]["host"] == host
    out: dict[str, Any] = {"timeoutSeconds": _seconds(route["timeout"])}
    r = route["retries"]
    out["retries"] = {"attempts": r["attempts"], "retryOn": sorted(r["retryOn"].split(","))}
    if "perTryTimeout" in r:
        out["retries"]["perTryTimeoutSeconds"] = _seconds(r["perTryTimeout"])
    dr = one(docs, "DestinationRule", f"catalog-to-{name}")
    assert dr["spec"]["host"] == host
    assert dr["spec"]["workloadSelector"]["matchLabels"]["app.kubernetes.io/name"] == "catalog"
    tp = dr["spec"].get("trafficPolicy", {})
    if "connectionPool" in tp:
        pool = tp["connectionPool"]
        out["maxConnections"] = pool["tcp"]["maxConnections"]
        out["maxPendingRequests"] = pool["http"]["http1MaxPendingRequests"]
        out["maxConcurrent"] = pool["http"]["http2MaxRequests"]
    if "outlierDetection" in tp:
        o = tp["outlierDetection"]
        out["outlierDetection"] = {
            "consecutive5xxErrors": o["consecutive5xxErrors"],
            "intervalSeconds": _seconds(o["interval"]),
            "baseEjectionSeconds": _seconds(o["baseEjectionTime"]),
            "maxEjectionPercent": o["maxEjectionPercent"],
        }
    return out


def _declared(policy: dict[str, Any]) -> dict[str, Any]:
    """What the mesh must enforce: the declared policy completed by the chassis model's defaults."""
    p = UpstreamPolicy.model_validate(policy).model_dump(mode="json", by_alias=True, exclude_none=True)
    retries = p["retries"]
    out: dict[str, Any] = {"timeoutSeconds": p["timeoutSeconds"]}
    out["retries"] = {"attempts": retries["attempts"], "retryOn": sorted(retries["retryOn"])}
    if "perTryTimeoutSeconds" in retries:
        out["retries"]["perTryTimeoutSeconds"] = retries["perTryTimeoutSeconds"]
    out["maxConnections"] = p["circuitBreaker"]["maxConnections"]
    out["maxPendingRequests"] = p["circuitBreaker"]["maxPendingRequests"]
    out["maxConcurrent"] = p["bulkhead"]["maxConcurrent"]
    out["outlierDetection"] = p["outlierDetection"]
    return out


@pytest.mark.parametrize("upstream", ["cart", "pricing"])
def test_same_policy_in_envoy_and_istio(renderer: Renderer, upstream: str) -> None:
    assert _envoy_policy(everything(renderer, "envoy"), upstream) == _declared(CATALOG_POLICY[upstream])
    assert _istio_policy(everything(renderer, "istio"), upstream) == _declared(CATALOG_POLICY[upstream])


PARTIAL_VALUES = VALUES / "service-partial-policy.yaml"


def _partial(renderer: Renderer, provider: str) -> list[dict[str, Any]]:
    cell = Cell(
        SERVICE_CHART, "partial-policy", (str(PARTIAL_VALUES),), (f"mesh.provider={provider}",), "svc"
    )
    return renderer.render(cell)


def test_chart_defaults_are_the_chassis_defaults() -> None:
    template = (SERVICE_CHART / "templates" / "_mesh.tpl").read_text()
    body = template.split('define "flotilla-service.upstreamDefaults" -}}', 1)[1].split("{{- end -}}", 1)[0]
    assert yaml.safe_load(body) == UpstreamPolicy().model_dump(mode="json", by_alias=True, exclude_none=True)


@pytest.mark.parametrize("provider", MESHES)
def test_partial_policy_renders_complete(
    renderer: Renderer, crds: CrdIndex | None, monkeypatch: pytest.MonkeyPatch, provider: str
) -> None:
    """outlierDetection without intervalSeconds and friends: complete, valid mesh config, as the chassis reads it."""
    docs = _partial(renderer, provider)
    errors = [
        e for d in docs for e in (validate_core(d, "1.35") or (crds.validate(d) if crds else None) or [])
    ]
    assert not errors, "\n".join(errors)
    declared = yaml.safe_load(PARTIAL_VALUES.read_text())["upstreams"]
    monkeypatch.setenv("FLOTILLA_UPSTREAMS", config_of(docs, "catalog")["FLOTILLA_UPSTREAMS"])
    client = ClientSettings()  # what the pod's chassis reads at start-up
    raw = json.loads(config_of(docs, "catalog")["FLOTILLA_UPSTREAMS"])
    assert client.upstreams == {k: UpstreamPolicy.model_validate(v) for k, v in declared.items()}
    assert raw == {
        k: v.model_dump(mode="json", by_alias=True, exclude_none=True) for k, v in client.upstreams.items()
    }
    assert raw["pricing"]["retries"]["attempts"] == 0, "a declared 0 is kept, not replaced by the default"
    for name, policy in declared.items():
        if provider == "envoy":
            assert _envoy_policy(docs, name) == _declared(policy)
        elif provider == "istio":
            assert _istio_policy(docs, name) == _declared(policy)


def test_envoy_sidecar_fronts_the_app(renderer: Renderer) -> None:
    docs = everything(renderer, "envoy")
    spec = one(docs, "Deployment")["spec"]["template"]["spec"]
    (envoy,) = spec["initContainers"]
    assert envoy["restartPolicy"] == "Always", "a native sidecar: starts before and stops after the app"
    ports = {p["name"]: p["containerPort"] for p in envoy["ports"]}
    bootstrap = yaml.safe_load(one(docs, "ConfigMap", "catalog-envoy")["data"]["envoy.yaml"])
    listeners = {x["name"]: x for x in bootstrap["static_resources"]["listeners"]}
    assert set(listeners) == {"health", "inbound", "outbound_cart", "outbound_pricing"}
    assert listeners["inbound"]["address"]["socket_address"]["port_value"] == ports["envoy-in"]
    clusters = {c["name"]: c for c in bootstrap["static_resources"]["clusters"]}
    app = clusters["local_app"]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert app["socket_address"] == {"address": "127.0.0.1", "port_value": 8000}
    assert bootstrap["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    service = one(docs, "Service", "catalog")
    assert {p["name"]: p["targetPort"] for p in service["spec"]["ports"]} == {
        "http": "envoy-in",
        "metrics": "http",
    }


def test_lattice_route_and_target_group_policy(renderer: Renderer) -> None:
    docs = everything(renderer, "lattice")
    route = one(docs, "HTTPRoute", "catalog")
    assert route["spec"]["parentRefs"][0]["kind"] == "Gateway"
    assert route["spec"]["parentRefs"][0]["name"] == "flotilla"
    assert route["spec"]["hostnames"] == ["catalog.flotilla.internal"]
    assert route["spec"]["rules"][0]["backendRefs"][0] == {
        "group": "",
        "kind": "Service",
        "name": "catalog",
        "port": 80,
    }
    assert route["spec"]["rules"][0]["timeouts"] == {"request": "5s"}
    tgp = one(docs, "TargetGroupPolicy", "catalog")
    assert tgp["spec"]["targetRef"] == {"group": "", "kind": "Service", "name": "catalog"}
    assert tgp["spec"]["healthCheck"]["path"] == "/readyz"
    assert not find(docs, "VirtualService") and not find(docs, "DestinationRule")


@pytest.mark.parametrize("provider", MESHES)
def test_only_the_chosen_mesh_is_rendered(renderer: Renderer, provider: str) -> None:
    kinds = {d["kind"] for d in everything(renderer, provider)}
    assert ("VirtualService" in kinds) == (provider == "istio")
    assert ("HTTPRoute" in kinds) == (provider == "lattice")
    assert any(d["metadata"]["name"] == "catalog-envoy" for d in everything(renderer, provider)) == (
        provider == "envoy"
    )


def test_alb_ingress(renderer: Renderer) -> None:
    ingress = one(everything(renderer, "none"), "Ingress")
    a = ingress["metadata"]["annotations"]
    assert ingress["spec"]["ingressClassName"] == "alb"
    assert a["alb.ingress.kubernetes.io/group.name"] == "flotilla"
    assert a["alb.ingress.kubernetes.io/scheme"] == "internal", "internet-facing only when the values say so"
    assert a["alb.ingress.kubernetes.io/target-type"] == "ip"
    assert a["alb.ingress.kubernetes.io/healthcheck-path"] == "/readyz"
    assert json.loads(a["alb.ingress.kubernetes.io/listen-ports"]) == [{"HTTPS": 443}], "HTTPS only"
    assert a["alb.ingress.kubernetes.io/certificate-arn"].startswith("arn:aws:acm:")
    assert a["alb.ingress.kubernetes.io/ssl-redirect"] == "443"
    assert a["alb.ingress.kubernetes.io/wafv2-acl-arn"].startswith("arn:aws:wafv2:")
    assert "idle_timeout.timeout_seconds=60" in a["alb.ingress.kubernetes.io/load-balancer-attributes"]
    rule = ingress["spec"]["rules"][0]
    assert rule["host"] == "shop.example.com"
    assert rule["http"]["paths"][0]["backend"]["service"] == {"name": "catalog", "port": {"name": "http"}}


def test_alb_without_certificate_is_refused(renderer: Renderer) -> None:
    from deploy_support import HelmError

    with pytest.raises(
        HelmError, match=r"ingress\.alb\.certificateArn is required for catalog's ALB ingress"
    ):
        everything(renderer, "none", "ingress.alb.certificateArn=")


def test_alb_without_host_is_refused(renderer: Renderer) -> None:
    from deploy_support import HelmError

    with pytest.raises(HelmError, match=r"ingress\.hosts\[0\]\.host is required for catalog's ALB ingress"):
        everything(renderer, "none", "ingress.hosts[0].host=", "ingress.hosts[0].paths[0].path=/")


def test_alb_is_internet_facing_and_listens_on_http_only_when_asked(renderer: Renderer) -> None:
    docs = everything(renderer, "none", "ingress.alb.scheme=internet-facing", "ingress.alb.httpListener=true")
    a = one(docs, "Ingress")["metadata"]["annotations"]
    assert a["alb.ingress.kubernetes.io/scheme"] == "internet-facing"
    assert json.loads(a["alb.ingress.kubernetes.io/listen-ports"]) == [{"HTTP": 80}, {"HTTPS": 443}]
    assert a["alb.ingress.kubernetes.io/ssl-redirect"] == "443", "port 80 only redirects"


def test_other_ingress_classes_need_no_certificate_or_host(renderer: Renderer) -> None:
    docs = renderer.render(
        CELLS["flotilla-service:defaults"], "1.35", ["ingress.enabled=true", "ingress.className=nginx"]
    )
    ingress = one(docs, "Ingress")
    assert "host" not in ingress["spec"]["rules"][0]
    assert not any(k.startswith("alb.") for k in ingress["metadata"].get("annotations", {}))


def test_irsa_annotates_the_service_account(renderer: Renderer) -> None:
    sa = one(everything(renderer, "none"), "ServiceAccount", "catalog")
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == (
        "arn:aws:iam::123456789012:role/flotilla-prod-catalog"
    )
    assert not find(everything(renderer, "none"), "PodIdentityAssociation")


def test_pod_identity_binds_the_service_account_to_the_created_role(renderer: Renderer) -> None:
    docs = renderer.render(CELLS["flotilla-service:consumer-ack"])
    pia = one(docs, "PodIdentityAssociation")
    assert pia["spec"]["clusterName"] == "flotilla-staging"
    assert pia["spec"]["serviceAccount"] == "notifications"
    assert pia["spec"]["roleRef"] == {"from": {"name": "notifications"}}
    role = one(docs, "Role", "notifications")
    trust = json.loads(role["spec"]["assumeRolePolicyDocument"])
    assert trust["Statement"][0]["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    assert role["spec"]["policyRefs"] == [{"from": {"name": "notifications"}}]
    assert "eks.amazonaws.com/role-arn" not in (
        one(docs, "ServiceAccount").get("metadata", {}).get("annotations") or {}
    )


def test_missing_role_fails_with_a_clear_message(renderer: Renderer) -> None:
    from deploy_support import HelmError

    with pytest.raises(HelmError, match=r"iam\.roleArn is required when iam\.mode is irsa"):
        renderer.render(CELLS["flotilla-service:defaults"], "1.35", ["iam.mode=irsa"])


def test_least_privilege_policy_matches_the_resources(renderer: Renderer) -> None:
    """Readable spot checks; test_deploy_resources.py proves the whole document equals flotilla iam-policy's."""
    docs = renderer.render(CELLS["flotilla-service:consumer-ack"])
    policy = json.loads(one(docs, "Policy")["spec"]["policyDocument"])
    grants = {s["Sid"]: (s["Action"], s["Resource"]) for s in policy["Statement"]}
    arn = "arn:aws:{}:eu-west-1:123456789012:{}"
    queue = arn.format("sqs", "staging-notifications-order-events")
    assert queue in grants["SqsConsume"][1] and queue not in grants["SqsSend"][1]
    assert arn.format("sns", "staging-orders-events") in grants["SnsPublish"][1]
    table = arn.format("dynamodb", "table/staging-notifications-notification-log")
    assert f"{table}/index/*" in grants["DynamodbQueryIndexes"][1]
    assert grants["SsmGetParametersByPath"][1][0].endswith(":parameter/flotilla/staging/notifications")
    assert all("*" not in r.split(":")[-1].split("/")[0] for _, (_, res) in grants.items() for r in res)
    queues = {q["spec"]["queueName"]: q for q in find(docs, "Queue")}
    redrive = json.loads(queues["staging-notifications-order-events"]["spec"]["redrivePolicy"])
    assert redrive == {"deadLetterTargetArn": queue + "-dlq", "maxReceiveCount": 4}
    sns_send = json.loads(queues["staging-notifications-order-events"]["spec"]["policy"])["Statement"][0]
    assert arn.format("sns", "staging-orders-events") in sns_send["Condition"]["ArnEquals"]["aws:SourceArn"]
    table_doc = one(docs, "Table", "notifications-notification-log")
    assert table_doc["spec"]["timeToLive"] == {"attributeName": "expiresAt", "enabled": True}
    assert [k["keyType"] for k in table_doc["spec"]["keySchema"]] == ["HASH", "RANGE"]


def test_consumer_scales_on_queue_depth(renderer: Renderer) -> None:
    docs = renderer.render(CELLS["flotilla-service:consumer-ack"])
    deployment = one(docs, "Deployment")
    assert "replicas" not in deployment["spec"], "KEDA owns the replica count"
    assert deployment["spec"]["template"]["spec"]["containers"][0]["args"] == ["consume", "notifications"]
    so = one(docs, "ScaledObject")
    (trigger,) = so["spec"]["triggers"]
    assert trigger["type"] == "aws-sqs-queue"
    assert trigger["metadata"]["queueURL"].endswith("/staging-notifications-order-events")
    assert trigger["metadata"]["queueLength"] == "10"
    assert so["spec"]["minReplicaCount"] == 0
    assert not find(docs, "HorizontalPodAutoscaler") and not find(docs, "Ingress")


def test_web_scales_on_cpu_and_memory(renderer: Renderer) -> None:
    docs = everything(renderer, "none")
    hpa = one(docs, "HorizontalPodAutoscaler")
    assert {m["resource"]["name"] for m in hpa["spec"]["metrics"]} == {"cpu", "memory"}
    assert "replicas" not in one(docs, "Deployment")["spec"]


def test_hpa_and_keda_together_are_refused(renderer: Renderer) -> None:
    from deploy_support import HelmError

    with pytest.raises(HelmError, match="choose one"):
        everything(renderer, "none", "keda.enabled=true", "keda.queueUrl=https://sqs/q")


def test_migration_job_and_helm_test(renderer: Renderer) -> None:
    docs = everything(renderer, "none")
    job = one(docs, "Job")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert c["args"] == ["migrate", "catalog"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["FLOTILLA_ENV"] == "prod" and env["CATALOG_CACHE_TTL_SECONDS"] == "30"
    test_pod = one(docs, "Pod")
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert test_pod["spec"]["containers"][0]["args"] == [
        "probe",
        "http://catalog.flotilla.svc.cluster.local:80/readyz",
    ]


def test_topology_spread_and_pdb(renderer: Renderer) -> None:
    docs = renderer.render(CELLS["flotilla-service:defaults"])
    spread = one(docs, "Deployment")["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert [s["topologyKey"] for s in spread] == ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]
    assert one(docs, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    off = renderer.render(CELLS["flotilla-service:everything-off"])
    assert "topologySpreadConstraints" not in one(off, "Deployment")["spec"]["template"]["spec"]
    assert not find(off, "PodDisruptionBudget") and not find(off, "Pod")


def test_standard_labels_everywhere(renderer: Renderer) -> None:
    for doc in everything(renderer, "envoy"):
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "catalog", doc["metadata"]["name"]
        assert labels["app.kubernetes.io/instance"] == "svc"
        assert labels["app.kubernetes.io/part-of"] == "flotilla"


def test_observability(renderer: Renderer) -> None:
    docs = everything(renderer, "none")
    sm = one(docs, "ServiceMonitor")
    assert (
        sm["spec"]["endpoints"][0]["port"] == "metrics" and sm["spec"]["endpoints"][0]["path"] == "/metrics"
    )
    collector = one(docs, "OpenTelemetryCollector")
    config = collector["spec"]["config"]
    assert (
        config["exporters"]["otlphttp/xray"]["traces_endpoint"]
        == "https://xray.eu-west-1.amazonaws.com/v1/traces"
    )
    assert config["exporters"]["otlphttp/xray"]["auth"] == {"authenticator": "sigv4auth/xray"}
    assert config["extensions"]["sigv4auth/xray"] == {"region": "eu-west-1", "service": "xray"}
    assert config["service"]["pipelines"]["metrics"]["exporters"] == ["prometheusremotewrite/amp"]
    rules = one(docs, "PrometheusRule")["spec"]["groups"][0]["rules"]
    assert any("http_server_requests_total" in r["expr"] for r in rules)


def test_cloud_map_registration(renderer: Renderer) -> None:
    """external-dns publishes the headless Service: pod IPs, which callers outside the cluster can reach."""
    docs = everything(renderer, "none")
    headless = one(docs, "Service", "catalog-pods")
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["metadata"]["annotations"]["external-dns.alpha.kubernetes.io/hostname"] == (
        "catalog.flotilla.internal"
    )
    assert headless["spec"]["ports"] == [
        {"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP", "appProtocol": "http"}
    ]
    cluster_ip = one(docs, "Service", "catalog")
    assert "external-dns.alpha.kubernetes.io/hostname" not in (
        cluster_ip["metadata"].get("annotations") or {}
    )
    docs = everything(renderer, "none", "discovery.cloudMap.mechanism=mcsController")
    assert one(docs, "ServiceExport")["metadata"]["name"] == "catalog"
