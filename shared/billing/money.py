"""Money: Decimal amounts, the currency's minor units from Babel, and half-up rounding."""
from __future__ import annotations

from decimal import Decimal, InvalidOperation
from fractions import Fraction
from functools import lru_cache

from babel.numbers import get_currency_precision, list_currencies

from shared.billing.errors import InputError
from shared.billing.limits import check_decimal_bounds


@lru_cache(maxsize=None)
def _known_currencies() -> frozenset[str]:
    return frozenset(list_currencies())


def check_currency(code: object) -> str:
    if not isinstance(code, str) or code.upper() != code or code not in _known_currencies():
        raise InputError(f"unknown currency {code!r} (expected an ISO 4217 code such as 'USD')",
                         field="currency")
    return code


@lru_cache(maxsize=None)
def minor_units(currency: str) -> int:
    """Digits after the decimal point of the currency (USD 2, JPY 0, KWD 3), as Babel (CLDR) says."""
    return get_currency_precision(check_currency(currency))


def round_half_up(exact: Fraction, currency: str) -> Decimal:
    """Rounds an exact, non-negative amount half-up to the currency's minor units.

    Exact rational arithmetic means no intermediate rounding ever happens before this step.
    """
    digits = minor_units(currency)
    scaled = exact * (10 ** digits)
    units = (scaled.numerator * 2 + scaled.denominator) // (scaled.denominator * 2)  # floor(x + 1/2)
    return Decimal(units).scaleb(-digits).quantize(Decimal(1).scaleb(-digits))


def round_signed(exact: Fraction, currency: str) -> Decimal:
    """Half-up rounding of a signed amount, symmetric around zero (a credit rounds as the charge
    of the same size would: -2.675 -> -2.68)."""
    rounded = round_half_up(abs(exact), currency)
    return -rounded if exact < 0 else rounded


def format_money(amount: Decimal, currency: str) -> str:
    """A money string with exactly the currency's minor digits ("24.68", JPY "1200")."""
    return str(amount.quantize(Decimal(1).scaleb(-minor_units(currency))))


def format_price(price: Decimal, currency: str) -> str:
    """A unit price: at least the currency's minor digits, more only if the price has them."""
    digits = minor_units(currency)
    exponent = price.normalize().as_tuple().exponent
    places = max(digits, -exponent if isinstance(exponent, int) else digits)
    return str(price.quantize(Decimal(1).scaleb(-places)))


def parse_decimal(value: object, field: str, *, allow_negative: bool = False) -> Decimal:
    """A decimal from a string or a JSON number, read exactly (never through a binary float)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        raise InputError(f"expected a decimal string such as \"45.00\", got {value!r}", field=field)
    if isinstance(value, str) and len(value) > 64:
        raise InputError(f"not a decimal number: {value[:20]!r}... ({len(value)} characters)", field=field)
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value).strip())
    except InvalidOperation:
        raise InputError(f"not a decimal number: {value!r}", field=field) from None
    if not number.is_finite():
        raise InputError(f"not a finite number: {value!r}", field=field)
    if number < 0 and not allow_negative:
        raise InputError(f"must not be negative, got {value}", field=field)
    return check_decimal_bounds(number, field, value)
