"""A client's plan: prices, proration policy, and the rules of who counts for the per-user fee."""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from typing import Any, Callable, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.billing.errors import InputError
from shared.billing.limits import (
    MAX_KEY_LENGTH, MAX_PATTERN_LENGTH, MAX_PATTERNS, MAX_SKUS, MAX_VERSIONS, MAX_ZONE_LENGTH,
    check_plan_size, check_tax_rate, check_text, check_year,
)
from shared.billing.holds import check_overrides
from shared.billing.money import check_currency, format_price, parse_decimal

PRORATION_POLICIES = ("daily", "none")
# EN 16931 VAT category codes (UNCL 5305) a plan may carry: standard rate, zero rated, exempt,
# reverse charge. Without one, a plan with a tax rate is S and a plan without is Z.
TAX_CATEGORIES = ("S", "Z", "E", "AE")
# What a plan version may change, and what it may not (the contract: "Price and rule changes").
VERSIONED_FIELDS = ("per_user_price", "sku_prices", "include_guests", "include_disabled",
                    "require_license", "exclude_upn_patterns")
UNVERSIONED_FIELDS = ("tenant_id", "name", "currency", "timezone", "proration", "tax_rate")
_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")


@dataclass(frozen=True)
class PlanVersion:
    """A price or rule change in force from 00:00 local on `effective_from` until the next version.

    Only the fields named in `sets` change; the others keep the value in force the day before
    (so `per_user_price` None in `sets` ends the per-user fee, while an unset one keeps it).
    """
    effective_from: date
    sets: frozenset[str]
    per_user_price: Decimal | None = None
    sku_prices: Mapping[str, Decimal] = field(default_factory=dict)
    include_guests: bool = False
    include_disabled: bool = False
    require_license: bool = False
    exclude_upn_patterns: tuple[str, ...] = ()

    def to_dict(self, currency: str) -> dict[str, Any]:
        data: dict[str, Any] = {"effective_from": self.effective_from.isoformat()}
        for name in VERSIONED_FIELDS:
            if name in self.sets:
                data[name] = _field_to_json(name, getattr(self, name), currency)
        return data


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
    versions: tuple[PlanVersion, ...] = ()  # sorted by effective_from
    # How the invoice names things (issue 14): `item_names` {item -> name} overrides the product
    # catalog, `user_item_name` names the per-user fee, `tax_label` the tax ("VAT", "MwSt."), and
    # `purchase_order` is the client's own reference, printed on every invoice when set.
    item_names: Mapping[str, str] = field(default_factory=dict)
    user_item_name: str = ""
    tax_label: str = ""
    purchase_order: str = ""
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
            "per_user_price": _field_to_json("per_user_price", self.per_user_price, self.currency),
            "sku_prices": _field_to_json("sku_prices", self.sku_prices, self.currency),
            "include_guests": self.include_guests, "include_disabled": self.include_disabled,
            "require_license": self.require_license,
            "exclude_upn_patterns": list(self.exclude_upn_patterns), "tax_rate": str(self.tax_rate),
            "versions": [version.to_dict(self.currency) for version in self.versions],
            **({"item_names": dict(self.item_names)} if self.item_names else {}),
            **({"user_item_name": self.user_item_name} if self.user_item_name else {}),
            **({"tax_label": self.tax_label} if self.tax_label else {}),
            **({"purchase_order": self.purchase_order} if self.purchase_order else {}),
            **({"holds": dict(self.holds)} if self.holds else {}),
            **({"accounting": {item: dict(codes) for item, codes in self.accounting.items()}}
               if self.accounting else {}),
            **({"tax_category": self.tax_category} if self.tax_category else {}),
            **({"tax_exemption_reason": self.tax_exemption_reason} if self.tax_exemption_reason else {}),
        }

    def terms_on(self, day: date) -> "Plan":
        """The plan in force on a local day: the base fields with every version dated up to that
        day applied in date order; the result carries no versions."""
        terms = replace(self, versions=())
        for version in self.versions:
            if version.effective_from > day:
                break
            terms = replace(terms, **{name: getattr(version, name) for name in version.sets})
        return terms

    def terms_by_days(self, days: list[date]) -> list[tuple[int, int, "Plan"]]:
        """The consecutive runs of the given local days that share one version in force:
        (first index, end index exclusive, terms). One run when no version falls inside."""
        runs: list[tuple[int, int, Plan]] = []
        start = 0
        for index in range(1, len(days) + 1):
            if index == len(days) or any(days[start] < v.effective_from <= days[index] for v in self.versions):
                runs.append((start, index, self.terms_on(days[start])))
                start = index
        return runs

    def version_dated(self, day: date) -> PlanVersion | None:
        return next((version for version in self.versions if version.effective_from == day), None)

    def with_version(self, version: PlanVersion) -> "Plan":
        """This plan with one more version (an InputError naming the field if its date is taken)."""
        if self.version_dated(version.effective_from):
            raise InputError(f"a version already takes effect on {version.effective_from}",
                             field="effective_from")
        if len(self.versions) >= MAX_VERSIONS:
            raise InputError(f"at most {MAX_VERSIONS} versions", field="versions")
        plan = replace(self, versions=tuple(sorted((*self.versions, version), key=lambda v: v.effective_from)))
        check_plan_size(plan.to_dict())
        return plan

    def without_version(self, day: date) -> "Plan":
        return replace(self, versions=tuple(v for v in self.versions if v.effective_from != day))


