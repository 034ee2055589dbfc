"""The month-end close against Azurite, the Graph simulator and the dev host: invoices computed,
numbered without gaps, rendered, archived and emailed exactly once, whatever crashes or runs
twice; the time zones of the close; the timer's fan-out through the dev host; the run's report
and CSV; the preview."""
from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import threading
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from pypdf import PdfReader

from shared.app import Prorata, get_app
from shared.billing import Observation, Period, parse_plan
from shared.storage.invoices import unpack_invoice
from shared.billing.month_to_date import month_to_date
from shared.services.close import CloseService
from shared.settings import Settings
from shared.tenants import ACTIVE, OFFBOARDED, Tenant
from tests.integration.stack import background_loop, call, running_stack
from tests.unit.fakes import Clock, Crash

UTC = timezone.utc
OCTOBER = Period(2026, 10)
AFTER_OCTOBER = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)
MAILBOX = "billing@northwind-msp.example"
CC = "books@northwind-msp.example"
BCC = "archive@northwind-msp.example"


@pytest.fixture(scope="module")
def stack(azurite):
    extra = {"MONTH_END_CATCHUP_SCHEDULE": "0 0 0 1 1 *", "INVOICE_CC": CC, "INVOICE_BCC": BCC}
    with running_stack(azurite.connection_string, **extra) as (sim, host, app):
        yield sim, host, app


@pytest.fixture(scope="module")
def loop():
    with background_loop() as running:
        yield running


@pytest.fixture
def env(stack, loop):
    """(sim, host, app, clock, tenants): app runs on `clock`; tenants made here are offboarded after."""
    sim, host, app = stack
    clock = Clock(AFTER_OCTOBER)
    app.clock = clock
    made: list[str] = []
    yield Env(sim, host, app, clock, made, loop)
    host.wait_idle(30)
    for tenant_id in made:
        app.tenants.update(tenant_id, status=OFFBOARDED)


class Env:
    def __init__(self, sim, host, app, clock, made, loop):
        self.sim, self.host, self.app, self.clock, self.made, self.loop = sim, host, app, clock, made, loop

    def run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(120)

    def service(self, **options) -> CloseService:
        return self.app.close_service(**options)

    def close(self, tenant_id, period=OCTOBER, **options):
        return self.run(self.service(**options).close_tenant(tenant_id, period))

    def tenant(self, name, *, zone="America/New_York", currency="USD", users=3, skus=("SPB",), joins=(),
               onboarded=datetime(2026, 9, 20, tzinfo=UTC), month=OCTOBER, tax_rate="0.0825", contacts=None):
        """A client with `users` users holding the per-user fee and `skus` all month, plus
        (name, day joined) users who join during the month."""
        tenant_id = str(uuid.uuid4())
        plan = parse_plan({"tenant_id": tenant_id, "name": name, "currency": currency, "timezone": zone,
                           "per_user_price": "45.00", "sku_prices": {"SPB": "22.00", "E3": "36.00"},
                           "tax_rate": tax_rate})
        slug = name.lower().removesuffix(" ltd").removesuffix(" inc").replace(" ", "-")
        tenant = Tenant(tenant_id=tenant_id, plan=plan, billing_contacts=tuple(contacts or [f"accounts@{slug}.example"]),
                        address=("1 Main Street", "Springfield"), onboarded_at=onboarded)
        self.app.tenants.save(tenant)
        self.made.append(tenant_id)
        before = datetime(month.year, month.month, 1, tzinfo=UTC) - timedelta(days=20)
        observations = [Observation(before, f"u{n}", f"user{n}@{slug}.example", f"{name.split()[0]} User {n:02d}",
                                    skus=tuple(skus)) for n in range(users)]
        for who, day in joins:
            at = datetime(month.year, month.month, day, 15, tzinfo=UTC)
            observations.append(Observation(at, f"j-{who}", f"{who.lower()}@{slug}.example", who, skus=tuple(skus)))
        if observations:
            self.app.ledger.append(tenant_id, observations, observed_at=before, source="test")
        return tenant

    def sent_to(self, address):
        return [m for m in self.sim.outbox if address in m.to]

    def row(self, tenant_id, period=OCTOBER):
        return self.app.invoices.get(tenant_id, period)


