"""Each way a credential can fail is a 401 (or 403 for a missing scope) problem+json; good ones pass,
and the upstream sees only the identity the gateway signed."""

from __future__ import annotations

import hashlib
import logging
import time

import httpx
import pytest
import requests

from flotilla.app import create_app
from flotilla.auth import JwksCache
from flotilla.auth.jwt import InvalidToken
from flotilla.clock import ManualClock
from flotilla.config import PlatformSettings
from flotilla.principal import HEADERS, current_principal, require_principal, verify
from tests.gateway.conftest import AUDIENCE, SECRET
from tests.gateway.helpers import (
    assert_invalid_token,
    assert_problem,
    bearer,
    claims,
    current_kid,
    hs256_with_public_key,
    other_key,
    signed,
    unsigned,
)

CART = "/api/v1/cart/items"
CATALOG_WRITE = "/api/v1/catalog/products"


@pytest.fixture
def url(gateway):
    return gateway()


def test_a_valid_access_token_reaches_the_upstream_as_a_signed_principal(url, issuer):
    answer = requests.get(url + CART, headers=bearer(issuer.issue("alice", ["cart"])))
    assert answer.status_code == 200, answer.text
    seen = answer.json()["headers"]
    assert "Authorization" not in seen
    principal = verify(seen, SECRET, audience="catalog", method="GET", path=answer.json()["target"])
    assert principal is not None
    assert (principal.subject, principal.scopes, principal.client) == (
        "alice",
        frozenset({"cart"}),
        "store-web",
    )


def test_a_token_signed_by_another_key_is_refused(url, issuer):
    token = signed(claims(issuer), other_key(), current_kid(issuer))
    assert_invalid_token(requests.get(url + CART, headers=bearer(token)), "signature")


def test_alg_none_is_refused(url, issuer):
    token = unsigned(claims(issuer), current_kid(issuer))
    assert_invalid_token(requests.get(url + CART, headers=bearer(token)), "algorithm 'none'")


def test_hs256_keyed_with_the_public_key_is_refused(url, issuer):
    token = hs256_with_public_key(claims(issuer), issuer)
    assert_invalid_token(requests.get(url + CART, headers=bearer(token)), "algorithm 'HS256'")


def test_an_expired_token_is_refused_beyond_the_leeway(url, issuer):
    now = int(time.time())
    within = signed(claims(issuer, iat=now - 700, exp=now - 10), *_signing(issuer))
    assert requests.get(url + CART, headers=bearer(within)).status_code == 200
    expired = signed(claims(issuer, iat=now - 700, exp=now - 120), *_signing(issuer))
    assert_invalid_token(requests.get(url + CART, headers=bearer(expired)), "expired")


def test_another_issuer_is_refused(url, issuer):
    for iss in (issuer.url + "/", "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_other"):
        token = signed(claims(issuer, iss=iss), *_signing(issuer))
        assert_invalid_token(requests.get(url + CART, headers=bearer(token)), "another issuer")


def test_an_access_token_for_another_client_is_refused(url, issuer):
    token = issuer.issue("alice", ["cart"], client_id="someone-else")
    assert_invalid_token(requests.get(url + CART, headers=bearer(token)), "another client")


def test_id_tokens_are_checked_against_the_audience(url, issuer):
    base = {"token_use": "id", "client_id": None, "scope": None, "cognito:groups": ["cart"]}
    good = signed(claims(issuer, aud=AUDIENCE, **base), *_signing(issuer))
    assert requests.get(url + CART, headers=bearer(good)).status_code == 200
    wrong = signed(claims(issuer, aud="another-app", **base), *_signing(issuer))
    assert_invalid_token(requests.get(url + CART, headers=bearer(wrong)), "another audience")


def test_an_unexpected_token_use_is_refused(url, issuer):
    token = signed(claims(issuer, token_use="refresh"), *_signing(issuer))
    assert_invalid_token(requests.get(url + CART, headers=bearer(token)), "token_use")


def test_a_missing_scope_is_403_with_the_scope_named(url, issuer):
    answer = requests.post(url + CATALOG_WRITE, json={}, headers=bearer(issuer.issue("alice", ["cart"])))
    body = assert_problem(answer, 403)
    assert "admin" in body["detail"]
    assert 'error="insufficient_scope"' in answer.headers["WWW-Authenticate"]
    admin = requests.post(url + CATALOG_WRITE, json={}, headers=bearer(issuer.issue("root", ["admin"])))
    assert admin.status_code == 200


