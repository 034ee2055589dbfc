"""./dev close --tenant bills from the client's onboarding: a month that ended before it is
skipped with the reason, unless the MSP asks for a back-dated start."""
from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone

from shared.billing import Observation, Period, parse_plan
from shared.tenants import OFFBOARDED, Tenant
from tests.integration.stack import running_stack

UTC = timezone.utc


def test_a_month_before_onboarding_is_billed_only_when_asked_for_explicitly(azurite):
    with running_stack(azurite.connection_string) as (sim, host, app):
        app.clock = lambda: datetime(2026, 12, 2, tzinfo=UTC)
        tenant_id = str(uuid.uuid4())
        plan = parse_plan({"tenant_id": tenant_id, "name": "Backfill Ltd", "currency": "USD",
                           "timezone": "America/New_York", "per_user_price": "10.00"})
        app.tenants.save(Tenant(tenant_id=tenant_id, plan=plan, billing_contacts=("ap@backfill.example",),
                                onboarded_at=datetime(2026, 11, 10, tzinfo=UTC)))
        imported = datetime(2026, 9, 1, tzinfo=UTC)  # history imported with ./dev ledger import
        app.ledger.append(tenant_id, [Observation(imported, "u1", "a@backfill.example", "Ann")], observed_at=imported,
                          source="import")
        try:
            service = app.close_service()
            run_id, _, skipped = asyncio.run(service.close_by_hand(Period(2026, 10), [tenant_id]))
            assert run_id is None
            assert skipped == ["Backfill Ltd: onboarded 2026-11-10T00:00:00Z, after October 2026 ended "
                               "(to bill a back-dated start, pass --backdated)"]
            assert service.invoices.get(tenant_id, Period(2026, 10)) is None
            run_id, outcomes, skipped = asyncio.run(service.close_by_hand(Period(2026, 10), [tenant_id], backdated=True))
            assert run_id is not None and skipped == []
            assert service.invoices.get(tenant_id, Period(2026, 10))["total"] == "10.00"
        finally:
            app.tenants.update(tenant_id, status=OFFBOARDED)