@contextmanager
def only_these_clients_active(env):
    """The timer closes every active client: other modules' clients in this Azurite are set
    aside while a timer test runs, and put back after."""
    others = [t.tenant_id for t in env.app.tenants.all(active_only=True) if t.tenant_id not in env.made]
    for tenant_id in others:
        env.app.tenants.update(tenant_id, status=OFFBOARDED)
    try:
        yield
    finally:
        for tenant_id in others:
            env.app.tenants.update(tenant_id, status=ACTIVE)


def pdf_text(pdf: bytes) -> str:
    return " ".join(" ".join((page.extract_text() or "").split()) for page in PdfReader(io.BytesIO(pdf)).pages)


def seq_of(row) -> int:
    return int(row["number_seq"])


# --------------------------------------------------------------------------- one close

def test_a_closed_month_is_computed_numbered_archived_and_emailed_once_with_its_pdf(env, caplog):
    caplog.set_level(logging.INFO, "prorata.close")
    tenant = env.tenant("Contoso Ltd", users=3, joins=[("Zoe Late", 16)])
    outcome = env.close(tenant.tenant_id)

    row = env.row(tenant.tenant_id)
    assert outcome.kind == "emailed" and row["step"] == "emailed" and row["status"] == "done"
    for step in ("computed", "numbered", "rendered", "stored", "drafted", "emailed"):
        assert row[f"{step}_at"], f"{step} has no time"
    invoice = unpack_invoice(row)
    assert row["total"] == str(invoice.total) and row["number"] == outcome.number
    assert row["number"].startswith("INV-2026-") and row["issued_on"] == "2026-11-01" and row["due_on"] == "2026-12-01"

    mails = env.sent_to("accounts@contoso.example")
    assert len(mails) == 1
    mail = mails[0]
    assert mail.mailbox == MAILBOX and mail.cc == [CC] and mail.bcc == [BCC]
    assert row["number"] in mail.subject and mail.via == "draft"
    [attachment] = mail.attachments
    assert attachment.name == f"{row['number']}.pdf" and attachment.content_type == "application/pdf"
    archived = env.service().archive.get(row["blob"])
    assert row["blob"] == f"2026-10/{tenant.tenant_id}/{row['number']}.pdf"
    assert attachment.data == archived  # the client got exactly what is archived

    text = pdf_text(archived)
    for n in range(3):
        assert f"Contoso User {n:02d}" in text and f"user{n}@contoso.example" in text
    assert "Zoe Late" in text and f"USD {invoice.total:,}" in text and row["number"] in text

    sentence = (f"Closed October 2026 for Contoso Ltd: 4 users, 8 lines, USD {invoice.total:,} incl. tax, "
                f"invoice {row['number']} emailed to accounts@contoso.example")
    assert sentence in [r.getMessage() for r in caplog.records]

    again = env.close(tenant.tenant_id)  # closing a closed month does nothing
    assert again.kind == "already closed" and len(env.sent_to("accounts@contoso.example")) == 1


def test_a_month_with_nothing_to_bill_takes_no_number_and_sends_no_email(env):
    tenant = env.tenant("Emptyco Ltd", users=0)
    before = env.service().numbering.last_number()
    outcome = env.close(tenant.tenant_id)
    row = env.row(tenant.tenant_id)
    assert outcome.kind == "nothing to bill" and row["step"] == "nothing to bill"
    assert not row.get("number") and env.service().numbering.last_number() == before
    assert env.sent_to("accounts@emptyco.example") == []
    assert "nothing to bill" in outcome.sentence


