"""The store as its services really run: one principal key, the gateway's Cognito and Redis (and on kind the dev
issuer's tokens), the catalog's database, migration and seed, the cart's table, and the consumer role with a real
resources spec."""

from __future__ import annotations

import base64
import ipaddress
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from click.testing import CliRunner
from deploy_support import (
    CELLS,
    KUBE_VERSIONS,
    REPO,
    SERVICE_CHART,
    STORE_CHART,
    VALUES,
    Cell,
    CrdIndex,
    HelmError,
    Renderer,
    check_objects,
    find,
    one,
)
from flotilla_dev.cli import token
from flotilla_dev.issuer import JWKS_PATH, DevIssuer, create_issuer_app
from pydantic import SecretStr

from flotilla.auth import JwksCache
from flotilla.clock import SYSTEM_CLOCK
from flotilla.config.settings import PlatformSettings
from services.cart.settings import Settings as CartSettings
from services.catalog.settings import Settings as CatalogSettings
from services.gateway.app import token_verifier
from services.gateway.settings import STORE_ROUTES
from services.gateway.settings import Settings as GatewaySettings

Doc = dict[str, Any]
STORE = ("gateway", "catalog", "cart")
PRINCIPAL = {"name": "flotilla-principal", "key": "FLOTILLA_PRINCIPAL_SECRET"}


def _secret_env_names() -> set[str]:
    """Every variable the chassis and the store services treat as a secret (SecretStr settings)."""
    names = set()
    for cls, prefix in (
        (PlatformSettings, "FLOTILLA_"),
        (GatewaySettings, "GATEWAY_"),
        (CatalogSettings, "CATALOG_"),
        (CartSettings, "CART_"),
    ):
        for field, info in cls.model_fields.items():
            if SecretStr in (info.annotation, *getattr(info.annotation, "__args__", ())):
                names.add(f"{prefix}{field}".upper())
    return names


SECRET_ENV = _secret_env_names()


def _container(doc: Doc) -> Doc:
    return doc["spec"]["template"]["spec"]["containers"][0]


def _env(doc: Doc) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in _container(doc).get("env", [])}


def _secret_refs(doc: Doc) -> list[str]:
    return [e["secretRef"]["name"] for e in _container(doc).get("envFrom", []) if "secretRef" in e]


# ---- 2. one principal key for the whole store ---------------------------------------------------------------


@pytest.mark.parametrize("cell", ["eks", "kind", "eks-envoy", "everything-on"])
def test_every_store_deployment_reads_the_same_principal_key(renderer: Renderer, cell: str) -> None:
    docs = renderer.render(CELLS[f"flotilla:{cell}"])
    for name in STORE:
        ref = _env(one(docs, "Deployment", name))["FLOTILLA_PRINCIPAL_SECRET"]
        assert ref == {"secretKeyRef": PRINCIPAL}, name
    eks = renderer.render(CELLS["flotilla:eks"])
    es = one(eks, "ExternalSecret", PRINCIPAL["name"])
    assert es["spec"]["target"]["name"] == PRINCIPAL["name"]
    assert [d["secretKey"] for d in es["spec"]["data"]] == [PRINCIPAL["key"]]
    assert es["spec"]["data"][0]["remoteRef"] == {"key": "flotilla/prod/principal", "property": "secret"}
    assert not find(eks, "Secret"), "EKS renders no Secret: values never carry one"


def test_kind_generates_a_dev_principal_key_that_no_configmap_carries(renderer: Renderer) -> None:
    docs = renderer.render(CELLS["flotilla:kind"])
    secret = one(docs, "Secret", PRINCIPAL["name"])
    assert "kind or minikube" in secret["metadata"]["annotations"]["flotilla.dev/dev-only"]
    value = secret["data"][PRINCIPAL["key"]]
    assert len(value) >= 48  # base64 of 48 random characters
    configmaps = json.dumps([c["data"] for c in find(docs, "ConfigMap")])
    assert value not in configmaps
    assert base64.b64decode(value).decode() not in configmaps


