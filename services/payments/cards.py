"""Card numbers as the simulated provider reads them: checks, brand, last four, and the test cards.

Pure functions on the number; nothing here keeps it. What outlives the request is ``last4`` and
``brand`` only (see docs/payments.md).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

MIN_LENGTH = 12  # ISO/IEC 7812 allows 8-19 digits; no card network issues fewer than 12
MAX_LENGTH = 19
NUMBER_PATTERN = rf"^[0-9]{{{MIN_LENGTH},{MAX_LENGTH}}}$"


class Behaviour(enum.Enum):
    """What the provider does with a card."""

    APPROVE = "approve"
    DECLINE = "card_declined"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    SLOW = "slow"  # answers after PAYMENTS_SLOW_CARD_SECONDS, or 504 once the caller's deadline passes
    SERVER_ERROR = "processing_error"  # a 500 problem, every time
    UNSUPPORTED = "unsupported_card"  # a well-formed number that is not a test card


TEST_CARDS: dict[str, Behaviour] = {
    "4242424242424242": Behaviour.APPROVE,
    "4000000000000002": Behaviour.DECLINE,
    "4000000000009995": Behaviour.INSUFFICIENT_FUNDS,
    "4000000000000259": Behaviour.SLOW,
    "4000000000000119": Behaviour.SERVER_ERROR,
}


@dataclass(frozen=True)
class CardSummary:
    """All that is stored of a card."""

    brand: str
    last4: str


def luhn_valid(number: str) -> bool:
    """The mod-10 check digit every card number carries (catches a mistyped digit or swapped pair)."""
    total = 0
    for position, char in enumerate(reversed(number)):
        digit = ord(char) - 48
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def brand(number: str) -> str:
    """The card network from the number's leading digits (IIN ranges), ``unknown`` when none match."""
    two, four, six = int(number[:2]), int(number[:4]), int(number[:6])
    if number.startswith("4"):
        return "visa"
    if 51 <= two <= 55 or 222100 <= six <= 272099:
        return "mastercard"
    if two in (34, 37):
        return "amex"
    if four == 6011 or two == 65 or 644 <= int(number[:3]) <= 649:
        return "discover"
    return "unknown"


def summary(number: str) -> CardSummary:
    return CardSummary(brand=brand(number), last4=number[-4:])


def behaviour(number: str) -> Behaviour:
    return TEST_CARDS.get(number, Behaviour.UNSUPPORTED)