def test_a_month_is_not_closed_before_it_has_ended_in_the_clients_zone(env):
    tenant = env.tenant("Westward Inc", zone="Pacific/Pago_Pago")  # UTC-11: October ends 11:00 UTC on 1 Nov
    env.clock.now = datetime(2026, 11, 1, 10, 59, tzinfo=UTC)
    with pytest.raises(Exception, match="has not ended yet in Pacific/Pago_Pago"):
        env.close(tenant.tenant_id)
    assert env.row(tenant.tenant_id)["status"].startswith("failed: October 2026 has not ended yet")
    env.clock.now = datetime(2026, 11, 1, 11, 0, tzinfo=UTC)
    assert env.close(tenant.tenant_id).kind == "emailed"


# --------------------------------------------------------------------------- exactly once

@pytest.mark.parametrize("crash_after", ["compute", "render", "store", "draft"])  # compute writes the number too
def test_a_crash_after_any_step_still_gives_one_invoice_one_number_and_one_email(env, crash_after):
    tenant = env.tenant(f"Crashco {crash_after.title()} Ltd", users=2)
    address = tenant.billing_contacts[0]
    before = env.service().numbering.last_number()

    def crash(step):
        if step == crash_after:
            raise Crash(f"the process died after {step}")

    with pytest.raises(Crash):
        env.close(tenant.tenant_id, after_step=crash)
    row = env.row(tenant.tenant_id)
    assert row["lease_owner"]  # a dead runner leaves its lease
    env.clock.now += timedelta(minutes=6)  # the lease expires; the queue's retry comes
    outcome = env.close(tenant.tenant_id)

    row = env.row(tenant.tenant_id)
    assert outcome.kind == "emailed" and row["step"] == "emailed"
    assert len(env.sent_to(address)) == 1
    assert seq_of(row) == before + 1 == env.service().numbering.last_number()
    assert env.sent_to(address)[0].attachments[0].data == env.service().archive.get(row["blob"])


class FlakyGraph:
    """The real gateway, but the process dies right after one chosen call succeeded."""

    def __init__(self, graph, dies_after):
        self._graph, self.dies_after = graph, dies_after

    def __getattr__(self, name):
        method = getattr(self._graph, name)

        async def call(*args, **kwargs):
            result = await method(*args, **kwargs)
            if name == self.dies_after:
                self.dies_after = None
                raise Crash(f"the process died right after {name}")
            return result
        return call


@pytest.mark.parametrize("dies_after", ["create_draft", "send_draft"])
def test_a_crash_inside_the_email_step_never_sends_twice(env, dies_after):
    tenant = env.tenant(f"Mailcrash {dies_after.replace('_', ' ').title().replace(' ', '')} Ltd", users=1)
    address = tenant.billing_contacts[0]
    with pytest.raises(Crash):
        env.close(tenant.tenant_id, graph=FlakyGraph(env.app.graph, dies_after))
    env.clock.now += timedelta(minutes=6)
    assert env.close(tenant.tenant_id).kind == "emailed"
    assert len(env.sent_to(address)) == 1
    assert env.row(tenant.tenant_id)["step"] == "emailed"


def test_a_graph_failure_is_recorded_with_its_reason_and_the_retry_finishes(env):
    tenant = env.tenant("Throttled Ltd", users=1)
    env.sim.throttle(4, status=503, retry_after=1, path_prefix=f"/users/{MAILBOX}/messages")  # 1 try + 3 retries
    with pytest.raises(Exception):  # noqa: B017 - any failure; the row says which
        env.run(env.service().close_tenant(tenant.tenant_id, OCTOBER, attempt=1, max_attempts=5))
    row = env.row(tenant.tenant_id)
    assert row["status"].startswith("failed: Graph answered 503") and row["failed_step"] == "draft"
    assert not row.get("lease_owner")  # a handled failure gives the lease back at once
    assert env.close(tenant.tenant_id).kind == "emailed"
    assert len(env.sent_to(tenant.billing_contacts[0])) == 1


