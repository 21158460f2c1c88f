"""Carts in DynamoDB: one item per user, written only with a condition on its version.

Item shape (``<env>-cart-carts``, key ``user_id``)::

    user_id     S   the principal's subject
    version     N   1, 2, 3...: bumped by every write; the API's ETag
    items       M   sku -> {quantity N, name S, unit_price_cents N, currency S}
    updated_at  S   ISO 8601
    expires_at  N   epoch seconds; the table's TTL attribute, pushed forward on every write

A cart is never deleted by the API (clearing writes an empty one with the next version), so a
version number is never reused and an old ETag can't match a newer cart. DynamoDB deletes expired
items up to days late, so a read treats an item past ``expires_at`` as an empty cart.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from flotilla.resources import load_spec

SPEC = Path(__file__).with_name("resources.yaml")
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


@dataclass(frozen=True)
class LineItem:
    quantity: int
    name: str
    unit_price_cents: int
    currency: str


@dataclass(frozen=True)
class StoredCart:
    user_id: str
    version: int = 0  # 0: no item in the table yet
    items: dict[str, LineItem] = field(default_factory=dict)
    expires_at: int | None = None


def ttl_attribute(table: str, spec: Path = SPEC) -> str:
    """The TTL attribute declared for ``table`` in resources.yaml: the spec is the one place it lives."""
    declared = load_spec(spec).owns.tables.get(table)
    if declared is None or declared.ttl_attribute is None:
        raise LookupError(f"{spec.name} declares no table {table!r} with a ttlAttribute")
    return declared.ttl_attribute


class VersionConflict(Exception):
    """The cart changed since it was read (the conditional write failed)."""


class CartStore:
    def __init__(self, client: Any, table_name: str, ttl_attribute: str, ttl_seconds: float) -> None:
        self.client = client
        self.table_name = table_name
        self.ttl_attribute = ttl_attribute
        self.ttl_seconds = ttl_seconds

    def get(self, user_id: str) -> StoredCart:
        found = self.client.get_item(
            TableName=self.table_name, Key={"user_id": {"S": user_id}}, ConsistentRead=True
        ).get("Item")
        if found is None:
            return StoredCart(user_id)
        data = {k: _deserializer.deserialize(v) for k, v in found.items()}
        version = int(data.get("version", 0))
        expires_at = int(data[self.ttl_attribute]) if self.ttl_attribute in data else None
        if expires_at is not None and expires_at <= time.time():
            return StoredCart(user_id, version)  # expired, not yet swept by DynamoDB: empty
        items = {
            sku: LineItem(int(v["quantity"]), str(v["name"]), int(v["unit_price_cents"]), str(v["currency"]))
            for sku, v in data.get("items", {}).items()
        }
        return StoredCart(user_id, version, items, expires_at)

    def save(self, cart: StoredCart, items: dict[str, LineItem]) -> StoredCart:
        """Write ``items`` as the next version of ``cart``, only if nobody wrote since it was read."""
        new = StoredCart(cart.user_id, cart.version + 1, items, int(time.time() + self.ttl_seconds))
        doc = {
            "user_id": new.user_id,
            "version": new.version,
            "items": {
                sku: {
                    "quantity": line.quantity,
                    "name": line.name,
                    "unit_price_cents": line.unit_price_cents,
                    "currency": line.currency,
                }
                for sku, line in items.items()
            },
            "updated_at": datetime.now(UTC).isoformat(),
            self.ttl_attribute: Decimal(new.expires_at or 0),
        }
        condition: dict[str, Any]
        if cart.version == 0:
            condition = {"ConditionExpression": "attribute_not_exists(user_id)"}
        else:
            condition = {
                "ConditionExpression": "version = :read",
                "ExpressionAttributeValues": {":read": {"N": str(cart.version)}},
            }
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item={k: _serializer.serialize(v) for k, v in doc.items()},
                **condition,
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            raise VersionConflict(cart.user_id) from None
        return new

    def check(self) -> None:
        """Readiness: the table exists and answers."""
        self.client.describe_table(TableName=self.table_name)