def _field_to_json(name: str, value: Any, currency: str) -> Any:
    if name == "per_user_price":
        return None if value is None else format_price(value, currency)
    if name == "sku_prices":
        return {sku: format_price(price, currency) for sku, price in value.items()}
    if name == "exclude_upn_patterns":
        return list(value)
    return value


def _text(data: Mapping[str, Any], name: str) -> str:
    return check_text(data.get(name), name)


def _flag(data: Mapping[str, Any], name: str, prefix: str = "") -> bool:
    value = data.get(name, False)
    if not isinstance(value, bool):
        raise InputError(f"must be true or false, got {str(value)[:40]!r}", field=prefix + name)
    return value


def _per_user_price(data: Mapping[str, Any], prefix: str = "") -> Decimal | None:
    value = data.get("per_user_price")
    return None if value is None else parse_decimal(value, prefix + "per_user_price")


def _sku_prices(data: Mapping[str, Any], prefix: str = "") -> dict[str, Decimal]:
    name = prefix + "sku_prices"
    prices = data.get("sku_prices") or {}
    if not isinstance(prices, Mapping):
        raise InputError("must be an object of SKU -> price", field=name)
    if len(prices) > MAX_SKUS:
        raise InputError(f"at most {MAX_SKUS} SKUs", field=name)
    for sku in prices:
        check_text(sku, f"{name} key", limit=MAX_KEY_LENGTH)
    if "user" in prices:
        raise InputError("'user' is the per-user fee's item name, not a SKU; use per_user_price",
                         field=f"{name}.user")
    return {str(sku): parse_decimal(price, f"{name}.{sku}") for sku, price in prices.items()}


def _patterns(data: Mapping[str, Any], prefix: str = "") -> tuple[str, ...]:
    name = prefix + "exclude_upn_patterns"
    patterns = data.get("exclude_upn_patterns") or []
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        raise InputError("must be a list of strings", field=name)
    if len(patterns) > MAX_PATTERNS:
        raise InputError(f"at most {MAX_PATTERNS} patterns", field=name)
    for pattern in patterns:
        check_text(pattern, name, limit=MAX_PATTERN_LENGTH)
    return tuple(patterns)


_VERSIONED_READERS: dict[str, Callable[[Mapping[str, Any], str], Any]] = {
    "per_user_price": _per_user_price, "sku_prices": _sku_prices, "include_guests":
    lambda data, prefix: _flag(data, "include_guests", prefix), "include_disabled":
    lambda data, prefix: _flag(data, "include_disabled", prefix), "require_license":
    lambda data, prefix: _flag(data, "require_license", prefix), "exclude_upn_patterns": _patterns,
}


def parse_date(value: object, field_name: str) -> date:
    """A calendar date written YYYY-MM-DD, in the sane range of years."""
    match = _DATE.fullmatch(value) if isinstance(value, str) else None
    if not match:
        raise InputError(f"must be a date YYYY-MM-DD, got {str(value)[:40]!r}", field=field_name)
    check_year(int(match.group(1)), field_name)
    try:
        return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError as error:
        raise InputError(f"not a calendar date: {value!r} ({error})", field=field_name) from None


