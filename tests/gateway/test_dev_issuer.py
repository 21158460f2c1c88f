"""The local dev issuer: `flotilla token`, `flotilla dev-issuer`, and a gateway under gunicorn trusting
them, with its throttle shared by its workers through Redis."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jwt
import pytest
import requests
from flotilla_dev.issuer import DEFAULT_CLIENT_ID, DEFAULT_URL, DevIssuer

from flotilla.clock import SYSTEM_CLOCK
from services.gateway.app import token_verifier
from services.gateway.settings import Settings
from tests.support import FLOTILLA, ROOT, free_port, serve, wait_for


def flotilla(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FLOTILLA, *args],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def test_token_prints_a_cognito_shaped_access_token_signed_with_a_private_dev_key(tmp_path):
    keys = tmp_path / "keys"
    done = flotilla("token", "--sub", "alice", "--scope", "cart orders", "--dir", str(keys))
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    jwk = DevIssuer(keys).jwks()["keys"][0]
    assert jwt.get_unverified_header(token)["kid"] == jwk["kid"]
    claims = jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=["RS256"], options={"verify_aud": False})
    assert claims["iss"] == DEFAULT_URL
    assert (claims["sub"], claims["client_id"], claims["token_use"]) == ("alice", DEFAULT_CLIENT_ID, "access")
    assert claims["scope"] == "cart orders"
    assert {"exp", "iat", "jti"} <= claims.keys()
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    assert [stat.S_IMODE(p.stat().st_mode) for p in keys.glob("*.pem")] == [0o600]


def test_token_refuses_bad_input_with_exit_2(tmp_path):
    done = flotilla("token", "--sub", " ", "--dir", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.startswith("flotilla: ")


def test_the_gateway_trusts_no_issuer_it_is_not_told_about_even_locally(monkeypatch):
    # The dev issuer is a dev tool: the gateway's code doesn't know it; the local stack configures it.
    monkeypatch.setenv("FLOTILLA_ENV", "local")
    assert token_verifier(Settings(), SYSTEM_CLOCK) is None
    verifier = token_verifier(
        Settings(jwt_issuer=DEFAULT_URL, jwt_client_ids=[DEFAULT_CLIENT_ID]), SYSTEM_CLOCK
    )
    assert verifier is not None
    assert verifier.jwks.url == DEFAULT_URL + "/.well-known/jwks.json"


@pytest.mark.slow
def test_served_gateway_trusts_the_served_dev_issuer_and_its_workers_share_the_throttle(
    tmp_path: Path, redis_url: str
):
    port = free_port()
    issuer_url = f"http://127.0.0.1:{port}"
    keys = tmp_path / "keys"
    common = {"FLOTILLA_DEV_ISSUER_DIR": str(keys), "FLOTILLA_DEV_ISSUER_URL": issuer_url}
    issuer = subprocess.Popen(
        [*FLOTILLA, "dev-issuer"], cwd=ROOT, env={**os.environ, **common}, stdout=subprocess.DEVNULL
    )
    try:
        wait_for(issuer_url + "/livez", proc=issuer)
        discovery = requests.get(issuer_url + "/.well-known/openid-configuration").json()
        assert discovery["jwks_uri"] == issuer_url + "/.well-known/jwks.json"
        with serve("sample", tmp_path) as sample:
            env = {
                "FLOTILLA_ENV": "local",
                "FLOTILLA_PRINCIPAL_SECRET": "local-secret",
                "FLOTILLA_DISCOVERY_STATIC": json.dumps({"sample": sample.url}),
                "GATEWAY_ROUTES": json.dumps({"v1": {"sample": {"upstream": "sample", "read": "cart"}}}),
                "GATEWAY_JWT_ISSUER": issuer_url,
                "GATEWAY_JWT_CLIENT_IDS": json.dumps([DEFAULT_CLIENT_ID]),
                "GATEWAY_REDIS_URL": redis_url,
                "GATEWAY_RATE_LIMIT": json.dumps({"burst": 10, "perSecond": 0.001}),
            }
            with serve("gateway", tmp_path, workers=2, env=env) as gateway:
                token = flotilla(
                    "token", "--sub", f"alice-{port}", "--scope", "cart", env=common
                ).stdout.strip()
                headers = {"Authorization": f"Bearer {token}"}
                hello = requests.get(gateway.url + "/api/v1/sample/hello/alice", headers=headers)
                assert hello.status_code == 200, hello.text
                assert hello.json() == {"message": "Hello, alice!"}
                ready = requests.get(gateway.url + "/readyz").json()
                assert ready["status"] == "ok", ready
                with ThreadPoolExecutor(8) as pool:
                    codes = list(
                        pool.map(
                            lambda _: (
                                requests.get(gateway.url + "/api/v1/sample/ping", headers=headers).status_code
                            ),
                            range(40),
                        )
                    )
                assert codes.count(200) == 9  # ten in the bucket, one spent on /hello above
                assert codes.count(429) == 31
    finally:
        issuer.terminate()
        assert issuer.wait(timeout=10) == 0