@pytest.mark.parametrize("cell", ["defaults", "eks", "kind", "everything-on"])
def test_no_secret_setting_in_any_configmap(renderer: Renderer, cell: str) -> None:
    assert {"FLOTILLA_PRINCIPAL_SECRET", "GATEWAY_REDIS_URL", "CATALOG_DATABASE_URL"} <= SECRET_ENV
    docs = renderer.render(CELLS[f"flotilla:{cell}"])
    for cm in find(docs, "ConfigMap"):
        leaked = SECRET_ENV & set(cm.get("data", {}))
        assert not leaked, f"ConfigMap/{cm['metadata']['name']} carries {leaked}"
    for job in find(docs, "Job"):
        leaked = {e["name"] for e in _container(job).get("env", []) if "value" in e} & SECRET_ENV
        assert not leaked, f"Job/{job['metadata']['name']} inlines {leaked}"


def test_no_secret_setting_in_any_values_file() -> None:
    files = [*CHARTS_VALUES, *VALUES.glob("*.yaml")]
    for path in files:
        text = path.read_text()
        for name in SECRET_ENV:
            # Only the name of a Secret key may appear (envName: X, key: X), never X: <value>.
            assert not re.search(rf"^\s*{name}\s*:", text, re.M), f"{path.name} sets {name}"


CHARTS_VALUES = sorted([*STORE_CHART.glob("values*.yaml"), *SERVICE_CHART.glob("values*.yaml")])


# ---- 3. the gateway -------------------------------------------------------------------------------------------


def _egress_allows(policy: Doc, ip: str, port: int) -> bool:
    address = ipaddress.ip_address(ip)
    for rule in policy["spec"].get("egress", []):
        if "ports" in rule and not any(p.get("port") == port for p in rule["ports"]):
            continue
        for peer in rule.get("to", []):
            block = peer.get("ipBlock") or {"cidr": "0.0.0.0/32"}
            inside = address in ipaddress.ip_network(block["cidr"])
            if inside and not any(address in ipaddress.ip_network(x) for x in block.get("except", [])):
                return True
    return False


def test_gateway_on_eks_trusts_cognito_the_alb_and_shares_redis(renderer: Renderer) -> None:
    docs = renderer.render(CELLS["flotilla:eks"])
    config = one(docs, "ConfigMap", "gateway")["data"]
    assert re.fullmatch(
        r"https://cognito-idp\.[a-z]{2}(-[a-z]+)+-\d\.amazonaws\.com/[a-z]{2}(-[a-z]+)+-\d_\w+",
        config["GATEWAY_JWT_ISSUER"],
    )
    assert json.loads(config["GATEWAY_JWT_CLIENT_IDS"]), "at least one app client"
    assert config["GATEWAY_TRUSTED_PROXIES"] == "1"
    # The chassis reads these exactly as rendered.
    settings = GatewaySettings.model_validate(
        {
            # As pydantic-settings reads the environment: complex fields are JSON.
            k.removeprefix("GATEWAY_").lower(): json.loads(v) if v.startswith(("[", "{")) else v
            for k, v in config.items()
            if k.startswith("GATEWAY_")
        }
        | {"jwt_client_ids": json.loads(config["GATEWAY_JWT_CLIENT_IDS"])}
    )
    assert settings.trusted_proxies == 1
    es = one(docs, "ExternalSecret", "gateway-external")
    assert [d["secretKey"] for d in es["spec"]["data"]] == ["GATEWAY_REDIS_URL"]
    assert "gateway-external" in _secret_refs(one(docs, "Deployment", "gateway"))
    policy = one(docs, "NetworkPolicy", "gateway")
    assert _egress_allows(policy, "3.248.0.10", 443), "Cognito's JWKS (public, HTTPS)"
    assert _egress_allows(policy, "10.0.12.7", 6379), "ElastiCache in the VPC"
    assert not _egress_allows(policy, "169.254.169.254", 443), "never the instance metadata service"
    assert not _egress_allows(one(docs, "NetworkPolicy", "cart"), "10.0.12.7", 6379)


def test_gateway_on_kind_uses_the_dev_redis(renderer: Renderer) -> None:
    docs = renderer.render(CELLS["flotilla:kind"])
    assert "flotilla-dev-redis" in _secret_refs(one(docs, "Deployment", "gateway"))
    redis = one(docs, "Secret", "flotilla-dev-redis")["stringData"]
    assert redis["GATEWAY_REDIS_URL"].startswith("redis://redis:6379/")
    assert redis["CATALOG_CACHE_URL"].startswith("redis://redis:6379/")
    assert redis["GATEWAY_REDIS_URL"] != redis["CATALOG_CACHE_URL"], "separate databases"
    assert one(docs, "Service", "redis")["spec"]["ports"][0]["port"] == 6379