def test_two_closes_of_the_same_client_at_once_give_one_invoice_one_number_and_one_email(env):
    tenant = env.tenant("Twice Ltd", users=2)
    before = env.service().numbering.last_number()
    outcomes = in_threads(env, [tenant.tenant_id] * 2)
    assert sorted(o.kind for o in outcomes) == ["already closed", "emailed"]
    assert len(env.sent_to("accounts@twice.example")) == 1
    assert seq_of(env.row(tenant.tenant_id)) == before + 1 == env.service().numbering.last_number()


def in_threads(env, tenant_ids, period=OCTOBER):
    """Closes each tenant in a thread of its own, with its own app (storage and Graph clients)."""
    outcomes, errors = [], []

    def runner(tenant_id):
        app = Prorata(Settings(env.app.settings.values), clock=env.clock)
        try:
            outcomes.append(asyncio.run(app.close_service().close_tenant(tenant_id, period)))
        except Exception as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=runner, args=(tenant_id,)) for tenant_id in tenant_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    return outcomes


def test_numbers_are_gap_free_and_increasing_across_many_clients_closed_concurrently(env):
    tenants = [env.tenant(f"Seq{n:02d} Ltd", users=1) for n in range(10)]
    empty = env.tenant("Seqempty Ltd", users=0)
    service = env.service()
    before = service.numbering.last_number()
    in_threads(env, [t.tenant_id for t in [*tenants, empty]])
    seqs = sorted(seq_of(env.row(t.tenant_id)) for t in tenants)
    assert seqs == list(range(before + 1, before + 11))
    assert service.numbering.last_number() == before + 10
    numbers = [env.row(t.tenant_id)["number"] for t in tenants]
    assert len(set(numbers)) == 10 and all(n == f"INV-2026-{s:05d}" for n, s in
                                           zip(sorted(numbers), seqs))
    assert not env.row(empty.tenant_id).get("number")


def test_a_number_reserved_by_a_runner_that_died_goes_to_its_invoice_not_to_the_next(env):
    first, second = env.tenant("Reserve One Ltd", users=1), env.tenant("Reserve Two Ltd", users=1)
    service = env.service()
    before = service.numbering.last_number()
    # The first close computes, reserves a number on the counter, and dies before recording it.
    def die_after_compute(step):
        if step == "compute":
            raise Crash()

    with pytest.raises(Crash):
        env.close(first.tenant_id, after_step=die_after_compute)
    counter = env.app.storage.table("counters")
    counter.update_entity({"PartitionKey": "invoice-number", "RowKey": "msp", "last_number": before + 1,
                           "last_assigned_to": f"{first.tenant_id}|2026-10"})
    env.close(second.tenant_id)  # takes the next number, after settling the first's reservation
    assert seq_of(env.row(second.tenant_id)) == before + 2
    assert seq_of(env.row(first.tenant_id)) == before + 1
    env.clock.now += timedelta(minutes=6)
    assert env.close(first.tenant_id).kind == "emailed"
    assert seq_of(env.row(first.tenant_id)) == before + 1


def test_a_number_reserved_for_a_computation_that_never_landed_goes_to_the_next_invoice(env):
    from shared.services.close.runner import Raced

    first, second = env.tenant("Fence One Ltd", users=1), env.tenant("Fence Two Ltd", users=1)
    service = env.service()
    before = service.numbering.last_number()
    # The first close read its (absent) record, computed, reserved a number on the counter, and
    # stalls (or dies) before its compute write creates the record with that number.
    stalled = service.runner.begin("stalled-runner", env.run(service.runner.acquire(
        first.tenant_id, OCTOBER, "stalled-runner", None, lazy=True)))
    counter = env.app.storage.table("counters")
    counter.update_entity({"PartitionKey": "invoice-number", "RowKey": "msp", "last_number": before + 1,
                           "last_assigned_to": f"{first.tenant_id}|2026-10"})
    assert env.close(second.tenant_id).kind == "emailed"  # fences the first's record, takes the number
    assert seq_of(env.row(second.tenant_id)) == before + 1
    with pytest.raises(Raced):  # the stalled write comes too late: it records nothing
        service.runner.save(stalled, {"step": "numbered", "number": "INV-LATE", "number_seq": before + 1}, once=True)
    assert not env.row(first.tenant_id).get("number")
    assert env.close(first.tenant_id).kind == "emailed"  # its retry computes again and takes the next number
    assert seq_of(env.row(first.tenant_id)) == before + 2 == service.numbering.last_number()
    assert len(env.sent_to("accounts@fence-one.example")) == 1 and len(env.sent_to("accounts@fence-two.example")) == 1


