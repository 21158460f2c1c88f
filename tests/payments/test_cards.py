"""The provider's reading of card numbers: the Luhn check, the brand, what is kept, each test card."""

from __future__ import annotations

import pytest

from services.payments.cards import TEST_CARDS, Behaviour, behaviour, brand, luhn_valid, summary
from tests.payments.support import APPROVE, DECLINE, INSUFFICIENT, SERVER_ERROR, SLOW, UNKNOWN_VALID


@pytest.mark.parametrize("number", [*TEST_CARDS, UNKNOWN_VALID, "5555555555554444", "378282246310005"])
def test_well_formed_numbers_pass_the_luhn_check(number: str) -> None:
    assert luhn_valid(number)


@pytest.mark.parametrize("number", ["4242424242424241", "4242424242424224", "1234567890123"])
def test_a_changed_digit_or_swapped_pair_fails_it(number: str) -> None:
    assert not luhn_valid(number)


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        (APPROVE, "visa"),
        ("5555555555554444", "mastercard"),
        ("2223003122003222", "mastercard"),
        ("378282246310005", "amex"),
        ("6011111111111117", "discover"),
        ("3056930009020004", "unknown"),
    ],
)
def test_brand_comes_from_the_leading_digits(number: str, expected: str) -> None:
    assert brand(number) == expected


def test_only_brand_and_last_four_are_kept() -> None:
    kept = summary(APPROVE)
    assert (kept.brand, kept.last4) == ("visa", "4242")
    assert set(vars(kept)) == {"brand", "last4"}


def test_each_test_card_has_its_behaviour() -> None:
    assert {number: behaviour(number) for number in (APPROVE, DECLINE, INSUFFICIENT, SLOW, SERVER_ERROR)} == {
        APPROVE: Behaviour.APPROVE,
        DECLINE: Behaviour.DECLINE,
        INSUFFICIENT: Behaviour.INSUFFICIENT_FUNDS,
        SLOW: Behaviour.SLOW,
        SERVER_ERROR: Behaviour.SERVER_ERROR,
    }
    assert behaviour(UNKNOWN_VALID) is Behaviour.UNSUPPORTED