def test_no_credentials_on_a_protected_route_is_401_and_public_routes_stay_open(url):
    answer = requests.get(url + CART)
    assert_problem(answer, 401)
    assert answer.headers["WWW-Authenticate"] == 'Bearer realm="flotilla"'
    assert requests.get(url + "/api/v1/catalog/products").status_code == 200


def test_a_malformed_token_on_a_public_route_is_still_401(url):
    assert_invalid_token(requests.get(url + "/api/v1/catalog/x", headers=bearer("not-a-jwt")), "well-formed")


def _crafted(header: dict) -> str:
    """A token with this header, a plausible payload and a junk signature: nothing a key could verify."""
    import base64
    import json

    def b64(doc: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()

    return f"{b64(header)}.{b64({'sub': 'mallory', 'exp': 2**40})}.c2ln"


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "RS256", "kid": 5},
        {"alg": "RS256", "kid": ["a"]},
        {"alg": "RS256", "kid": "k1", "crit": ["exp"]},
        {"alg": "RS256", "kid": "k1", "crit": ["b64"], "b64": False},
    ],
)
def test_a_crafted_unsigned_header_is_401_not_500(url, header):
    answer = requests.get(url + CART, headers=bearer(_crafted(header)))
    assert answer.status_code == 401, answer.text
    assert_problem(answer, 401)


def test_failed_sign_ins_are_throttled_like_anonymous_requests(gateway):
    url = gateway(
        clock=ManualClock(), trusted_proxies=1, rate_limit={"burst": 3, "perSecond": 1}, api_keys={}
    )
    headers = {"X-Forwarded-For": "203.0.113.77", **bearer("not-a-jwt")}
    statuses = [requests.get(url + CART, headers=headers).status_code for _ in range(6)]
    assert statuses == [401, 401, 401, 429, 429, 429]
    # Another address still gets its own bucket.
    other = {"X-Forwarded-For": "203.0.113.78", **bearer("not-a-jwt")}
    assert requests.get(url + CART, headers=other).status_code == 401


def test_an_unknown_kid_is_refused_until_the_jwks_publishes_it(url, issuer):
    stranger = other_key()
    from flotilla_dev.issuer import public_jwk

    token = signed(claims(issuer), stranger, public_jwk(stranger.public_key())["kid"])
    assert_invalid_token(requests.get(url + CART, headers=bearer(token)), "unknown signing key")
    issuer.rotate()  # a new key appears in the JWKS; the gateway has not seen it
    answer = requests.get(url + CART, headers=bearer(issuer.issue("alice", ["cart"])))
    assert answer.status_code == 200, answer.text


def test_unknown_kids_refetch_the_jwks_at_most_once_per_interval(issuer):
    clock = ManualClock()
    cache = JwksCache(issuer.url + "/.well-known/jwks.json", min_refresh_seconds=30, clock=clock)
    cache.key(current_kid(issuer))
    assert cache.fetches == 1
    clock.advance(31)
    for n in range(50):
        with pytest.raises(InvalidToken, match="unknown signing key"):
            cache.key(f"made-up-{n}")
    assert cache.fetches == 2  # the first unknown kid refetched; the other 49 did not
    clock.advance(30)
    with pytest.raises(InvalidToken, match="unknown signing key"):
        cache.key("made-up-again")
    assert cache.fetches == 3
    cache.close()


def test_a_failed_jwks_fetch_waits_the_interval_keeps_the_keys_and_logs_the_outage_once(caplog):
    from flotilla_dev.issuer import public_jwk

    jwk = public_jwk(other_key().public_key())
    down = False

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503) if down else httpx.Response(200, json={"keys": [jwk]})

    clock = ManualClock()
    cache = JwksCache(
        "http://jwks.test/.well-known/jwks.json",
        ttl_seconds=60,
        min_refresh_seconds=30,
        clock=clock,
        transport=httpx.MockTransport(answer),
    )
    with caplog.at_level(logging.INFO, logger="flotilla.auth.jwt"):
        assert cache.key(jwk["kid"]) is not None
        down = True
        clock.advance(61)  # the keys are stale: the next lookup refetches, and that fails
        assert cache.key(jwk["kid"]) is not None, "a failed fetch keeps the keys already known"
        assert cache.fetches == 2
        clock.advance(29)
        for n in range(20):
            with pytest.raises(InvalidToken, match="unknown signing key"):
                cache.key(f"made-up-{n}")
        assert cache.fetches == 2, "no refetch while the interval after the failure runs"
        clock.advance(1)
        with pytest.raises(InvalidToken):
            cache.key("made-up-again")
        assert cache.fetches == 3
        down = False
        assert cache.refresh(force=True), "force skips the wait"
        assert cache.fetches == 4
        assert not cache.refresh(force=False), "and a success spaces the next fetch too"
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in messages] == ["WARNING", "INFO"], messages
    assert "unavailable" in messages[0][1] and "available again" in messages[1][1]
    cache.close()


