"""Request and response models of the payments API (pydantic; unknown fields are refused)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flotilla.api import Body, Model
from services.payments.cards import NUMBER_PATTERN, luhn_valid
from services.payments.idempotency import HEADER, KEY_PATTERN

AUTHORIZATION_ID_PATTERN = r"^pa_[0-9a-f]{32}$"
ORDER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
CURRENCY_PATTERN = r"^[A-Z]{3}$"
MAX_AMOUNT_CENTS = 100_000_000  # fits the INTEGER column with room to spare


class IdempotencyHeader(BaseModel):
    """The one header a POST must carry. Other headers are allowed (flask-openapi3 passes them all in)."""

    model_config = ConfigDict(extra="ignore")

    idempotency_key: str = Field(
        alias=HEADER,
        pattern=KEY_PATTERN,
        description="Unique per operation, the same on every retry of it (1-255 visible ASCII characters). "
        "Missing: 400. Sent again with another body: 422. Its first request still running: 409.",
    )


class AuthorizationPath(Model):
    authorization_id: str = Field(pattern=AUTHORIZATION_ID_PATTERN, description="pa_ and 32 hex digits.")


class AuthorizationQuery(Model):
    order_id: str = Field(pattern=ORDER_ID_PATTERN, description="Every authorization made for this order.")


class AuthorizationIn(Body):
    order_id: str = Field(pattern=ORDER_ID_PATTERN, description="The caller's order this payment is for.")
    amount_cents: int = Field(ge=1, le=MAX_AMOUNT_CENTS)
    currency: str = Field(pattern=CURRENCY_PATTERN, description="ISO 4217 code, e.g. USD.")
    card: str = Field(
        pattern=NUMBER_PATTERN,
        description="Card number, 12-19 digits, no spaces, passing the Luhn check; never stored "
        "(only its brand and last four digits are).",
    )

    @field_validator("card")
    @classmethod
    def _check_digit(cls, value: str) -> str:
        if not luhn_valid(value):
            raise ValueError("is not a card number (fails the Luhn check)")
        return value


class Card(Model):
    brand: str = Field(description="visa, mastercard, amex, discover or unknown.")
    last4: str


class Authorization(Model):
    id: str
    order_id: str
    status: str = Field(description="AUTHORIZED, CAPTURED, VOIDED or DECLINED.")
    amount_cents: int
    currency: str
    card: Card
    decline_reason: str | None = Field(description="card_declined, insufficient_funds or unsupported_card.")
    created_at: str
    updated_at: str


class AuthorizationList(Model):
    items: list[Authorization]
