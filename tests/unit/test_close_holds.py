"""Guardrails in the close's steps, on in-memory fakes: a held invoice is numbered and archived
but not emailed; released (twice), it is emailed once; REVIEW_DAYS keeps it a draft first."""
from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone

import pytest

from shared.billing import Observation, Period, parse_plan
from shared.errors import CloseError, InvoiceNotFound
from shared.messages import CLOSE_QUEUE
from shared.settings import Settings
from shared.tenants import Tenant
from tests.unit.fakes import World

UTC = timezone.utc
SEPTEMBER, OCTOBER = Period(2026, 9), Period(2026, 10)


def client(world: World, users: int) -> Tenant:
    tenant_id = str(uuid.uuid4())
    plan = parse_plan({"tenant_id": tenant_id, "name": "Contoso Dental", "currency": "USD", "timezone": "UTC",
                       "per_user_price": "10.00"})
    tenant = Tenant(tenant_id=tenant_id, plan=plan, billing_contacts=("ap@contoso.example",),
                    onboarded_at=datetime(2026, 8, 1, tzinfo=UTC))
    world.tenants.save(tenant)
    add_users(world, tenant, users, "u")
    return tenant


def add_users(world: World, tenant: Tenant, count: int, prefix: str, at=datetime(2026, 8, 20, tzinfo=UTC)) -> None:
    world.ledger.append(tenant.tenant_id, [Observation(at, f"{prefix}{n}", f"{prefix}{n}@contoso.example", f"U {n}")
                                           for n in range(count)], observed_at=at, source="test")


def close(world: World, tenant: Tenant, period: Period, now: datetime):
    world.clock.now = now
    return asyncio.run(world.close_service().close_tenant(tenant.tenant_id, period))


def test_a_held_invoice_is_archived_not_emailed_and_two_releases_email_it_once():
    world = World()
    tenant = client(world, 4)
    assert close(world, tenant, SEPTEMBER, datetime(2026, 10, 1, 6, tzinfo=UTC)).kind == "emailed"
    add_users(world, tenant, 8, "j", at=datetime(2026, 10, 1, tzinfo=UTC))
    held = close(world, tenant, OCTOBER, datetime(2026, 11, 1, 6, tzinfo=UTC))
    assert held.kind == "held" and held.number == "INV-2026-00002"
    assert held.reason == ("total 120.00 USD is 300 % of September's 40.00 USD; users billed changed by 8; "
                           "12 users billed, 4 in September")
    record = world.invoices.get(tenant.tenant_id, OCTOBER)
    assert record.step == "held" and world.archive.get(record["blob"]) and len(world.mailer.sent) == 1
    service = world.close_service()
    first, second = asyncio.run(service.release("INV-2026-00002")), asyncio.run(service.release("INV-2026-00002"))
    assert first.kind == "emailed" and second.kind == "already closed"
    assert len(world.mailer.sent) == 2 and world.counter.last_number() == 2
    # Its run's import files were written without it: a release gives it files of its own, named to the MSP.
    xero, books = ("2026-10/xero-invoices-released-INV-2026-00002-USD.csv",
                   "2026-10/quickbooks-invoices-released-INV-2026-00002-USD.csv")
    assert "INV-2026-00002" in world.archive.get(xero).decode() and "INV-2026-00002" in world.archive.get(books).decode()
    assert xero in first.sentence and books in first.sentence and xero in second.sentence
    with pytest.raises(InvoiceNotFound):
        asyncio.run(service.release("INV-2026-09999"))


def test_an_invoice_that_is_not_held_is_not_released():
    world = World()
    tenant = client(world, 4)
    world.settings = Settings({**world.settings.values, "REVIEW_DAYS": "2"})
    close(world, tenant, SEPTEMBER, datetime(2026, 10, 1, 6, tzinfo=UTC))
    record = world.invoices.get(tenant.tenant_id, SEPTEMBER)
    assert record.step == "in review" and not record.number
    world.invoices.update(record, {"number": "INV-TEST"})
    with pytest.raises(CloseError, match="is not held"):
        asyncio.run(world.close_service().release("INV-TEST"))


def test_with_review_days_a_draft_waits_then_is_computed_again_numbered_and_sent():
    world = World()
    world.settings = Settings({**world.settings.values, "REVIEW_DAYS": "2"})
    tenant = client(world, 1)
    draft = close(world, tenant, SEPTEMBER, datetime(2026, 10, 1, 6, tzinfo=UTC))
    assert draft.kind == "in review" and world.mailer.sent == []
    assert world.queues.sent[-1] == (CLOSE_QUEUE, {"tenant_id": tenant.tenant_id, "period": "2026-09", "run_id": ""})
    assert world.queues.delays[-1] == 42 * 3600 + 60  # until 3 October 00:00, and a minute
    assert close(world, tenant, SEPTEMBER, datetime(2026, 10, 2, tzinfo=UTC)).kind == "in review"  # not yet
    add_users(world, tenant, 1, "late")  # learned during the review: lands on the invoice
    sent = close(world, tenant, SEPTEMBER, datetime(2026, 10, 3, 0, 1, tzinfo=UTC))
    assert sent.kind == "emailed" and sent.total == "20.00" and len(world.mailer.sent) == 1
