"""HTTP API of payments: authorize, capture and void against the simulated provider, once per key.

Internal: no gateway route leads here. Every route needs a signed principal with the ``payments``
scope for the audience ``payments``, which only a holder of ``FLOTILLA_PRINCIPAL_SECRET`` (the
orders service, signing its own calls) can make; the NetworkPolicies admit orders alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import request
from flask_openapi3.models.tag import Tag
from flask_openapi3.openapi import OpenAPI
from sqlalchemy.orm import Session

from flotilla import create_app as create_chassis_app
from flotilla.api import GUARDS
from flotilla.config import load_settings
from flotilla.db import Database
from flotilla.errors import ProblemError
from flotilla.principal import require_principal
from services.payments import api, store
from services.payments.cards import Behaviour, summary
from services.payments.fingerprint import fingerprint_key
from services.payments.idempotency import IdempotencyKeys, Stored, required_key
from services.payments.provider import Provider
from services.payments.settings import Settings

SERVICE = "payments"
SCOPE = "payments"
AUTHORIZATIONS = Tag(name="authorizations")
DECLINED_TYPE = "urn:flotilla:problem:payment-declined"

F = TypeVar("F", bound=Callable[..., Any])


def idempotent(view: F) -> F:
    """Put outermost, above ``require_principal``: a missing key is 400, after the caller check."""
    setattr(view, GUARDS, (*getattr(view, GUARDS, ()), required_key))
    return view


def create_app(settings: Settings | None = None) -> OpenAPI:
    settings = settings or load_settings(Settings, service=SERVICE)
    app = create_chassis_app(SERVICE, settings, title="Payments service")
    platform = app.extensions["flotilla.platform"]
    db = Database(settings, app)
    keys = IdempotencyKeys(
        db,
        fingerprint_key(settings, platform),
        wait_seconds=settings.idempotency_wait_seconds,
        lease_seconds=settings.idempotency_lease_seconds,
    )
    provider = Provider(settings)
    _routes(app, db, keys, provider)
    return app


def _routes(app: OpenAPI, db: Database, keys: IdempotencyKeys, provider: Provider) -> None:
    @app.post(
        "/payments/authorizations",
        tags=[AUTHORIZATIONS],
        responses={201: api.Authorization, 400: None, 402: None, 409: None, 500: None, 503: None, 504: None},
    )
    @idempotent
    @require_principal(SCOPE)
    def authorize(header: api.IdempotencyHeader, body: api.AuthorizationIn) -> Any:
        """Authorize: hold an amount on a card.

        201 AUTHORIZED. 402 with a ``reason`` when the card is declined (the DECLINED authorization is
        kept, its id in ``authorization_id``). 500 for the error test card, 503 for an injected fault,
        504 when the provider would answer after the caller's deadline: nothing is recorded for those,
        and a retry with the same key tries again.
        """
        card = summary(body.card)

        def record(session: Session, answer: Behaviour) -> Stored:
            reason = None if answer is Behaviour.APPROVE else answer.value
            row = store.add(session, body, card, reason)
            result = store.authorization_json(row)
            if reason is None:
                return Stored.of_json(201, result, {"Location": f"/payments/authorizations/{row.id}"})
            return Stored.of_problem(_declined(reason, row.id))

        return keys.run(
            header.idempotency_key,
            keys.fingerprint(request.method, request.path, body.model_dump(mode="json")),
            lambda: provider.authorize(body.card),
            record,
        )

    for operation in store.TRANSITIONS:
        _state_route(app, keys, provider, operation)

    @app.get(
        "/payments/authorizations/<authorization_id>",
        tags=[AUTHORIZATIONS],
        responses={200: api.Authorization},
    )
    @require_principal(SCOPE)
    def get_authorization(path: api.AuthorizationPath) -> dict[str, Any]:
        """One authorization and its current state."""
        with db.session() as session:
            return store.authorization_json(store.get(session, path.authorization_id))

    @app.get("/payments/authorizations", tags=[AUTHORIZATIONS], responses={200: api.AuthorizationList})
    @require_principal(SCOPE)
    def list_authorizations(query: api.AuthorizationQuery) -> dict[str, Any]:
        """Every authorization made for an order, oldest first.

        How the orders service finds what a crashed saga left behind.
        """
        with db.session() as session:
            return {"items": [store.authorization_json(r) for r in store.for_order(session, query.order_id)]}


def _state_route(app: OpenAPI, keys: IdempotencyKeys, provider: Provider, operation: str) -> None:
    def change(header: api.IdempotencyHeader, path: api.AuthorizationPath) -> Any:
        def record(session: Session, _: None) -> Stored:
            return Stored.of_json(
                200, store.authorization_json(store.transition(session, path.authorization_id, operation))
            )

        return keys.run(
            header.idempotency_key,
            keys.fingerprint(request.method, request.path, None),
            provider.settle,
            record,
        )

    target = store.TRANSITIONS[operation][0]
    change.__name__ = operation
    change.__doc__ = (
        f"{operation.capitalize()} an authorization.\n\n200 {target}, also when it already is (nothing "
        f"changes); 409 with a ``reason`` from any other state."
    )
    guarded = idempotent(require_principal(SCOPE)(change))
    app.post(
        f"/payments/authorizations/<authorization_id>/{operation}",
        tags=[AUTHORIZATIONS],
        responses={200: api.Authorization, 400: None, 409: None, 503: None, 504: None},
    )(guarded)


def _declined(reason: str, authorization_id: str) -> ProblemError:
    detail = {
        Behaviour.DECLINE.value: "the card was declined",
        Behaviour.INSUFFICIENT_FUNDS.value: "the card has insufficient funds",
        Behaviour.UNSUPPORTED.value: "the simulated provider knows only its test cards (docs/payments.md)",
    }[reason]
    return ProblemError(
        402, "Payment declined", detail, type=DECLINED_TYPE, reason=reason, authorization_id=authorization_id
    )
