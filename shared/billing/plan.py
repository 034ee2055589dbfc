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
# EN 16931 VAT category codes (UNCL 5305) a plan may carry: standard rate, zero rated, exempt,
# reverse charge. Without one, a plan with a tax rate is S and a plan without is Z.
TAX_CATEGORIES = ("S", "Z", "E", "AE")


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
    accounting: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # item or "*" -> {account_code, tax_type}
    tax_category: str | None = None  # S/Z/E/AE; None: S with a tax rate, Z without
    tax_exemption_reason: str = ""  # the law the exemption or reverse charge rests on (E, AE)

    @property
    def vat_category(self) -> str:
        """The EN 16931 VAT category of the plan's lines (S when taxed, Z when not, unless set)."""
        return self.tax_category or ("S" if self.tax_rate else "Z")

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
            **({"accounting": {item: dict(codes) for item, codes in self.accounting.items()}}
               if self.accounting else {}),
            **({"tax_category": self.tax_category} if self.tax_category else {}),
            **({"tax_exemption_reason": self.tax_exemption_reason} if self.tax_exemption_reason else {}),
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
        accounting=_accounting(data.get("accounting")),
        tax_category=_tax_category(data),
        tax_exemption_reason=_optional_text(data, "tax_exemption_reason"),
    )
    if "user" in plan.sku_prices:
        raise InputError("'user' is the per-user fee's item name, not a SKU; use per_user_price",
                         field="sku_prices.user")
    return plan


ACCOUNTING_FIELDS = ("account_code", "tax_type")


def _accounting(value: object) -> dict[str, dict[str, str]]:
    """{item or "*": {account_code, tax_type}}: the codes the accounting exports use for an item
    ("*": every item of the plan) instead of ACCOUNTING_REVENUE_ACCOUNT / ACCOUNTING_TAX_TYPE."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InputError('must be an object of item -> {"account_code": ..., "tax_type": ...}', field="accounting")
    codes: dict[str, dict[str, str]] = {}
    for item, entry in value.items():
        if not isinstance(entry, Mapping):
            raise InputError("must be an object with account_code and/or tax_type", field=f"accounting.{item}")
        for name, text in entry.items():
            if name not in ACCOUNTING_FIELDS:
                raise InputError(f"unknown field (known: {', '.join(ACCOUNTING_FIELDS)})",
                                 field=f"accounting.{item}.{name}")
            if not isinstance(text, str) or not text.strip():
                raise InputError("must be a non-empty string", field=f"accounting.{item}.{name}")
        codes[str(item)] = {name: text.strip() for name, text in entry.items()}
    return codes


def _optional_text(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name, "")
    if not isinstance(value, str):
        raise InputError("must be a string", field=name)
    return value.strip()


def _tax_category(data: Mapping[str, Any]) -> str | None:
    """The VAT category, coherent with the tax rate (EN 16931 BR-S-05, BR-Z-05, BR-E-05, BR-AE-05:
    S has a rate above zero, the others zero; BR-E-10: an exempt invoice says why)."""
    category = data.get("tax_category")
    if category is None:
        return None
    if category not in TAX_CATEGORIES:
        raise InputError(f"unknown tax category {category!r} (known: S standard rate, Z zero rated, "
                         "E exempt, AE reverse charge)", field="tax_category")
    rate = parse_decimal(data.get("tax_rate", "0"), "tax_rate")
    if category == "S" and not rate:
        raise InputError("category S (standard rate) needs a tax_rate above 0", field="tax_rate")
    if category != "S" and rate:
        raise InputError(f"category {category} is charged at 0 %; tax_rate must be 0", field="tax_rate")
    if category == "E" and not _optional_text(data, "tax_exemption_reason"):
        raise InputError("an exempt plan (tax_category E) must say why it is exempt "
                         "(e.g. \"Exempt under Article 135 of Directive 2006/112/EC\")",
                         field="tax_exemption_reason")
    return category
