"""Plan sanity: the bounds every door (HTTP, CLI, JSONL) applies through the core, in one place.

An unattended month-end run emails what it computes, so a plausible mistake (a tax rate typed as
a percentage, a price of 1e26, a 300-character zone) must be refused where it is entered, with a
message naming the field, never stored and never turned into a 500, a traceback or a hang.
"""
from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Mapping

from shared.billing.errors import InputError

# Prices and rates: finite, at most 12 digits before the point and 6 after it (a per-user fee of
# 999,999,999,999.999999 is already absurd; 6 decimals cover any real unit price or tax rate).
MAX_INTEGER_DIGITS = 12
MAX_DECIMALS = 6
# Billing periods (and plan version dates) a real MSP can mean.
FIRST_YEAR, LAST_YEAR = 2000, 2199
# Strings and collections: large enough for any real client, small enough for one table row.
MAX_NAME_LENGTH = 200          # tenant_id, name, display names
MAX_KEY_LENGTH = 100           # SKU keys, field names
MAX_ZONE_LENGTH = 64           # IANA names are at most ~32 characters
MAX_PATTERN_LENGTH = 256
MAX_PATTERNS = 100
MAX_SKUS = 200
MAX_VERSIONS = 240             # twenty years of monthly price changes
MAX_NESTING = 32               # JSON depth of any request body or file
MAX_JSON_CHARS = 1_000_000     # one plan or one JSONL line
MAX_PLAN_JSON_CHARS = 30_000   # a stored plan fits one Table Storage string property (64 KiB UTF-16)


def check_decimal_bounds(number: Decimal, field: str, original: object) -> Decimal:
    """Rule: a price or rate is finite and has at most 12 integer digits and 6 decimals.

    Read from the digits and exponent alone (no context arithmetic), so 1e-99999999 or 1e26 is
    refused at once instead of spinning in exact arithmetic or overflowing later.
    """
    if not number.is_finite():
        raise InputError(f"not a finite number: {original!r}", field=field)
    sign, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)
    significant = "".join(map(str, digits)).lstrip("0")
    if not significant:
        return Decimal(0)
    # trailing zeros after the point do not make a price finer ("45.0000000" is 45)
    stripped = significant.rstrip("0")
    exponent += len(significant) - len(stripped)
    integer_digits = len(stripped) + exponent
    if integer_digits > MAX_INTEGER_DIGITS:
        raise InputError(f"too large: {original!r} (at most {MAX_INTEGER_DIGITS} digits before the point)",
                         field=field)
    if -exponent > MAX_DECIMALS:
        raise InputError(f"too many decimals: {original!r} (at most {MAX_DECIMALS})", field=field)
    return number


def check_tax_rate(rate: Decimal, field: str = "tax_rate") -> Decimal:
    """Rule: tax_rate is a fraction in [0, 1); a value of 1 or more is almost surely a percentage."""
    if rate >= 1:
        hint = (rate / 100).normalize()
        raise InputError(f"{rate} looks like a percentage; did you mean {hint:f}? "
                         "(tax_rate is a fraction in [0, 1), e.g. 0.0825 for 8.25 %)", field=field)
    return rate


def check_text(value: object, field: str, *, limit: int = MAX_NAME_LENGTH, required: bool = True) -> str:
    if not isinstance(value, str) or (required and not value.strip()):
        raise InputError("is required and must be a non-empty string", field=field)
    if len(value) > limit:
        raise InputError(f"is too long ({len(value)} characters, at most {limit})", field=field)
    if any(ord(ch) < 32 for ch in value):
        raise InputError("must not contain control characters", field=field)
    return value


def check_year(year: int, field: str) -> int:
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise InputError(f"year {year} is outside {FIRST_YEAR}..{LAST_YEAR}", field=field)
    return year


def check_plan_size(data: Mapping[str, Any]) -> None:
    size = len(json.dumps(data, ensure_ascii=False))
    if size > MAX_PLAN_JSON_CHARS:
        raise InputError(f"the plan is too large ({size} characters as JSON, at most {MAX_PLAN_JSON_CHARS})",
                         field="versions" if data.get("versions") else None)


def check_nesting(data: object, limit: int = MAX_NESTING) -> None:
    """Rule: no JSON value nests deeper than MAX_NESTING (checked without recursion)."""
    stack: list[tuple[object, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, Mapping):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            raise InputError(f"nested too deeply (more than {limit} levels)")
        stack.extend((child, depth + 1) for child in children)


def load_json(text: str | bytes, *, what: str = "JSON") -> Any:
    """Parses JSON text with the sanity bounds: UTF-8, bounded size and nesting, numbers read as
    Decimal (never through binary floats). Raises InputError (line number where there is one)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError("not UTF-8 text") from None
    if len(text) > MAX_JSON_CHARS:
        raise InputError(f"{what} is too large ({len(text)} characters, at most {MAX_JSON_CHARS})")
    try:
        data = json.loads(text, parse_float=Decimal, parse_int=_bounded_int, parse_constant=_no_constant)
    except json.JSONDecodeError as error:
        raise InputError(f"not valid JSON ({error.msg} at column {error.colno})", line=error.lineno) from None
    except RecursionError:
        raise InputError(f"nested too deeply (more than {MAX_NESTING} levels)") from None
    except ValueError as error:  # an integer too long to read, NaN/Infinity
        raise InputError(f"not valid JSON ({error})") from None
    check_nesting(data)
    return data


def _bounded_int(text: str) -> int | Decimal:
    if len(text.lstrip("-")) > 40:
        raise ValueError(f"number too long ({len(text)} digits)")
    return int(text)


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows")