def test_api_keys_good_bad_and_both_credentials(gateway, issuer):
    url = gateway(
        api_keys={"robot": {"sha256": hashlib.sha256(b"s3cret-key").hexdigest(), "scopes": ["admin"]}}
    )
    good = requests.post(url + CATALOG_WRITE, json={}, headers={"X-Api-Key": "s3cret-key"})
    assert good.status_code == 200, good.text
    principal = verify(good.json()["headers"], SECRET, audience="catalog", method="POST", path="/products")
    assert principal is not None and principal.subject == "apikey:robot" and principal.client == "robot"
    assert "X-Api-Key" not in good.json()["headers"]
    bad = requests.post(url + CATALOG_WRITE, json={}, headers={"X-Api-Key": "guess"})
    assert_invalid_token(bad, "API key")
    both = requests.get(
        url + CART, headers={"X-Api-Key": "s3cret-key", **bearer(issuer.issue("a", ["cart"]))}
    )
    assert_problem(both, 401)


def _service(name: str):
    """A test client of a chassis service called ``name`` that, like the store's, checks every caller
    itself (audience, method and path from its own request, the secret from its platform settings)."""
    app = create_app(name, platform=PlatformSettings(principal_secret=SECRET, access_log=False))

    @require_principal()
    def anything(rest: str):
        return {"subject": current_principal(SECRET).subject}

    app.add_url_rule("/<path:rest>", "anything", anything, methods=["GET", "POST", "DELETE"])
    return app.test_client()


def _captured(answer) -> dict[str, str]:
    """The signed identity headers the upstream received: what someone reading the traffic holds."""
    return {name: value for name, value in answer.json()["headers"].items() if name in HEADERS}


def _refused(response) -> None:
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"


def test_a_captured_header_set_is_refused_for_any_other_service_method_or_path(url, issuer):
    answer = requests.get(url + CART, headers=bearer(issuer.issue("alice", ["cart"])))
    assert answer.status_code == 200, answer.text
    assert answer.json()["target"] == "/items"  # the cart route's upstream is the catalog echo
    captured = _captured(answer)
    catalog, cart = _service("catalog"), _service("cart")
    assert catalog.get("/items", headers=captured).json == {"subject": "alice"}, "its own request passes"
    _refused(catalog.get("/products", headers=captured))  # another path of the same service
    _refused(catalog.get("/items?all=1", headers=captured))  # another query
    _refused(catalog.delete("/items", headers=captured))  # another method
    _refused(cart.get("/items", headers=captured))  # the same request to another service


def test_the_gateway_signs_the_target_the_service_sees_however_the_path_and_query_are_spelled(url, issuer):
    odd = '/api/v1/cart/caf%C3%A9/a%20b%2Fc/~x?q=a b&amp=%26&pct=%zz&tilde=%7e&quote="1"&empty='
    answer = httpx.get(url + odd, headers=bearer(issuer.issue("bob", ["cart"])))  # requests would requote it
    assert answer.status_code == 200, answer.text
    target, captured = answer.json()["target"], _captured(answer)
    assert verify(captured, SECRET, audience="catalog", method="GET", path=target) is not None
    catalog = _service("catalog")
    assert catalog.get(target, headers=captured).json == {"subject": "bob"}
    # ``&`` and ``%26`` differ to the service, so they differ to the signature too.
    _refused(catalog.get(target.replace("amp=%26", "amp=&"), headers=captured))


def _signing(issuer):
    """The issuer's current private key and kid, to sign hand-made claims with."""
    key = issuer._signing_key()
    return key, current_kid(issuer)
