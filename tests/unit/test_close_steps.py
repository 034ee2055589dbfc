"""The close's step machine, schedule and outcomes on in-memory fakes of the ports (no Azurite, no
Graph): the steps run in order under a lease, a crash resumes after the last step done, a failure
is recorded and retried, the timer and ./dev close choose the same clients."""
from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone

import pytest

from shared.billing import Observation, Period, parse_plan
from shared.messages import CLOSE_QUEUE
from shared.services.close import bills_month, due_period, summary_text
from shared.storage.records import Conflict
from shared.tenants import ACTIVE, OFFBOARDED, Tenant
from tests.unit.fakes import Crash, World

UTC = timezone.utc
OCTOBER = Period(2026, 10)


def client(world: World, name: str, *, zone: str = "America/New_York", users: int = 2, status: str = ACTIVE,
           onboarded: datetime = datetime(2026, 6, 1, tzinfo=UTC), offboarded: datetime | None = None,
           billed: bool = True) -> Tenant:
    tenant_id = str(uuid.uuid4())
    plan = parse_plan({"tenant_id": tenant_id, "name": name, "currency": "USD", "timezone": zone,
                       "per_user_price": "45.00" if billed else None, "sku_prices": {"SPB": "22.00"}})
    slug = name.lower().replace(" ", "-")
    tenant = Tenant(tenant_id=tenant_id, plan=plan, billing_contacts=(f"accounts@{slug}.example",),
                    status=status, onboarded_at=onboarded, offboarded_at=offboarded)
    world.tenants.save(tenant)
    before = datetime(2026, 9, 10, tzinfo=UTC)
    world.ledger.append(tenant_id, [Observation(before, f"u{n}", f"user{n}@{slug}.example", f"User {n}",
                                                skus=("SPB",) if billed else ()) for n in range(users)],
                        observed_at=before, source="test")
    return tenant


def close(world: World, tenant: Tenant, period: Period = OCTOBER, **options):
    return asyncio.run(world.close_service(**options).close_tenant(tenant.tenant_id, period))


def test_a_close_computes_and_numbers_then_renders_stores_drafts_and_sends_in_order_and_emails_once():
    world = World()
    tenant = client(world, "Contoso Dental")
    done: list[str] = []
    outcome = close(world, tenant, after_step=done.append)
    assert done == ["compute", "render", "store", "draft", "send"]  # the number is written with the computation
    assert outcome.kind == "emailed" and outcome.number == "INV-2026-00001"
    assert [m["to"] for m in world.mailer.sent] == [["accounts@contoso-dental.example"]]
    row = world.invoices.get(tenant.tenant_id, OCTOBER)
    assert row.step == "emailed" and row.status == "done" and not row.lease_owner
    assert world.archive.get(row["blob"]) == world.mailer.sent[0]["pdf"]  # the email carries the archived PDF


def test_closing_a_closed_month_again_sends_nothing_and_says_it_was_closed_before():
    world = World()
    tenant = client(world, "Fabrikam")
    close(world, tenant)
    again = close(world, tenant)
    assert again.kind == "already closed" and "was closed before: invoice INV-2026-00001" in again.sentence
    assert len(world.mailer.sent) == 1 and world.counter.last_number() == 1


@pytest.mark.parametrize("dies_after", ["compute", "render", "store", "draft"])
def test_a_crash_after_any_step_resumes_after_the_last_one_recorded_once_the_lease_expires(dies_after):
    """The render and the store are recorded with the draft (a resumed close renders again and
    keeps the PDF archived first), so a crash after either resumes at the render; the number is
    recorded with the computation."""
    world = World()
    tenant = client(world, "Tailspin")

    def crash(step: str) -> None:
        if step == dies_after:
            raise Crash(step)

    with pytest.raises(Crash):
        close(world, tenant, after_step=crash)
    with pytest.raises(Exception, match="another close of this client's October 2026 is running"):
        close(world, tenant, busy_wait=0)  # the dead runner's lease is still live
    world.later(minutes=6)
    done: list[str] = []
    assert close(world, tenant, after_step=done.append).kind == "emailed"
    steps = ["compute", "render", "store", "draft", "send"]
    recorded = "compute" if dies_after in ("render", "store") else dies_after
    assert done == steps[steps.index(recorded) + 1:]
    assert len(world.mailer.sent) == 1 and world.counter.last_number() == 1
    row = world.invoices.get(tenant.tenant_id, OCTOBER)
    assert row["blob"] and world.archive.get(row["blob"]) == world.mailer.sent[0]["pdf"]  # the PDF archived once
    assert list(world.archive.blobs) == [row["blob"]]


def test_a_failure_is_recorded_on_the_row_with_its_step_and_the_retry_finishes():
    world = World()
    tenant = client(world, "Throttled")
    world.mailer.fail_on = "create_draft"
    with pytest.raises(RuntimeError):
        asyncio.run(world.close_service().close_tenant(tenant.tenant_id, OCTOBER, attempt=1, max_attempts=5))
    row = world.invoices.get(tenant.tenant_id, OCTOBER)
    assert row.status == "failed: RuntimeError: Graph answered 503: try later" and row["failed_step"] == "draft"
    assert not row.lease_owner  # a handled failure gives the lease back at once
    assert close(world, tenant).kind == "emailed" and len(world.mailer.sent) == 1