# --------------------------------------------------------------------------- timers and time zones

def test_the_timer_closes_a_client_only_once_its_month_has_ended_in_its_own_zone(env):
    zones = {"Kiritimati": "Pacific/Kiritimati", "London": "Europe/London", "PagoPago": "Pacific/Pago_Pago"}
    made = {name: env.tenant(f"{name} Ltd", zone=zone, month=Period(2026, 6), users=1,
                             onboarded=datetime(2026, 6, 5, tzinfo=UTC)).tenant_id for name, zone in zones.items()}
    mine = set(made.values())
    service = env.service()

    def closes_at(when):
        env.clock.now = when
        return {t for run in service.start_month_end("test") for t in run.tenants if t in mine}

    kiritimati_end = datetime(2026, 6, 30, 10, 0, tzinfo=UTC)  # UTC+14
    with only_these_clients_active(env):
        assert closes_at(kiritimati_end - timedelta(seconds=1)) == set()
        assert closes_at(kiritimati_end) == {made["Kiritimati"]}
        assert closes_at(datetime(2026, 6, 30, 22, 59, tzinfo=UTC)) == set()  # London is UTC+1 in June
        assert closes_at(datetime(2026, 6, 30, 23, 0, tzinfo=UTC)) == {made["London"]}
        assert closes_at(datetime(2026, 7, 1, 6, 0, tzinfo=UTC)) == set()  # the 06:00 run: Pago Pago's June goes on
        assert closes_at(datetime(2026, 7, 1, 11, 15, tzinfo=UTC)) == {made["PagoPago"]}  # the catch-up
        assert closes_at(datetime(2026, 7, 1, 12, 15, tzinfo=UTC)) == set()  # claimed once
        assert env.host.wait_idle(60)
    for tenant_id in mine:
        assert env.row(tenant_id, Period(2026, 6))["step"] == "emailed"


def test_a_client_offboarded_mid_month_gets_a_final_invoice_up_to_the_offboarding(env):
    leaving = env.tenant("Leaving Ltd", zone="UTC", users=2, skus=(), month=Period(2026, 5),
                         onboarded=datetime(2026, 4, 1, tzinfo=UTC))
    gone_before = env.tenant("Gone Before Ltd", zone="UTC", users=2, skus=(), month=Period(2026, 5),
                             onboarded=datetime(2026, 3, 1, tzinfo=UTC))
    env.app.tenants.update(leaving.tenant_id, status=OFFBOARDED, offboarded_at=datetime(2026, 5, 20, 12, tzinfo=UTC))
    env.app.tenants.update(gone_before.tenant_id, status=OFFBOARDED, offboarded_at=datetime(2026, 4, 30, tzinfo=UTC))
    env.clock.now = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)
    with only_these_clients_active(env):
        runs = env.service().start_month_end("test")
        closed = {t for run in runs for t in run.tenants}
        assert leaving.tenant_id in closed and gone_before.tenant_id not in closed
        assert env.host.wait_idle(60)
    invoice = unpack_invoice(env.row(leaving.tenant_id, Period(2026, 5)))
    assert {line.days for line in invoice.lines} == {19}  # 1-19 May held at day's end; gone on the 20th
    assert len(env.sent_to("accounts@leaving.example")) == 1


