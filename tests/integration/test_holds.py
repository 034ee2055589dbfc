"""Guardrails before sending, against Azurite, the Graph simulator and the dev host: a month in
which one client's total triples holds that invoice (numbered, archived, not emailed) while the
others are emailed; the run says which and why; releasing it emails it exactly once."""
from __future__ import annotations

import asyncio
import json
import logging
import uuid
from datetime import datetime, timezone

import pytest

from shared.billing import Observation, Period, parse_plan
from shared.services.close.reports import summary_text
from shared.tenants import OFFBOARDED, Tenant
from tests.integration.stack import call, running_stack

UTC = timezone.utc
SEPTEMBER, OCTOBER = Period(2026, 9), Period(2026, 10)


@pytest.fixture(scope="module")
def stack(azurite):
    with running_stack(azurite.connection_string) as running:
        yield running


def client(app, name: str, users: int, *, holds: dict | None = None) -> Tenant:
    tenant_id = str(uuid.uuid4())
    plan = parse_plan({"tenant_id": tenant_id, "name": name, "currency": "USD", "timezone": "UTC",
                       "per_user_price": "30.00", **({"holds": holds} if holds else {})})
    slug = name.split()[0].lower()
    tenant = Tenant(tenant_id=tenant_id, plan=plan, billing_contacts=(f"ap@{slug}.example",),
                    onboarded_at=datetime(2026, 8, 20, tzinfo=UTC))
    app.tenants.save(tenant)
    at = datetime(2026, 8, 25, tzinfo=UTC)
    app.ledger.append(tenant_id, [Observation(at, f"u{n}", f"u{n}@{slug}.example", f"User {n}") for n in range(users)],
                      observed_at=at, source="test")
    return tenant


def join(app, tenant: Tenant, count: int, at: datetime) -> None:
    slug = tenant.name.split()[0].lower()
    app.ledger.append(tenant.tenant_id, [Observation(at, f"j{n}", f"j{n}@{slug}.example", f"Joiner {n}")
                                         for n in range(count)], observed_at=at, source="test")


def close(app, period: Period, tenants: list[Tenant]):
    app.clock = lambda: datetime(period.next().year, period.next().month, 1, 6, tzinfo=UTC)
    service = app.close_service()
    run_id, outcomes, _ = asyncio.run(service.close_by_hand(period, [t.tenant_id for t in tenants]))
    return service.finish_run(run_id) or service.run_report(run_id), {o.tenant_id: o for o in outcomes}


def emails_to(sim, address: str) -> int:
    return sum(1 for message in sim.outbox if address in message.to)


def test_a_tripled_invoice_is_held_the_others_emailed_and_a_release_emails_it_once(stack, caplog):
    sim, host, app = stack
    caplog.set_level(logging.INFO, "prorata.close")
    dental = client(app, "Contoso Dental", 4)
    steady = client(app, "Steady Ltd", 3)
    calm = client(app, "Calm Inc", 5, holds={"enabled": False})  # this client asked for no holds
    clients = [dental, steady, calm]
    try:
        summary, _ = close(app, SEPTEMBER, clients)
        assert summary["emailed"] == 3 and summary["held"] == 0  # first invoices: HOLD_FIRST_INVOICE is off

        join(app, dental, 8, datetime(2026, 10, 1, tzinfo=UTC))  # 12 users all October: the total triples
        join(app, calm, 10, datetime(2026, 10, 1, tzinfo=UTC))   # would be held, but holds are off for it
        summary, outcomes = close(app, OCTOBER, clients)
        held = app.invoices.get(dental.tenant_id, OCTOBER)
        number = held.number
        assert held.step == "held" and number and held.get("blob")  # numbered and archived
        assert summary["emailed"] == 2 and summary["held"] == 1
        reason = "total 360.00 USD is 300 % of September's 120.00 USD; users billed changed by 8; 12 users billed, 4 in September"
        assert summary["holds"] == [{"tenant_id": dental.tenant_id, "name": "Contoso Dental", "number": number,
                                     "reason": reason}]
        assert outcomes[dental.tenant_id].sentence.startswith(f"Held {number} for Contoso Dental: {reason}.")
        logged = " ".join(r.getMessage() for r in caplog.records)
        assert "1 held" in logged and f"Held {number} for Contoso Dental: {reason}." in logged
        assert emails_to(sim, "ap@contoso.example") == 1  # September's only
        assert emails_to(sim, "ap@steady.example") == 2 and emails_to(sim, "ap@calm.example") == 2

        again, _ = close(app, OCTOBER, [dental])  # a re-run leaves it held
        assert app.invoices.get(dental.tenant_id, OCTOBER).step == "held"

        status, _, body = call(host, "POST", f"/api/invoices/{number}/release")
        assert status == 200, body
        assert json.loads(body)["outcome"] == "emailed"
        status, _, body = call(host, "POST", f"/api/invoices/{number}/release")
        assert status == 200 and json.loads(body)["outcome"] == "already closed"
        assert emails_to(sim, "ap@contoso.example") == 2  # October's, exactly once
        assert app.invoices.get(dental.tenant_id, OCTOBER).step == "emailed"

        assert call(host, "POST", "/api/invoices/INV-1999-99999/release")[0] == 404
        steady_number = app.invoices.get(steady.tenant_id, OCTOBER).number
        status, _, body = call(host, "POST", f"/api/invoices/{steady_number}/release")
        assert status == 200 and json.loads(body)["outcome"] == "already closed"  # emailed already: nothing sent
        assert call(host, "POST", f"/api/invoices/{number}/release", key=None)[0] == 401
    finally:
        for tenant in clients:
            app.tenants.update(tenant.tenant_id, status=OFFBOARDED)


def test_with_review_days_an_invoice_stays_a_draft_then_late_changes_land_before_it_is_numbered(azurite):
    with running_stack(azurite.connection_string, REVIEW_DAYS="3") as (sim, host, app):
        tenant = client(app, "Latecomer Ltd", 2)
        try:
            summary, outcomes = close(app, SEPTEMBER, [tenant])
            draft = app.invoices.get(tenant.tenant_id, SEPTEMBER)
            assert draft.step == "in review" and not draft.number and draft.get("total") == "60.00"
            assert draft.get("review_until") == "2026-10-04T00:00:00Z"
            assert summary["in_review"] == 1 and "1 kept as drafts for review" in summary_text(summary)
            assert "kept a draft until 2026-10-04T00:00:00Z" in outcomes[tenant.tenant_id].sentence
            assert emails_to(sim, "ap@latecomer.example") == 0
            join(app, tenant, 1, datetime(2026, 9, 1, tzinfo=UTC))  # learned late: a user there all September
            app.clock = lambda: datetime(2026, 10, 4, 1, tzinfo=UTC)  # the window is over
            outcome = asyncio.run(app.close_service().close_tenant(tenant.tenant_id, SEPTEMBER))
            final = app.invoices.get(tenant.tenant_id, SEPTEMBER)
            assert final.step == "emailed" and final.number and final.get("total") == "90.00"
            assert outcome.kind == "emailed" and emails_to(sim, "ap@latecomer.example") == 1
        finally:
            app.tenants.update(tenant.tenant_id, status=OFFBOARDED)