def test_a_month_with_nothing_billable_takes_no_number_and_sends_no_email():
    world = World()
    tenant = client(world, "Quiet", billed=False)
    outcome = close(world, tenant)
    assert outcome.kind == "nothing to bill" and "no invoice was issued or emailed" in outcome.sentence
    assert world.counter.last_number() == 0 and world.mailer.sent == []


def test_a_month_that_has_not_ended_in_the_clients_zone_is_not_closed():
    world = World(datetime(2026, 11, 1, 6, 0, tzinfo=UTC))
    tenant = client(world, "Pago Pago", zone="Pacific/Pago_Pago")  # UTC-11: October ends at 11:00 UTC
    with pytest.raises(Exception, match="October 2026 has not ended yet in Pacific/Pago_Pago"):
        close(world, tenant)
    assert world.invoices.get(tenant.tenant_id, OCTOBER)["failed_step"] == "compute"


def test_the_due_month_is_the_last_one_ended_in_the_clients_own_zone():
    world = World()
    at_six = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)
    kiritimati = client(world, "Kiritimati", zone="Pacific/Kiritimati")  # UTC+14
    pago = client(world, "Pago Pago", zone="Pacific/Pago_Pago")  # UTC-11
    assert due_period(kiritimati, at_six) == OCTOBER
    assert due_period(pago, at_six) == Period(2026, 9)  # its October is still running
    assert due_period(pago, datetime(2026, 11, 1, 11, 15, tzinfo=UTC)) == OCTOBER


def test_a_month_is_billed_if_the_client_was_onboarded_before_its_end_and_not_offboarded_before_its_start():
    world = World()
    zone = "Europe/London"
    assert bills_month(client(world, "Active", zone=zone), OCTOBER)
    assert bills_month(client(world, "Left mid-month", zone=zone, status=OFFBOARDED,
                              offboarded=datetime(2026, 10, 20, tzinfo=UTC)), OCTOBER)
    assert not bills_month(client(world, "Left before", zone=zone, status=OFFBOARDED,
                                  offboarded=datetime(2026, 9, 20, tzinfo=UTC)), OCTOBER)
    assert not bills_month(client(world, "Joined after", zone=zone, onboarded=datetime(2026, 11, 2, tzinfo=UTC)),
                           OCTOBER)


def test_dev_close_of_a_period_closes_the_same_clients_as_the_month_end_timer():
    def world_with_clients() -> tuple[World, dict[str, str]]:
        world = World(datetime(2026, 11, 1, 6, 0, tzinfo=UTC))
        made = {
            "active": client(world, "Active"),
            "left mid-month": client(world, "Left Mid Month", status=OFFBOARDED,
                                     offboarded=datetime(2026, 10, 20, tzinfo=UTC)),
            "left before": client(world, "Left Before", status=OFFBOARDED, offboarded=datetime(2026, 9, 20, tzinfo=UTC)),
            "joined after": client(world, "Joined After", onboarded=datetime(2026, 11, 1, 5, tzinfo=UTC)),
        }
        return world, {t.tenant_id: label for label, t in made.items()}

    timer_world, labels = world_with_clients()
    runs = timer_world.close_service().start_month_end("timer")
    by_timer = {labels[t] for run in runs for t in run.tenants}
    assert {labels[m["tenant_id"]] for q, m in timer_world.queues.sent if q == CLOSE_QUEUE} == by_timer

    hand_world, labels = world_with_clients()
    run_id, outcomes, skipped = asyncio.run(hand_world.close_service().close_by_hand(OCTOBER))
    by_hand = {labels[o.tenant_id] for o in outcomes}

    assert by_timer == by_hand == {"active", "left mid-month"}
    assert all(o.kind == "emailed" for o in outcomes) and skipped == []


def test_the_last_client_to_finish_a_run_writes_its_summary_and_accounting_files():
    world = World()
    first, second = client(world, "Alpha"), client(world, "Beta", billed=False)
    run_id, outcomes, _ = asyncio.run(world.close_service().close_by_hand(OCTOBER, [first.tenant_id, second.tenant_id]))
    summary = world.close_service().run_report(run_id)
    assert summary["emailed"] == 1 and summary["nothing_to_bill"] == 1 and summary["failed"] == 0
    assert summary["exports"] == [f"invoices/2026-10/xero-invoices-{run_id}-USD.csv",
                                  f"invoices/2026-10/quickbooks-invoices-{run_id}-USD.csv"]
    assert {f"2026-10/xero-invoices-{run_id}-USD.csv", f"2026-10/quickbooks-invoices-{run_id}-USD.csv"} <= set(
        world.archive.blobs)
    assert f"2026-10/reconciliation-{run_id}.csv" in world.archive.blobs
    text = summary_text(summary)
    assert text.startswith(f"Run {run_id} (month-end close of October 2026, manual): 2 clients; 1 invoice emailed")
    assert "1 with nothing to bill" in text and "totals USD" in text


def test_the_fake_invoice_table_refuses_a_write_based_on_a_stale_read_as_the_table_does():
    world = World()
    row = world.invoices.create("t-1", OCTOBER, {"step": "queued"})
    world.invoices.update(row, {"status": "in progress"})
    with pytest.raises(Conflict):
        world.invoices.update(row, {"status": "done"})
    with pytest.raises(Conflict):
        world.invoices.create("t-1", OCTOBER, {"step": "queued"})
    assert world.invoices.get("t-1", OCTOBER).status == "in progress"