def test_the_month_end_timer_fans_out_through_the_dev_host_and_each_client_gets_its_pdf(env):
    august = Period(2026, 8)
    tenants = [env.tenant(f"{name} Ltd", month=august, users=n, joins=[("Ivy New", 10)],
                          onboarded=datetime(2026, 8, 2, tzinfo=UTC), currency=currency)
               for name, n, currency in (("Alpha", 2, "USD"), ("Beta", 3, "EUR"), ("Gamma", 1, "USD"))]
    quiet = env.tenant("Quiet Ltd", month=august, users=0, onboarded=datetime(2026, 8, 2, tzinfo=UTC))
    host_app = get_app()
    previous_clock = host_app.clock
    host_app.clock = Clock(datetime(2026, 9, 1, 6, 0, tzinfo=UTC))
    try:
        with only_these_clients_active(env):
            invocation = env.host.trigger_timer("month_end")
            assert invocation.error is None, invocation.error
            assert env.host.wait_idle(60)
    finally:
        host_app.clock = previous_clock
    service = env.service()
    rows = {t.tenant_id: env.row(t.tenant_id, august) for t in tenants}
    for tenant in tenants:
        [mail] = env.sent_to(tenant.billing_contacts[0])
        [attachment] = mail.attachments
        assert attachment.name == rows[tenant.tenant_id]["number"] + ".pdf"
        assert attachment.data[:5] == b"%PDF-"
    assert env.row(quiet.tenant_id, august)["step"] == "nothing to bill"

    [run_id] = {row["run_id"] for row in rows.values()}
    summary = service.run_report(run_id)
    assert summary["tenants"] == 4 and summary["emailed"] == 3 and summary["nothing_to_bill"] == 1
    assert summary["failed"] == 0 and summary["seats"] == 3 + 4 + 2
    usd = sum(Decimal(rows[t.tenant_id]["total"]) for t in tenants if t.plan.currency == "USD")
    eur = sum(Decimal(rows[t.tenant_id]["total"]) for t in tenants if t.plan.currency == "EUR")
    assert summary["totals"] == {"EUR": str(eur), "USD": str(usd)}

    # The run's Xero and QuickBooks files lie beside the PDFs, one per currency, and each
    # invoice's rows add up to its total (lines plus their tax amounts).
    assert summary["exports"] == [f"invoices/2026-08/{kind}-invoices-{run_id}-{currency}.csv"
                                  for currency in ("EUR", "USD") for kind in ("xero", "quickbooks")]
    per_number: dict[str, Decimal] = {}
    for currency in ("EUR", "USD"):
        data = service.archive.get(f"2026-08/xero-invoices-{run_id}-{currency}.csv")
        for line in csv.DictReader(io.StringIO(data.decode("utf-8"))):
            amount = Decimal(line["*Quantity"]) * Decimal(line["*UnitAmount"]) + Decimal(line["TaxAmount"])
            per_number[line["*InvoiceNumber"]] = per_number.get(line["*InvoiceNumber"], Decimal(0)) + amount
    assert per_number == {row["number"]: Decimal(row["total"]) for row in rows.values()}


def test_the_run_summary_reports_a_failure_with_its_reason(env, caplog):
    caplog.set_level(logging.INFO, "prorata.close")
    good = env.tenant("Steady Ltd", users=2, month=Period(2026, 5), onboarded=datetime(2026, 5, 2, tzinfo=UTC))
    bad = env.tenant("Nocontact Ltd", users=1, month=Period(2026, 5), onboarded=datetime(2026, 5, 2, tzinfo=UTC),
                     contacts=["nobody@nocontact.example"])
    env.app.tenants.update(bad.tenant_id, billing_contacts=())  # lost its billing contact
    env.clock.now = datetime(2026, 6, 2, tzinfo=UTC)
    run_id, outcomes, skipped = env.run(env.service().close_by_hand(Period(2026, 5), [good.tenant_id, bad.tenant_id]))
    summary = env.service().run_report(run_id)
    assert summary["emailed"] == 1 and summary["failed"] == 1
    assert summary["failures"] == [{"tenant_id": bad.tenant_id, "name": "Nocontact Ltd",
                                    "reason": "the client has no billing contact to email the invoice to"}]
    logged = [r.getMessage() for r in caplog.records if "(month-end close of May 2026, manual)" in r.getMessage()]
    assert len(logged) == 1 and "1 invoice emailed, 1 failed" in logged[0]
    assert "Failed: Nocontact Ltd: the client has no billing contact" in logged[0]
    assert env.row(bad.tenant_id, Period(2026, 5))["status"] == \
        "failed: the client has no billing contact to email the invoice to"


