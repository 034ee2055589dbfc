"""A client's plan: prices, proration policy, and the rules of who counts for the per-user fee."""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.billing.errors import InputError
from shared.billing.holds import check_overrides
from shared.billing.money import check_currency, format_price, parse_decimal

PRORATION_POLICIES = ("daily", "none")


@dataclass(frozen=True)
class Plan:
    tenant_id: str
    name: str
    currency: str
    timezone: str
    proration: str = "daily"
    per_user_price: Decimal | None = None
    sku_prices: Mapping[str, Decimal] = field(default_factory=dict)
    include_guests: bool = False
    include_disabled: bool = False
    require_license: bool = False
    exclude_upn_patterns: tuple[str, ...] = ()
    tax_rate: Decimal = Decimal("0")
    holds: Mapping[str, object] = field(default_factory=dict)  # overrides of the HOLD_* settings (billing/holds.py)

    def to_dict(self) -> dict[str, Any]:
        """The plan as JSON-ready data that `parse_plan` reads back to an equal plan."""
        return {
            "tenant_id": self.tenant_id, "name": self.name, "currency": self.currency,
            "timezone": self.timezone, "proration": self.proration,
            "per_user_price": None if self.per_user_price is None
            else format_price(self.per_user_price, self.currency),
            "sku_prices": {sku: format_price(price, self.currency) for sku, price in self.sku_prices.items()},
            "include_guests": self.include_guests, "include_disabled": self.include_disabled,
            "require_license": self.require_license,
            "exclude_upn_patterns": list(self.exclude_upn_patterns), "tax_rate": str(self.tax_rate),
            **({"holds": dict(self.holds)} if self.holds else {}),
        }


def _text(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value.strip():
        raise InputError("is required and must be a non-empty string", field=name)
    return value


def _flag(data: Mapping[str, Any], name: str) -> bool:
    value = data.get(name, False)
    if not isinstance(value, bool):
        raise InputError(f"must be true or false, got {value!r}", field=name)
    return value


def check_timezone(zone: object, field_name: str = "timezone") -> str:
    if not isinstance(zone, str) or not zone:
        raise InputError(f"unknown time zone {zone!r}", field=field_name)
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(f"unknown time zone {zone!r} (expected an IANA name such as 'Europe/London')",
                         field=field_name) from None
    return zone


def parse_plan(data: object, source: str | None = None) -> Plan:
    """Reads and checks a plan; every problem raises an InputError naming the field."""
    try:
        return _parse_plan(data)
    except InputError as error:
        raise (error.located(source) if source else error) from None


def _parse_plan(data: object) -> Plan:
    if not isinstance(data, Mapping):
        raise InputError("a plan must be a JSON object")
    known = set(Plan.__dataclass_fields__)
    for name in data:
        if name not in known:
            raise InputError(f"unknown plan field (known: {', '.join(sorted(known))})", field=name)
    currency = check_currency(data.get("currency"))
    proration = data.get("proration", "daily")
    if proration not in PRORATION_POLICIES:
        raise InputError(f"must be 'daily' or 'none', got {proration!r}", field="proration")
    per_user = data.get("per_user_price")
    sku_prices = data.get("sku_prices") or {}
    if not isinstance(sku_prices, Mapping):
        raise InputError("must be an object of SKU -> price", field="sku_prices")
    patterns = data.get("exclude_upn_patterns") or []
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        raise InputError("must be a list of strings", field="exclude_upn_patterns")
    plan = Plan(
        tenant_id=_text(data, "tenant_id"),
        name=_text(data, "name"),
        currency=currency,
        timezone=check_timezone(data.get("timezone")),
        proration=proration,
        per_user_price=None if per_user is None else parse_decimal(per_user, "per_user_price"),
        sku_prices={str(sku): parse_decimal(price, f"sku_prices.{sku}") for sku, price in sku_prices.items()},
        include_guests=_flag(data, "include_guests"),
        include_disabled=_flag(data, "include_disabled"),
        require_license=_flag(data, "require_license"),
        exclude_upn_patterns=tuple(patterns),
        tax_rate=parse_decimal(data.get("tax_rate", "0"), "tax_rate"),
        holds=check_overrides(data.get("holds")),
    )
    if "user" in plan.sku_prices:
        raise InputError("'user' is the per-user fee's item name, not a SKU; use per_user_price",
                         field="sku_prices.user")
    return plan
