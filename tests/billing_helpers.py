"""Small builders for billing tests: plans and observations with sensible defaults."""
from __future__ import annotations

from shared.billing import Observation, Period, compute_invoice, parse_plan
from shared.billing.observations import parse_instant


def plan(**overrides):
    data = {"tenant_id": "t-1", "name": "Contoso Ltd", "currency": "USD", "timezone": "UTC",
            "per_user_price": "30.00", "sku_prices": {"SPB": "22.00", "E3": "36.00"}}
    data.update(overrides)
    return parse_plan(data)


def obs(at, user="u-1", *, upn=None, name=None, skus=(), enabled=True, user_type="Member", deleted=False):
    return Observation(at=parse_instant(at), user_id=user, user_principal_name=upn or f"{user}@contoso.com",
                       display_name=name or user.upper(), user_type=user_type, account_enabled=enabled,
                       skus=tuple(sorted(skus)), deleted=deleted)


def days_of(the_plan, observations, period="2026-10", user="u-1"):
    """{item: days} for one user, as the invoice shows it."""
    invoice = compute_invoice(the_plan, observations, Period.parse(period))
    return {line.item: line.days for line in invoice.lines if line.user_id == user}


def invoice(the_plan, observations, period="2026-10"):
    return compute_invoice(the_plan, observations, Period.parse(period)).to_json()