# --------------------------------------------------------------------------- preview

def test_the_preview_of_a_closed_month_over_http_equals_the_issued_invoice(env):
    tenant = env.tenant("Preview Ltd", users=2, joins=[("Pat Joiner", 20)])
    env.close(tenant.tenant_id)
    issued = unpack_invoice(env.row(tenant.tenant_id)).to_json()
    status, _, body = call(env.host, "GET", f"/api/tenants/{tenant.tenant_id}/invoices/preview?period=2026-10")
    assert status == 200
    preview = json.loads(body)
    assert {k: v for k, v in preview.items() if k in issued} == issued
    assert preview["month_to_date"] is False and preview["close"]["number"] == env.row(tenant.tenant_id)["number"]


def test_the_preview_of_the_current_month_counts_the_days_that_have_ended(env):
    tenant = env.tenant("Midmonth Ltd", users=1, skus=(), tax_rate="0", month=Period(2026, 11),
                        joins=[("Late Joiner", 20)])
    env.clock.now = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)  # 07:00 on the 15th in New York
    preview = env.service().preview(tenant.tenant_id, Period(2026, 11))
    assert preview["month_to_date"] is True and preview["as_of"] == "2026-11-15T12:00:00Z"
    [line] = preview["lines"]
    assert line["days"] == 14 and line["amount"] == "21.00"  # 45.00 x 14 / 30
    env.clock.now = datetime(2026, 11, 21, 5, 0, tzinfo=UTC)  # midnight on the 21st in New York
    lines = env.service().preview(tenant.tenant_id, Period(2026, 11))["lines"]
    assert [(l["display_name"], l["days"]) for l in lines] == [("Late Joiner", 1), ("Midmonth User 00", 20)]


def test_month_to_date_ends_every_present_user_at_the_cut_and_drops_later_changes():
    at = datetime(2026, 11, 10, tzinfo=UTC)
    cut = month_to_date([Observation(datetime(2026, 11, 1, tzinfo=UTC), "a", display_name="A"),
                         Observation(datetime(2026, 11, 12, tzinfo=UTC), "a", display_name="A", deleted=True),
                         Observation(datetime(2026, 11, 2, tzinfo=UTC), "b", display_name="B", deleted=True)], at)
    assert [(o.user_id, o.at.day, o.deleted, o.display_name) for o in cut] == [
        ("a", 1, False, "A"), ("b", 2, True, "B"), ("a", 10, True, "A")]


def test_the_preview_endpoint_answers_404_400_and_401_as_it_should(env):
    tenant = env.tenant("Errors Ltd", users=1)
    base = f"/api/tenants/{tenant.tenant_id}/invoices/preview"
    assert call(env.host, "GET", f"/api/tenants/{uuid.uuid4()}/invoices/preview?period=2026-10")[0] == 404
    status, _, body = call(env.host, "GET", base + "?period=2026-13")
    assert status == 400 and "period" in json.loads(body)["error"]
    status, _, body = call(env.host, "GET", base + "?period=2099-01")
    assert status == 400 and "has not started" in json.loads(body)["error"]
    assert call(env.host, "GET", base + "?period=2026-10", key=None)[0] == 401


# --------------------------------------------------------------------------- ./dev close and ./dev invoice