def test_gateway_on_kind_accepts_a_token_made_in_the_dev_issuer_pod(
    renderer: Renderer, tmp_path: Path
) -> None:
    """`kubectl exec deploy/dev-issuer -- flotilla token ...` gives a token the gateway, as rendered, accepts.

    (Every object of the kind cell, the dev issuer's included, is validated by test_deploy_matrix and checkov.)
    """
    docs = renderer.render(CELLS["flotilla:kind"])
    issuer = one(docs, "Deployment", "dev-issuer")
    container, env = _container(issuer), _env(issuer)
    url = env["FLOTILLA_DEV_ISSUER_URL"]
    # The pod serves that URL: its Service is the URL's host and port, `flotilla dev-issuer` listens on it.
    service = one(docs, "Service", "dev-issuer")["spec"]["ports"][0]
    assert (urlsplit(url).hostname, urlsplit(url).port) == ("dev-issuer", service["port"])
    assert container["args"] == ["dev-issuer", "--bind", f"0.0.0.0:{service['port']}"]
    # Its own image (the dev tools are in no service image), from the gateway's registry and tag.
    gateway_image = _container(one(docs, "Deployment", "gateway"))["image"]
    assert container["image"] == gateway_image.replace("flotilla/gateway:", "flotilla/dev-issuer:")
    key_dir = env["FLOTILLA_DEV_ISSUER_DIR"]
    assert any(key_dir.startswith(m["mountPath"] + "/") for m in container["volumeMounts"]), (
        "keys: an emptyDir"
    )
    assert container["securityContext"]["readOnlyRootFilesystem"] is True

    # The gateway as rendered trusts exactly that issuer and fetches its JWKS from it.
    config = one(docs, "ConfigMap", "gateway")["data"]
    assert config["GATEWAY_JWT_ISSUER"] == url
    assert config["GATEWAY_JWKS_URL"] == url + JWKS_PATH
    settings = GatewaySettings.model_validate(
        {
            # As pydantic-settings reads the environment: complex fields are JSON.
            k.removeprefix("GATEWAY_").lower(): json.loads(v) if v.startswith(("[", "{")) else v
            for k, v in config.items()
            if k.startswith("GATEWAY_")
        }
    )
    verifier = token_verifier(settings, SYSTEM_CLOCK)
    assert verifier is not None and verifier.jwks.url == config["GATEWAY_JWKS_URL"]

    # `flotilla token` with the container's environment (its key directory moved under tmp_path), the JWKS
    # served by the issuer's own app for the same keys.
    keys = tmp_path / key_dir.lstrip("/")
    result = CliRunner().invoke(
        token,
        ["--sub", "alice", "--scope", "cart"],
        env={"FLOTILLA_DEV_ISSUER_URL": url, "FLOTILLA_DEV_ISSUER_DIR": str(keys)},
    )
    assert result.exit_code == 0, result.output
    app = create_issuer_app(DevIssuer(keys, url=url))
    verifier.jwks = JwksCache(verifier.jwks.url, transport=httpx.WSGITransport(app=app))
    claims = verifier.verify(result.output.strip())
    assert (claims.subject, claims.scopes) == ("alice", frozenset({"cart"}))


@pytest.mark.parametrize("cell", ["eks", "kind"])
def test_gateway_routes_reach_the_services_the_chart_names(renderer: Renderer, cell: str) -> None:
    docs = renderer.render(CELLS[f"flotilla:{cell}"])
    config = one(docs, "ConfigMap", "gateway")["data"]
    assert "GATEWAY_ROUTES" not in config, "the store's default routing table is the one in settings.py"
    assert config["FLOTILLA_DISCOVERY"] == "kubernetes"
    port = int(config["FLOTILLA_DISCOVERY_PORT"])
    assert port == 80
    upstreams = {r.upstream for version in STORE_ROUTES.values() for r in version.values()}
    assert upstreams == {"catalog", "cart"}
    for name in upstreams:
        service = one(docs, "Service", name)
        assert port in [p["port"] for p in service["spec"]["ports"]], name
        assert name in json.loads(config["FLOTILLA_UPSTREAMS"]), f"a call policy for {name}"


# ---- 4. the catalog -------------------------------------------------------------------------------------------


def _annotations(doc: Doc) -> dict[str, str]:
    return doc["metadata"].get("annotations", {})


