"""Which month of a client is due to be closed: one pure rule for the month-end timer, its
catch-up and `./dev close` alike.

Rules:
- A client's month is closed only once it has ended in the client's own time zone; the month
  due at `now` is the most recent one that has ended there.
- A month is the MSP's to bill if the client was onboarded before it ended and was not
  offboarded before it began: a client offboarded during the month is billed up to the
  offboarding (docs/billing-rules.md), a client still active is billed for all of it.
"""
from __future__ import annotations

from datetime import datetime

from shared.billing import Period
from shared.tenants import ACTIVE, Tenant


def last_ended_month(zone: str, now: datetime) -> Period:
    """The most recent month that has ended in the zone at `now`."""
    return Period.current(zone, now).previous()


def bills_month(tenant: Tenant, period: Period) -> bool:
    """Whether any of the month is the MSP's to bill for this client (see the module's rules)."""
    zone = tenant.plan.timezone
    if tenant.onboarded_at is not None and tenant.onboarded_at >= period.end(zone):
        return False  # onboarded after that month: none of it is the MSP's to bill
    if tenant.status != ACTIVE and (tenant.offboarded_at is None or tenant.offboarded_at <= period.start(zone)):
        return False  # offboarded before that month began: nothing more to bill
    return True


def due_period(tenant: Tenant, now: datetime) -> Period | None:
    """The month of this client that is due to be closed at `now`, or None if there is none."""
    period = last_ended_month(tenant.plan.timezone, now)
    return period if bills_month(tenant, period) else None