def test_dev_close_closes_by_hand_once_and_dev_invoice_previews_and_shows_it(env, tmp_path, capsys):
    from devtools import cmd_close, cmd_invoice

    tenant = env.tenant("Byhand Ltd", users=2, month=Period(2026, 4), onboarded=datetime(2026, 4, 2, tzinfo=UTC))
    settings = tmp_path / "local.settings.json"
    settings.write_text(json.dumps({"Values": dict(env.app.settings.values)}))
    common = ["--period", "2026-04", "--tenant", tenant.tenant_id, "--settings", str(settings)]

    assert cmd_close.main(common) == 0
    out = capsys.readouterr().out
    row = env.row(tenant.tenant_id, Period(2026, 4))
    assert f"Closed April 2026 for Byhand Ltd: 2 users, 4 lines, USD {Decimal(row['total']):,} incl. tax, " \
           f"invoice {row['number']} emailed to accounts@byhand.example" in out
    assert "(month-end close of April 2026, manual): 1 client; 1 invoice emailed" in out

    assert cmd_close.main(common) == 0  # again: nothing is invoiced or sent twice
    assert "April 2026 for Byhand Ltd was closed before: invoice " + row["number"] in capsys.readouterr().out
    assert len(env.sent_to("accounts@byhand.example")) == 1

    assert cmd_invoice.main(["preview", *common]) == 0
    preview = json.loads(capsys.readouterr().out)
    issued = unpack_invoice(row).to_json()
    assert {k: v for k, v in preview.items() if k in issued} == issued
    assert cmd_invoice.main(["show", *common]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["step"] == "emailed" and shown["number"] == row["number"] and shown["emailed_at"]

    assert cmd_close.main(["--period", "2099-01", "--tenant", tenant.tenant_id, "--settings", str(settings)]) == 1
    assert "has not ended yet" in capsys.readouterr().out
    assert cmd_close.main(["--period", "2026-4", "--settings", str(settings)]) == 2


# --------------------------------------------------------------------------- pieces without Azure

def test_an_invoice_frozen_in_its_row_reads_back_equal_to_the_computed_one():
    from shared.storage.invoices import InvoiceRecord, pack_invoice

    plan = parse_plan({"tenant_id": "t-1", "name": "Kuwait Co", "currency": "KWD", "timezone": "Asia/Kuwait",
                       "per_user_price": "12.125", "tax_rate": "0.05"})
    from shared.billing import compute_invoice
    invoice = compute_invoice(plan, [Observation(datetime(2026, 10, 9, tzinfo=UTC), f"u{n}", f"u{n}@k.example",
                                                 f"Ünïcode {n}") for n in range(300)], OCTOBER)
    row = InvoiceRecord({"PartitionKey": "t-1", "RowKey": "2026-10", **pack_invoice(invoice)}, "etag")
    assert unpack_invoice(row) == invoice and unpack_invoice(row).to_json() == invoice.to_json()


def test_the_number_format_takes_prefix_year_month_and_seq_and_must_contain_seq():
    from datetime import date

    from shared.invoicing.numbers import NumberFormatError, check_format, format_number

    assert format_number("{prefix}{year}-{seq:05d}", "INV-", date(2027, 1, 1), 42) == "INV-2027-00042"
    assert format_number("{prefix}{year}{month}/{seq}", "NW", date(2026, 11, 1), 7) == "NW202611/7"
    with pytest.raises(NumberFormatError, match="must contain"):
        check_format("{prefix}{year}", "INV-")
    with pytest.raises(NumberFormatError, match="INVOICE_NUMBER_FORMAT"):
        check_format("{prefix}{client}-{seq}", "INV-")


def test_a_run_summary_far_larger_than_a_table_property_is_stored_and_read_back(env):
    import secrets

    from shared.storage.invoices import RunMember, RunStore

    runs = RunStore(env.app.storage)
    run_id = f"test-{uuid.uuid4().hex[:8]}"
    header = runs.create(run_id, OCTOBER, "test", env.clock.now, [RunMember("t-1", "One", "2026-10")])
    summary = {"run_id": run_id, "failures": [{"tenant_id": f"t-{n}", "reason": secrets.token_hex(100)}
                                              for n in range(600)]}
    assert len(json.dumps(summary)) > 2 * 64 * 1024
    assert runs.summary(header) is None
    assert runs.record_summary(header, summary, env.clock.now)
    assert not runs.record_summary(header, summary, env.clock.now)  # once
    assert runs.summary(runs.header(run_id)) == summary
