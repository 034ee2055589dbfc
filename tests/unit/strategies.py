"""Hypothesis strategies the billing invariants share: plans, periods and user histories."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import strategies as st

from shared.billing import Observation, Period, parse_plan

ZONES = ["UTC", "Pacific/Kiritimati", "Pacific/Pago_Pago", "Asia/Kolkata", "America/New_York",
         "Europe/London", "Australia/Adelaide", "Asia/Kathmandu", "America/Santiago"]
SKUS = ["SPB", "E3", "EMS"]

periods = st.builds(Period, st.integers(2024, 2030), st.integers(1, 12))


@st.composite
def plan_data(draw):
    """A plan as the API takes it: any currency's digits, any zone, proration, filters and tax."""
    return {
        "tenant_id": "t", "name": "Client", "currency": draw(st.sampled_from(["USD", "JPY", "KWD", "EUR"])),
        "timezone": draw(st.sampled_from(ZONES)), "proration": draw(st.sampled_from(["daily", "none"])),
        "per_user_price": str(draw(st.decimals(0, 500, places=2))),
        "sku_prices": {sku: str(draw(st.decimals(0, 100, places=3))) for sku in SKUS[:2]},
        "include_guests": draw(st.booleans()), "include_disabled": draw(st.booleans()),
        "require_license": draw(st.booleans()), "exclude_upn_patterns": ["svc-*"],
        "tax_rate": str(draw(st.decimals(0, "0.3", places=4))),
    }


plans = plan_data().map(parse_plan)


@st.composite
def histories(draw, period: Period, users=("u-1", "u-2", "u-3")):
    """Observations around the period, with distinct instants per user (ties would be order-bound)."""
    start = datetime(period.year, period.month, 1, tzinfo=timezone.utc) - timedelta(days=3)
    result = []
    for user in draw(st.lists(st.sampled_from(users), min_size=1, max_size=3, unique=True)):
        offsets = draw(st.lists(st.integers(0, 38 * 24 * 60), min_size=1, max_size=6, unique=True))
        for minute in offsets:
            result.append(Observation(
                at=start + timedelta(minutes=minute), user_id=user,
                user_principal_name=draw(st.sampled_from([f"{user}@c.com", f"svc-{user}@c.com"])),
                display_name=user, user_type=draw(st.sampled_from(["Member", "Guest"])),
                account_enabled=draw(st.booleans()),
                skus=tuple(sorted(draw(st.sets(st.sampled_from(SKUS))))), deleted=draw(st.booleans())))
    return result
