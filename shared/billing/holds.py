"""Guardrails before an invoice is emailed: an invoice that moves too far from the client's
previous one, or the client's first (when asked for), is held for a person to look at.

Rules (settings, each overridable per client in the plan's `holds` object):
- HOLDS_ENABLED (`enabled`, default on): no invoice is ever held when off.
- HOLD_IF_TOTAL_CHANGES_PERCENT (`if_total_changes_percent`, default 50): held when the total
  differs from the previous invoice's by more than this share of it. "off": never for this.
- HOLD_IF_USERS_CHANGE (`if_users_change`, default "30%,5"): held when the users billed differ
  from the previous invoice's by more than this share of them AND by at least this many ("off").
- HOLD_FIRST_INVOICE (`first_invoice`, default off): the client's first invoice is held.
The previous invoice is the client's latest numbered one of an earlier month.
"""
from __future__ import annotations

import calendar
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Callable, Mapping

from shared.billing.errors import InputError
from shared.billing.period import Period

OVERRIDES = ("enabled", "if_total_changes_percent", "if_users_change", "first_invoice")
_MAX_PERCENT = Decimal(100_000)


@dataclass(frozen=True)
class UsersChange:
    percent: Decimal
    at_least: int


@dataclass(frozen=True)
class HoldRules:
    enabled: bool = True
    total_changes_percent: Decimal | None = Decimal(50)
    users_change: UsersChange | None = UsersChange(Decimal(30), 5)
    first_invoice: bool = False


@dataclass(frozen=True)
class Billed:
    """What the guardrails compare of an invoice."""
    period: Period
    number: str
    total: Decimal
    currency: str
    users: int


def parse_percent(value: object, what: str) -> Decimal | None:
    """A share in percent ("50", "50%", 50), or None for "off" or empty (the rule is off)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "off", "none")):
        return None
    text = str(value).strip().removesuffix("%").strip()
    try:
        percent = Decimal(text) if isinstance(value, (str, int)) and not isinstance(value, bool) and len(text) <= 12 \
            else None
    except InvalidOperation:
        percent = None
    if percent is None or not percent.is_finite() or not Decimal(0) <= percent <= _MAX_PERCENT:
        raise InputError(f"must be a percentage such as \"50\", got {value!r}", field=what)
    return percent


def parse_users_change(value: object, what: str) -> UsersChange | None:
    """"30%,5": more than 30 % and at least 5 users; "off" or empty: the rule is off."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "off", "none")):
        return None
    if not isinstance(value, str) or value.count(",") != 1:
        raise InputError(f"must be \"PERCENT%,AT_LEAST\" such as \"30%,5\", got {value!r}", field=what)
    percent_text, count_text = value.split(",")
    count_text = count_text.strip()
    if not count_text.isdigit() or len(count_text) > 7:
        raise InputError(f"must be \"PERCENT%,AT_LEAST\" such as \"30%,5\", got {value!r}", field=what)
    percent = parse_percent(percent_text, what)
    return UsersChange(percent if percent is not None else Decimal(0), int(count_text))


def parse_flag(value: object, what: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
        return value.strip().lower() in ("true", "1", "yes", "on")
    raise InputError(f"must be true or false, got {value!r}", field=what)


def check_overrides(value: object) -> dict[str, object]:
    """The plan's `holds` object, checked: every key known, every value readable."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InputError("must be an object such as {\"if_total_changes_percent\": \"80\"}", field="holds")
    for name in value:
        if name not in OVERRIDES:
            raise InputError(f"unknown field (known: {', '.join(OVERRIDES)})", field=f"holds.{name}")
    rules_of(HoldRules(), value, where="holds.")
    return dict(value)


def rules_of(defaults: HoldRules, values: Mapping[str, object], where: str = "") -> HoldRules:
    """`defaults` with the values given (names as in the plan's `holds`)."""
    changes: dict[str, object] = {}
    if "enabled" in values:
        changes["enabled"] = parse_flag(values["enabled"], where + "enabled")
    if "if_total_changes_percent" in values:
        changes["total_changes_percent"] = parse_percent(values["if_total_changes_percent"],
                                                         where + "if_total_changes_percent")
    if "if_users_change" in values:
        changes["users_change"] = parse_users_change(values["if_users_change"], where + "if_users_change")
    if "first_invoice" in values:
        changes["first_invoice"] = parse_flag(values["first_invoice"], where + "first_invoice")
    return replace(defaults, **changes)  # type: ignore[arg-type]


# The settings behind each plan override.
SETTING_OF = {"enabled": "HOLDS_ENABLED", "if_total_changes_percent": "HOLD_IF_TOTAL_CHANGES_PERCENT",
              "if_users_change": "HOLD_IF_USERS_CHANGE", "first_invoice": "HOLD_FIRST_INVOICE"}


def rules_for(setting: Callable[[str], str | None], overrides: Mapping[str, object]) -> HoldRules:
    """The rules for one client: the settings (read with `setting(name)`), the plan's `holds` over them."""
    given = {name: value for name, setting_name in SETTING_OF.items() if (value := setting(setting_name)) is not None}
    return rules_of(rules_of(HoldRules(), given), overrides)


def _amount(value: Decimal, currency: str) -> str:
    return f"{value:,} {currency}"


def _month(period: Period) -> str:
    return calendar.month_name[period.month]


def hold_reason(current: Billed, previous: Billed | None, rules: HoldRules) -> str | None:
    """Why the invoice is held, in plain words, or None if it may be emailed."""
    if not rules.enabled:
        return None
    if previous is None:
        return "it is the client's first invoice (HOLD_FIRST_INVOICE)" if rules.first_invoice else None
    then = _month(previous.period) if previous.period.year == current.period.year else \
        f"{_month(previous.period)} {previous.period.year}"
    facts = (f"{current.users} user{'s' if current.users != 1 else ''} billed, {previous.users} in {then}")
    if current.currency != previous.currency:
        return (f"total {_amount(current.total, current.currency)} is in another currency than {then}'s "
                f"{_amount(previous.total, previous.currency)}; {facts}")
    reasons = []
    limit = rules.total_changes_percent
    # Rule: held when |total - previous total| > limit % of the previous total (any total after a zero one).
    if limit is not None and abs(current.total - previous.total) * 100 > limit * previous.total:
        if previous.total:
            share = (current.total * 100 / previous.total).quantize(Decimal(1))
            reasons.append(f"total {_amount(current.total, current.currency)} is {share} % of {then}'s "
                           f"{_amount(previous.total, previous.currency)}")
        else:
            reasons.append(f"total {_amount(current.total, current.currency)} after {then}'s "
                           f"{_amount(previous.total, previous.currency)}")
    users = rules.users_change
    moved = abs(current.users - previous.users)
    # Rule: held when |users - previous users| > percent % of the previous users and >= at_least.
    if users is not None and moved * 100 > users.percent * previous.users and moved >= users.at_least:
        reasons.append(f"users billed changed by {moved}")
    if not reasons:
        return None
    return "; ".join([*reasons, facts])
