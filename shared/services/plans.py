"""Changing a client's plan without re-onboarding: its versions (price and rule changes from a date).

Rules (billing-rules.md, "An issued invoice is final"): a version dated inside a month already
invoiced is refused, naming that invoice; a version already in force cannot be deleted (the days
it priced may be invoiced or about to be). Prorata's reading (docs/billing-rules.md): a version
holds until the next one, so it is refused when any invoiced month (or one whose close is under
way) has a day from its date up to the next version's date.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Mapping
from zoneinfo import ZoneInfo

from shared.billing import Period
from shared.billing.plan import Plan, PlanVersion, parse_date, parse_version
from shared.errors import TenantNotOnboarded
from shared.invoicing.steps import Step
from shared.ports import InvoiceRepository, TenantRepository

log = logging.getLogger("prorata.tenants")


class VersionNotFound(LookupError):
    """No plan version takes effect on that date (HTTP 404)."""


class PlanChangeRefused(Exception):
    """The change would alter an issued invoice or a version already in force (HTTP 409)."""


@dataclass(frozen=True)
class PlanChanged:
    tenant_id: str
    name: str
    plan: Plan
    sentence: str

    def to_json(self) -> dict[str, Any]:
        return {"tenant_id": self.tenant_id, "name": self.name, "plan": self.plan.to_dict(), "message": self.sentence}


def local_today(plan: Plan, now: datetime) -> date:
    return now.astimezone(ZoneInfo(plan.timezone)).date()


def show_tenant(tenants: TenantRepository, tenant_id: str) -> dict[str, Any]:
    """The client as stored: status, contacts, and the plan with its versions."""
    tenant = tenants.get(tenant_id)
    if tenant is None:
        raise TenantNotOnboarded(tenant_id)
    return {**tenant.summary(), "address": list(tenant.address), "plan": tenant.plan.to_dict()}


def invoiced_months(invoices: InvoiceRepository, tenant_id: str) -> dict[Period, str]:
    """The client's months whose close has begun, with the invoice number or where the close
    stands (a month with nothing to bill has no invoice: a version may still be dated in it)."""
    months: dict[Period, str] = {}
    for row in invoices.of_tenant(tenant_id):
        if row.get("status") == Step.NOTHING_TO_BILL:
            continue
        months[Period.parse(row.period)] = str(row.get("number") or f"its close is under way ({row.status or 'queued'})")
    return months


def add_version(tenants: TenantRepository, invoices: InvoiceRepository, tenant_id: str, data: object) -> PlanChanged:
    """Adds one version to the client's plan. InputError (400) for a bad version, TenantNotOnboarded
    (404), PlanChangeRefused (409) when its date falls on an invoiced month or is taken."""
    version = parse_version(data)
    tenant = tenants.get(tenant_id)
    if tenant is None:
        raise TenantNotOnboarded(tenant_id)
    if tenant.plan.version_dated(version.effective_from):
        raise PlanChangeRefused(f"{tenant.name} already has a version taking effect on "
                                f"{version.effective_from}; delete it first or choose another date")
    plan = tenant.plan.with_version(version)
    _refuse_if_invoiced(plan, version, invoiced_months(invoices, tenant_id), tenant.name)
    tenants.update(tenant_id, plan=plan)
    sentence = f"{tenant.name}: from {version.effective_from:%d %B %Y}, {describe_version(version, plan.currency)}."
    log.info("Plan version added. %s", sentence)
    return PlanChanged(tenant_id, tenant.name, plan, sentence)


def remove_version(tenants: TenantRepository, tenant_id: str, day_text: str, now: datetime) -> PlanChanged:
    """Deletes a version that is not yet in force (its date is after the client's today)."""
    day = parse_date(day_text, "effective_from")
    tenant = tenants.get(tenant_id)
    if tenant is None:
        raise TenantNotOnboarded(tenant_id)
    if tenant.plan.version_dated(day) is None:
        raise VersionNotFound(f"{tenant.name} has no plan version taking effect on {day}")
    today = local_today(tenant.plan, now)
    if day <= today:
        raise PlanChangeRefused(f"the version of {day} is already in force ({today} in {tenant.plan.timezone}); "
                                "add a new version to change prices from a later date")
    plan = tenant.plan.without_version(day)
    tenants.update(tenant_id, plan=plan)
    sentence = f"{tenant.name}: the version that was to take effect on {day:%d %B %Y} is deleted."
    log.info("Plan version deleted. %s", sentence)
    return PlanChanged(tenant_id, tenant.name, plan, sentence)


def _refuse_if_invoiced(plan: Plan, version: PlanVersion, months: Mapping[Period, str], name: str) -> None:
    later = [v.effective_from for v in plan.versions if v.effective_from > version.effective_from]
    until = later[0] if later else None  # exclusive
    for period in sorted(months):
        if period.last_day < version.effective_from or (until is not None and period.first_day >= until):
            continue
        raise PlanChangeRefused(
            f"a version from {version.effective_from} would change {_month(period)}, already invoiced to "
            f"{name} ({months[period]}); an issued invoice never changes: date the version after "
            f"{period.last_day}, or correct that month with a one-off charge or credit")


def _month(period: Period) -> str:
    return f"{period.first_day:%B %Y}"


def describe_version(version: PlanVersion, currency: str) -> str:
    """A version in plain words: "per-user fee 49.00 USD; SPB 24.00 USD, other SKUs not billed"."""
    data = version.to_dict(currency)
    parts = []
    for name, value in data.items():
        if name == "effective_from":
            continue
        if name == "per_user_price":
            parts.append("no per-user fee" if value is None else f"per-user fee {value} {currency}")
        elif name == "sku_prices":
            priced = ", ".join(f"{sku} {price} {currency}" for sku, price in value.items())
            parts.append(f"licenses billed: {priced}" if priced else "no license billed")
        else:
            parts.append(f"{name.replace('_', ' ')} {value}")
    return "; ".join(parts)