def test_catalog_migrates_before_install_with_the_deployments_environment(renderer: Renderer) -> None:
    docs = renderer.render(CELLS["flotilla:eks"])
    deployment = one(docs, "Deployment", "catalog")
    job = one(docs, "Job", "catalog-migrate")
    assert _container(job)["args"] == ["migrate", "catalog"]
    hooks = _annotations(job)
    assert hooks["helm.sh/hook"] == "pre-install,pre-upgrade"
    # Everything the Job uses before the release's objects exist is itself a hook, created first.
    sa = one(docs, "ServiceAccount", "catalog-jobs")
    es = one(docs, "ExternalSecret", "catalog-jobs")
    for prerequisite in (sa, es):
        assert _annotations(prerequisite)["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert int(_annotations(prerequisite)["helm.sh/hook-weight"]) < int(hooks["helm.sh/hook-weight"])
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "catalog-jobs"
    main_sa = one(docs, "ServiceAccount", "catalog")
    assert (
        sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
        == main_sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    )
    assert es["spec"]["data"] == one(docs, "ExternalSecret", "catalog-external")["spec"]["data"]
    assert {d["secretKey"] for d in es["spec"]["data"]} == {"CATALOG_DATABASE_URL", "CATALOG_CACHE_URL"}
    assert _secret_refs(job) == ["catalog-jobs"]
    # The same environment: the ConfigMap's data inlined, the same runtime env (principal optional).
    env = _env(job)
    config = one(docs, "ConfigMap", "catalog")["data"]
    assert {k: env[k] for k in config} == config
    deployment_env = _env(deployment)
    principal = dict(deployment_env.pop("FLOTILLA_PRINCIPAL_SECRET")["secretKeyRef"], optional=True)
    assert env.pop("FLOTILLA_PRINCIPAL_SECRET") == {"secretKeyRef": principal}
    assert {k: v for k, v in env.items() if k not in config} == deployment_env


def test_catalog_on_kind_migrates_then_seeds_the_dev_postgres(renderer: Renderer) -> None:
    docs = renderer.render(CELLS["flotilla:kind"])
    migrate, seed = one(docs, "Job", "catalog-migrate"), one(docs, "Job", "catalog-seed")
    assert _annotations(migrate)["helm.sh/hook"] == "post-install,pre-upgrade", "Postgres is in the release"
    assert _annotations(seed)["helm.sh/hook"] == "post-install"
    assert int(_annotations(migrate)["helm.sh/hook-weight"]) < int(_annotations(seed)["helm.sh/hook-weight"])
    assert _container(seed)["args"] == ["seed", "catalog"]
    for doc in (migrate, seed, one(docs, "Deployment", "catalog")):
        assert {"flotilla-dev-postgres", "flotilla-dev-redis"} <= set(_secret_refs(doc))
    assert "CATALOG_DATABASE_URL" in one(docs, "Secret", "flotilla-dev-postgres")["stringData"]
    # The hook ServiceAccount exists in every event the migration runs in.
    sa_hooks = _annotations(one(docs, "ServiceAccount", "catalog-jobs"))["helm.sh/hook"]
    assert set(sa_hooks.split(",")) == {"post-install", "pre-upgrade"}
    assert not find(renderer.render(CELLS["flotilla:eks"]), "Job", "catalog-seed"), "no seed in production"


# ---- 5. the cart ----------------------------------------------------------------------------------------------


def test_cart_on_eks_gets_its_table_and_least_privilege_from_ack(renderer: Renderer) -> None:
    docs = renderer.render(CELLS["flotilla:eks"])
    config = one(docs, "ConfigMap", "cart")["data"]
    assert config["FLOTILLA_ENV"] == "prod"
    assert config["FLOTILLA_DISCOVERY"] == "kubernetes" and "catalog" in json.loads(
        config["FLOTILLA_UPSTREAMS"]
    )
    table = one(docs, "Table")
    assert table["spec"]["tableName"] == "prod-cart-carts"
    policy = json.loads(one(docs, "Policy")["spec"]["policyDocument"])
    resources = {r for s in policy["Statement"] for r in s["Resource"]}
    assert "arn:aws:dynamodb:eu-west-1:123456789012:table/prod-cart-carts" in resources
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    assert {"dynamodb:GetItem", "dynamodb:PutItem"} <= actions
    assert all(a.startswith(("dynamodb:", "ssm:")) for a in actions), actions
    assert not find(docs, "Job", "cart-provision"), "ACK owns the table on EKS"


def test_cart_on_kind_provisions_its_table_in_moto(renderer: Renderer) -> None:
    docs = renderer.render(CELLS["flotilla:kind"])
    assert one(docs, "ConfigMap", "cart")["data"]["FLOTILLA_AWS_ENDPOINT_URL"] == "http://moto:5000"
    job = one(docs, "Job", "cart-provision")
    assert _container(job)["args"] == ["provision", "cart"]
    assert _annotations(job)["helm.sh/hook"] == "post-install,post-upgrade", "moto forgets on restart"
    assert "flotilla-dev-aws" in _secret_refs(job)
    assert _env(job)["FLOTILLA_AWS_ENDPOINT_URL"] == "http://moto:5000"
    assert not find(docs, "Table"), "no ACK on kind"


# ---- 6. the consumer role, with the sample service's real resources spec ---------------------------------------


@pytest.fixture(scope="module")
def consumer_cell(tmp_path_factory: pytest.TempPathFactory) -> Cell:
    spec = yaml.safe_load((REPO / "services" / "sample" / "resources.yaml").read_text())
    path = tmp_path_factory.mktemp("consumer") / "sample-consumer.yaml"
    values = {
        "serviceName": "sample",
        "role": "consumer",
        "environment": "staging",
        "aws": {"region": "eu-west-1", "accountId": "123456789012"},
        "iam": {"mode": "irsa"},
        "ack": {
            "enabled": True,
            "iam": {"createRole": True, "oidcProviderArn": OIDC_ARN, "oidcIssuer": OIDC},
        },
        # KEDA assumes the IRSA role the chart creates, so that role must trust KEDA's operator role.
        "keda": {"enabled": True, "queue": "greetings", "operatorRoleArn": KEDA_OPERATOR_ROLE},
        "consumer": {"slowestHandlerSeconds": 120, "outboxRelay": True},
        "networkPolicy": {"enabled": True},
        "awsResources": spec,
    }
    path.write_text(yaml.safe_dump(values))
    return Cell(SERVICE_CHART, "consumer-sample", (str(path),), release="svc")


OIDC = "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
OIDC_ARN = f"arn:aws:iam::123456789012:oidc-provider/{OIDC}"
KEDA_OPERATOR_ROLE = "arn:aws:iam::123456789012:role/keda-operator"


def test_consumer_role_renders_and_validates(
    renderer: Renderer, crds: CrdIndex | None, consumer_cell: Cell
) -> None:
    for kube in (KUBE_VERSIONS[0], KUBE_VERSIONS[-1]):
        errors, _ = check_objects(renderer.render(consumer_cell, kube), kube, crds)
        assert not errors, "\n".join(errors)
    docs = renderer.render(consumer_cell)
    deployment = one(docs, "Deployment", "sample")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["args"] == ["consume", "sample", "--outbox-relay"]
    assert one(docs, "ConfigMap", "sample")["data"]["FLOTILLA_BIND"] == "0.0.0.0:8000"
    assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    probes = {k: container[k]["httpGet"] for k in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert {p["port"] for p in probes.values()} == {"http"}
    assert probes["readinessProbe"]["path"] == "/readyz" and probes["livenessProbe"]["path"] == "/livez"
    assert pod["terminationGracePeriodSeconds"] > 120, "above the slowest handler"
    assert "replicas" not in deployment["spec"], "KEDA owns the replica count"
    trigger = one(docs, "ScaledObject")["spec"]["triggers"][0]
    assert trigger["type"] == "aws-sqs-queue"
    url = trigger["metadata"]["queueURL"]
    assert url == "https://sqs.eu-west-1.amazonaws.com/123456789012/staging-sample-greetings"
    queue = next(q for q in find(docs, "Queue") if q["spec"]["queueName"] == url.rsplit("/", 1)[1])
    assert queue, "the queue KEDA watches is the one ACK creates"
    assert one(docs, "TriggerAuthentication")["spec"]["podIdentity"] == {
        "provider": "aws",
        "identityOwner": "workload",
    }
    trust = json.loads(one(docs, "Role", "sample")["spec"]["assumeRolePolicyDocument"])
    assert {"AWS": KEDA_OPERATOR_ROLE} in [s["Principal"] for s in trust["Statement"]]
    assert deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "consumer"


def test_keda_queue_must_be_in_the_spec(renderer: Renderer, consumer_cell: Cell) -> None:
    with pytest.raises(HelmError, match="not a queue in awsResources"):
        renderer.render(consumer_cell, "1.35", ["keda.queue=nope"])