def parse_version(data: object, prefix: str = "") -> PlanVersion:
    """Reads one plan version; field names in errors carry `prefix` (e.g. "versions[1].")."""
    if not isinstance(data, Mapping):
        raise InputError("a plan version must be a JSON object", field=prefix.rstrip(".") or None)
    for name in data:
        if name in UNVERSIONED_FIELDS:
            raise InputError(f"cannot change in a plan version (only {', '.join(VERSIONED_FIELDS)} can)",
                             field=prefix + str(name))
        if name != "effective_from" and name not in VERSIONED_FIELDS:
            raise InputError(f"unknown plan version field (known: effective_from, {', '.join(VERSIONED_FIELDS)})",
                             field=prefix + str(name)[:MAX_KEY_LENGTH])
    if "effective_from" not in data:
        raise InputError("is required", field=prefix + "effective_from")
    day = parse_date(data["effective_from"], prefix + "effective_from")
    sets = frozenset(name for name in VERSIONED_FIELDS if name in data)
    if not sets:
        raise InputError(f"a version must change at least one of {', '.join(VERSIONED_FIELDS)}",
                         field=prefix.rstrip(".") or "effective_from")
    values = {name: _VERSIONED_READERS[name](data, prefix) for name in sets}
    return PlanVersion(effective_from=day, sets=sets, **values)


def _versions(data: Mapping[str, Any]) -> tuple[PlanVersion, ...]:
    raw = data.get("versions") or []
    if not isinstance(raw, list):
        raise InputError("must be a list of plan versions", field="versions")
    if len(raw) > MAX_VERSIONS:
        raise InputError(f"at most {MAX_VERSIONS} versions", field="versions")
    versions: list[PlanVersion] = []
    seen: dict[date, int] = {}
    for index, item in enumerate(raw):
        version = parse_version(item, f"versions[{index}].")
        if version.effective_from in seen:
            raise InputError(f"the same date as versions[{seen[version.effective_from]}] "
                             f"({version.effective_from}); merge them into one version",
                             field=f"versions[{index}].effective_from")
        seen[version.effective_from] = index
        versions.append(version)
    return tuple(sorted(versions, key=lambda v: v.effective_from))
def _label(data: Mapping[str, Any], name: str, limit: int = 200) -> str:
    """An optional one-line text printed on invoices (empty when absent)."""
    value = data.get(name, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InputError(f"must be a string, got {value!r}", field=name)
    text = " ".join(value.split())
    if len(text) > limit:
        raise InputError(f"must be at most {limit} characters, got {len(text)}", field=name)
    return text


def _item_names(data: Mapping[str, Any]) -> dict[str, str]:
    names = data.get("item_names") or {}
    if not isinstance(names, Mapping):
        raise InputError("must be an object of item -> name", field="item_names")
    result: dict[str, str] = {}
    for item, name in names.items():
        text = _label({"name": name}, "name")
        if not text:
            raise InputError("must be a non-empty string", field=f"item_names.{item}")
        result[str(item)] = text
    return result


def check_timezone(zone: object, field_name: str = "timezone") -> str:
    if not isinstance(zone, str) or not zone or len(zone) > MAX_ZONE_LENGTH:
        shown = zone[:40] + "..." if isinstance(zone, str) and len(zone) > 40 else zone
        raise InputError(f"unknown time zone {shown!r}", field=field_name)
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
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
    plan = _read_plan(data)
    check_plan_size(plan.to_dict())
    return plan


def _read_plan(data: object) -> Plan:
    if not isinstance(data, Mapping):
        raise InputError("a plan must be a JSON object")
    known = set(Plan.__dataclass_fields__)
    for name in data:
        if name not in known:
            raise InputError(f"unknown plan field (known: {', '.join(sorted(known))})",
                             field=str(name)[:MAX_KEY_LENGTH])
    currency = check_currency(data.get("currency"))
    proration = data.get("proration", "daily")
    if proration not in PRORATION_POLICIES:
        raise InputError(f"must be 'daily' or 'none', got {str(proration)[:40]!r}", field="proration")
    return Plan(
        tenant_id=_text(data, "tenant_id"),
        name=_text(data, "name"),
        currency=currency,
        timezone=check_timezone(data.get("timezone")),
        proration=proration,
        per_user_price=_per_user_price(data),
        sku_prices=_sku_prices(data),
        include_guests=_flag(data, "include_guests"),
        include_disabled=_flag(data, "include_disabled"),
        require_license=_flag(data, "require_license"),
        exclude_upn_patterns=_patterns(data),
        tax_rate=check_tax_rate(parse_decimal(data.get("tax_rate", "0"), "tax_rate")),
        versions=_versions(data),
        item_names=_item_names(data),
        user_item_name=_label(data, "user_item_name"),
        tax_label=_label(data, "tax_label", 40),
        purchase_order=_label(data, "purchase_order", 100),
        holds=check_overrides(data.get("holds")),
        accounting=_accounting(data.get("accounting")),
        tax_category=_tax_category(data),
        tax_exemption_reason=_optional_text(data, "tax_exemption_reason"),
    )


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
