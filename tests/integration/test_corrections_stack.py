"""Corrections of invoiced months against Azurite, the Graph simulator and the dev host: a change
the ledger learns after October was invoiced gives a credit note or a supplementary invoice,
numbered, rendered, archived and emailed exactly once; the preview of October returns the
issued invoice with its corrections; the next close issues them and says why in its summary."""
from __future__ import annotations

import asyncio
import io
import json
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from pypdf import PdfReader

from shared.billing import Observation, Period, parse_plan
from shared.storage.documents import DocumentStore
from shared.tenants import OFFBOARDED, Tenant
from tests.integration.stack import background_loop, call, running_stack
from tests.unit.fakes import Clock, Crash

UTC = timezone.utc
OCTOBER = Period(2026, 10)


@pytest.fixture(scope="module")
def stack(azurite):
    with running_stack(azurite.connection_string, CREDIT_NOTE_NUMBER_FORMAT="CN-{year}-{seq:05d}") as parts:
        yield parts


@pytest.fixture(scope="module")
def loop():
    with background_loop() as running:
        yield running


class Env:
    def __init__(self, sim, host, app, loop):
        self.sim, self.host, self.app, self.loop = sim, host, app, loop
        self.clock = Clock(datetime(2026, 11, 1, 6, tzinfo=UTC))
        app.clock = self.clock
        self.made: list[str] = []

    def run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(120)

    def client(self, name: str, month: Period = OCTOBER) -> Tenant:
        """Ann Lee and Bob Ray hold the per-user fee and SPB all the month (October); it is invoiced."""
        tenant_id = str(uuid.uuid4())
        plan = parse_plan({"tenant_id": tenant_id, "name": name, "currency": "USD", "timezone": "UTC",
                           "per_user_price": "45.00", "sku_prices": {"SPB": "22.00"}, "tax_rate": "0.0825"})
        slug = name.lower().replace(" ", "-")
        tenant = Tenant(tenant_id=tenant_id, plan=plan, billing_contacts=(f"ap@{slug}.example",),
                        onboarded_at=datetime(month.year, month.month, 1, tzinfo=UTC) - timedelta(days=30))
        self.app.tenants.save(tenant)
        self.made.append(tenant_id)
        start = datetime(month.year, month.month, 1, tzinfo=UTC) - timedelta(days=20)
        self.app.ledger.append(tenant_id, [
            Observation(start, "u-ann", f"ann@{slug}.example", "Ann Lee", skus=("SPB",)),
            Observation(start, "u-bob", f"bob@{slug}.example", "Bob Ray", skus=("SPB",))],
            observed_at=start, source="test")
        after = month.next()
        self.clock.now = datetime(after.year, after.month, 1, 6, tzinfo=UTC)
        assert self.run(self.app.close_service().close_tenant(tenant_id, month)).kind == "emailed"
        return tenant

    def learn(self, tenant: Tenant, observation: Observation, on: datetime) -> None:
        self.clock.now = on
        self.app.ledger.append(tenant.tenant_id, [observation], observed_at=on, source="delta")

    def correct(self, tenant: Tenant, **options):
        return self.run(self.app.corrections(**options).correct_tenant(tenant.tenant_id))

    def documents(self, tenant: Tenant):
        return DocumentStore(self.app.storage).of_tenant(tenant.tenant_id)

    def mails(self, tenant: Tenant):
        return [m for m in self.sim.outbox if tenant.billing_contacts[0] in m.to]


@pytest.fixture
def env(stack, loop):
    sim, host, app = stack
    environment = Env(sim, host, app, loop)
    yield environment
    host.wait_idle(30)
    for tenant_id in environment.made:
        app.tenants.update(tenant_id, status=OFFBOARDED)


def ann_left(tenant: Tenant, month: Period = OCTOBER) -> Observation:
    slug = tenant.name.lower().replace(" ", "-")
    return Observation(datetime(month.year, month.month, 20, 9, tzinfo=UTC), "u-ann", f"ann@{slug}.example", "Ann Lee",
                       skus=("SPB",), deleted=True)


NOV_3 = datetime(2026, 11, 3, 14, tzinfo=UTC)


def test_a_departure_learned_after_the_invoice_gives_one_credit_note_emailed_once(env):
    tenant = env.client("Contoso Dental")
    invoice = env.app.close_service().invoices.get(tenant.tenant_id, OCTOBER)
    env.learn(tenant, ann_left(tenant), NOV_3)

    [outcome] = env.correct(tenant)
    assert outcome.kind == "credit_note" and outcome.number.startswith("CN-2026-")
    # 45.00 − round(45 × 19/31) = 45.00 − 27.58 = 17.42; 22.00 − 13.48 = 8.52; tax 25.94 × 8.25 % = 2.14
    assert outcome.total == "-28.08" and outcome.corrects == invoice["number"]
    assert outcome.sentence == (f"Credit note {outcome.number} for Contoso Dental: Ann Lee left on 20 October, "
                                "known since 3 November; -28.08 USD")
    [row] = env.documents(tenant)
    assert row["step"] == "emailed" and row["blob"] == f"2026-10/{tenant.tenant_id}/{outcome.number}.pdf"

    [mail] = [m for m in env.mails(tenant) if outcome.number in m.subject]
    assert mail.subject == (f"Credit note {outcome.number} from Northwind MSP for October 2026 "
                            f"(corrects invoice {invoice['number']})")
    pdf = mail.attachments[0].data
    assert pdf == env.app.close_service().archive.get(row["blob"])
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert "CREDIT NOTE" in text and "Corrects invoice" in text and invoice["number"] in text and "Ann Lee" in text

    assert env.correct(tenant) == []  # a second run issues nothing
    assert len(env.documents(tenant)) == 1 and len([m for m in env.mails(tenant) if "Credit note" in m.subject]) == 1


def test_a_user_learned_late_gives_a_supplementary_invoice_in_the_invoice_sequence(env):
    tenant = env.client("Fabrikam Dental")
    env.learn(tenant, Observation(datetime(2026, 10, 15, 10, tzinfo=UTC), "u-cy", "cy@fabrikam.example", "Cy Fox"),
              NOV_3)
    [outcome] = env.correct(tenant)
    assert outcome.kind == "supplementary_invoice" and outcome.number.startswith("INV-2026-")
    assert outcome.sentence.startswith(f"Supplementary invoice {outcome.number} for Fabrikam Dental: "
                                       "Cy Fox joined on 15 October, known since 3 November; ")
    [mail] = [m for m in env.mails(tenant) if outcome.number in m.subject]
    assert mail.subject.startswith(f"Supplementary invoice {outcome.number}")


def test_the_preview_of_an_invoiced_month_is_the_issued_invoice_and_its_corrections(env):
    tenant = env.client("Preview Dental")
    issued = env.app.close_service().invoices.get(tenant.tenant_id, OCTOBER)
    env.learn(tenant, ann_left(tenant), NOV_3)
    status, _, body = call(env.host, "GET", f"/api/tenants/{tenant.tenant_id}/invoices/preview?period=2026-10")
    preview = json.loads(body)
    assert status == 200 and preview["total"] == issued["total"] and preview["corrections"] == []
    [outcome] = env.correct(tenant)
    preview = json.loads(call(env.host, "GET", f"/api/tenants/{tenant.tenant_id}/invoices/preview?period=2026-10")[2])
    assert preview["total"] == issued["total"]  # never a recomputation
    [correction] = preview["corrections"]
    assert (correction["number"], correction["kind"], correction["total"]) == (outcome.number, "credit_note", "-28.08")
    assert [(l["display_name"], l["item"], l["days"]) for l in correction["lines"]] == [
        ("Ann Lee", "user", -12), ("Ann Lee", "SPB", -12)]


@pytest.mark.parametrize("crash_after", ["number", "render", "store", "draft", "send"])
def test_a_crash_at_any_step_of_a_correction_still_gives_one_document_and_one_email(env, crash_after):
    tenant = env.client(f"Crash {crash_after.title()} Dental")
    env.learn(tenant, ann_left(tenant), NOV_3)

    def crash(step):
        if step == crash_after:
            raise Crash(f"the process died after {step}")

    with pytest.raises(Crash):
        env.correct(tenant, after_step=crash)
    env.clock.now += timedelta(minutes=6)  # the lease expires
    resumed = env.correct(tenant)
    rows = env.documents(tenant)
    assert len(rows) == 1 and rows[0]["step"] == "emailed"
    credit_mails = [m for m in env.mails(tenant) if "Credit note" in m.subject]
    assert len(credit_mails) == 1 and rows[0]["number"] in credit_mails[0].subject
    assert [o.number for o in resumed] in ([rows[0]["number"]], [])


def test_credit_note_numbers_are_their_own_gap_free_sequence(env):
    numbers = []
    for n in range(3):
        tenant = env.client(f"Sequence {n} Dental")
        env.learn(tenant, ann_left(tenant), NOV_3)
        numbers += [o.number for o in env.correct(tenant)]
    seqs = [int(number.rsplit("-", 1)[1]) for number in numbers]
    assert seqs == list(range(seqs[0], seqs[0] + 3))


def test_the_next_month_end_close_issues_the_correction_and_says_why_in_its_summary(env, caplog):
    import logging

    caplog.set_level(logging.INFO)
    tenant = env.client("Nextclose Dental")
    env.learn(tenant, ann_left(tenant), NOV_3)
    env.clock.now = datetime(2026, 12, 1, 6, tzinfo=UTC)
    service = env.app.close_service()
    run_id, outcomes, _ = env.run(service.close_by_hand(Period(2026, 11), [tenant.tenant_id]))
    [outcome] = outcomes
    [correction] = outcome.corrections
    assert correction["kind"] == "credit_note" and "Ann Lee left on 20 October, known since 3 November" in correction["sentence"]
    summary = service.run_report(run_id)
    assert summary["corrections"][0]["number"] == correction["number"]
    assert correction["sentence"] in " ".join(r.getMessage() for r in caplog.records)


def test_the_next_close_finishes_a_correction_that_a_crash_left_unfinished(env):
    """The corrected month's invoice record is marked before its documents are made, so the
    close (which reads table `documents` only for a client with such a mark) finds them."""
    tenant = env.client("Leftover Dental")
    env.learn(tenant, ann_left(tenant), NOV_3)

    def crash(step):
        if step == "render":
            raise Crash("the process died after render")

    with pytest.raises(Crash):
        env.correct(tenant, after_step=crash)
    assert env.app.invoices.get(tenant.tenant_id, OCTOBER).get("corrected")
    env.clock.now = datetime(2026, 12, 1, 6, tzinfo=UTC)  # the lease expired long ago
    _, [outcome], _ = env.run(env.app.close_service().close_by_hand(Period(2026, 11), [tenant.tenant_id]))
    [row] = env.documents(tenant)
    assert row["step"] == "emailed" and [c["number"] for c in outcome.corrections] == [row["number"]]
    assert len([m for m in env.mails(tenant) if "Credit note" in m.subject]) == 1


def test_corrections_on_demand_over_http_and_with_dev_invoice_correct(env, tmp_path, capsys):
    from devtools import cmd_invoice

    # The dev host and the CLI run on the wall clock: a month two months back is always in reach.
    month = Period.containing(datetime.now(UTC).date()).previous().previous()
    tenant = env.client("Ondemand Dental", month)
    after = month.next()
    env.learn(tenant, ann_left(tenant, month), datetime(after.year, after.month, 3, 14, tzinfo=UTC))
    path = f"/api/tenants/{tenant.tenant_id}/corrections"
    for raw, expected, says in [(b'{"period": "2026-13"}', 400, "period"), (b'{"month": "2026-10"}', 400, "expected"),
                                (json.dumps({"period": str(Period(month.year - 1, month.month))}).encode(), 400, "reach back 12 months"), (b"[[[", 400, "JSON")]:
        status, _, body = call(env.host, "POST", path, raw=raw)
        assert status == expected and says in json.loads(body)["error"], body
    assert call(env.host, "POST", f"/api/tenants/{uuid.uuid4()}/corrections", {})[0] == 404
    assert env.documents(tenant) == []  # nothing half-written by the refusals

    status, _, body = call(env.host, "POST", path, {"period": str(month)})
    [issued] = json.loads(body)["issued"]
    assert status == 200 and issued["kind"] == "credit_note" and issued["total"].startswith("-")
    assert "Ann Lee left on 20 " in issued["sentence"]

    settings = tmp_path / "local.settings.json"
    settings.write_text(json.dumps({"Values": dict(env.app.settings.values)}))
    assert cmd_invoice.main(["correct", "--tenant", tenant.tenant_id, "--settings", str(settings)]) == 0
    assert "Nothing to correct" in capsys.readouterr().out  # the second run issues nothing
    assert cmd_invoice.main(["correct", "--tenant", tenant.tenant_id, "--period", "2026-1",
                             "--settings", str(settings)]) == 2
    assert cmd_invoice.main(["list", "--tenant", tenant.tenant_id, "--json", "--settings", str(settings)]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [d["kind"] for d in listed] == ["invoice", "credit_note"] and listed[1]["refers_to"] == listed[0]["number"]
    assert cmd_invoice.main(["void", "--number", listed[1]["number"], "--reason", "x", "--settings", str(settings)]) == 1
    assert "a credit note cannot be voided" in capsys.readouterr().err
    for action in (["void", "--reason", "x"], ["reissue"], ["resend"]):  # bad input: exit 2, one line naming it
        assert cmd_invoice.main([action[0], "--number", "NOPE-1", *action[1:], "--settings", str(settings)]) == 2
        err = capsys.readouterr().err
        assert err.strip().count("\n") == 0 and "'NOPE-1'" in err and "Traceback" not in err


def test_documents_are_listed_voided_reissued_and_resent(env):
    tenant = env.client("Lifecycle Dental")
    invoice = env.app.close_service().invoices.get(tenant.tenant_id, OCTOBER)
    number = invoice["number"]
    env.learn(tenant, ann_left(tenant), NOV_3)
    [credit] = env.correct(tenant)

    status, _, body = call(env.host, "GET", f"/api/tenants/{tenant.tenant_id}/documents")
    listed = [(d["number"], d["kind"], d["period"], d["status"], d["refers_to"]) for d in json.loads(body)]
    assert status == 200 and listed == [(number, "invoice", "2026-10", "emailed", ""),
                                        (credit.number, "credit_note", "2026-10", "emailed", number)]

    # re-send: the same PDF again, to another address, recorded; never a new number
    status, _, body = call(env.host, "POST", f"/api/invoices/{number}/resend", {"to": "books@lifecycle.example"})
    assert status == 200 and "Re-sent invoice" in json.loads(body)["message"]
    [again] = [m for m in env.sim.outbox if "books@lifecycle.example" in m.to]
    assert again.attachments[0].data == env.app.close_service().archive.get(invoice["blob"])

    # bad requests, and nothing half-written by them
    assert call(env.host, "POST", f"/api/invoices/{credit.number}/void", {"reason": "x"})[0] == 409  # a credit note
    assert call(env.host, "POST", "/api/invoices/INV-1999-99999/void", {"reason": "x"})[0] == 404
    assert call(env.host, "POST", f"/api/invoices/{number}/void", {})[0] == 400  # no reason
    assert call(env.host, "POST", f"/api/invoices/{number}/frobnicate", {})[0] == 404
    assert len(env.documents(tenant)) == 1

    # re-issue: the whole month credited and a new invoice from the ledger as now known
    env.clock.now = datetime(2026, 11, 5, 9, tzinfo=UTC)
    outcomes = env.run(env.app.document_service().void(number, "wrong address on the invoice", reissue=True))
    assert sorted(o.kind for o in outcomes) == ["credit_note", "invoice"]
    void = next(o for o in outcomes if o.kind == "credit_note")
    new = next(o for o in outcomes if o.kind == "invoice")
    rows = {row["number"]: row for row in env.documents(tenant)}
    billed = Decimal(invoice["subtotal"]) + Decimal(rows[credit.number]["subtotal"])
    assert Decimal(rows[void.number]["subtotal"]) == -billed  # everything billed for October so far
    assert new.number.startswith("INV-2026-") and Decimal(rows[new.number]["subtotal"]) == billed
    statuses = {d.number: d.status for d in env.app.document_service().listing(tenant.tenant_id)}
    assert statuses[number] == "voided" and statuses[new.number] == "emailed"
    assert env.correct(tenant) == []  # the month as billed equals the ledger: nothing more
    env.learn(tenant, Observation(datetime(2026, 10, 25, 10, tzinfo=UTC), "u-cy", "cy@lifecycle.example", "Cy Fox"),
              datetime(2026, 11, 6, 9, tzinfo=UTC))
    [more] = env.correct(tenant)
    assert more.kind == "supplementary_invoice" and more.corrects == new.number  # the re-issued invoice
    with pytest.raises(Exception, match="was voided"):
        env.run(env.app.document_service().void(number, "again"))


def test_explain_shows_each_lines_runs_of_days_and_the_records_that_began_and_ended_them(env):
    tenant = env.client("Explain Dental")
    env.learn(tenant, ann_left(tenant), NOV_3)  # learned after the invoice: not part of its trail
    number = env.app.close_service().invoices.get(tenant.tenant_id, OCTOBER)["number"]
    text = env.app.document_service().explain(number, "Ann Lee")
    assert text[0].startswith(f"Invoice {number} for Explain Dental, October 2026")
    assert text[1] == "Ann Lee (ann@explain-dental.example), user at 45.00: 31 days, 45.00 USD"
    assert text[2] == ("  1–31 October (31 days): began with the record of 11 September 00:00 (Member, enabled, SPB); "
                       "held to the end of the month")
    [credit] = env.correct(tenant)
    assert "corrects " + number + ": Ann Lee left on 20 October, known since 3 November" in \
        "\n".join(env.app.document_service().explain(credit.number))


def test_a_one_off_charge_is_its_own_line_on_its_months_invoice_and_refused_once_invoiced(env, tmp_path, capsys):
    from devtools import cmd_tenants

    tenant = env.client("Charges Dental")  # October is invoiced
    path = f"/api/tenants/{tenant.tenant_id}/charges"
    status, _, body = call(env.host, "POST", path, {"period": "2026-10", "description": "Late project", "amount": "10.00"})
    assert status == 409 and "October 2026 of Charges Dental is invoiced" in json.loads(body)["error"]
    status, _, body = call(env.host, "POST", path, {"period": "2026-11", "description": "x", "amount": "10", "currency": "EUR"})
    assert status == 400 and "currency" in json.loads(body)["error"]
    assert call(env.host, "POST", f"/api/tenants/{uuid.uuid4()}/charges",
                {"period": "2026-11", "description": "x", "amount": "1"})[0] == 404
    status, _, body = call(env.host, "POST", path, {"period": "2026-11", "description": "Server migration",
                                                    "amount": "1200.00"})
    assert status == 201 and json.loads(body)["amount"] == "1200.00"

    settings = tmp_path / "local.settings.json"
    settings.write_text(json.dumps({"Values": dict(env.app.settings.values)}))
    assert cmd_tenants.main(["charge", "--tenant", tenant.tenant_id, "--period", "2026-11", "--description",
                             "Goodwill credit", "--amount", "-50.00", "--settings", str(settings)]) == 0
    assert 'one-off credit "Goodwill credit" of -50.00 USD on the invoice of November 2026' in capsys.readouterr().out
    assert cmd_tenants.main(["charge", "--tenant", tenant.tenant_id, "--period", "2026-11", "--description", "x",
                             "--amount", "lots", "--settings", str(settings)]) == 2

    env.clock.now = datetime(2026, 12, 1, 6, tzinfo=UTC)
    # the charge makes the total move far from October's: the guardrail holds it (numbered and archived)
    assert env.run(env.app.close_service().close_tenant(tenant.tenant_id, Period(2026, 11))).kind == "held"
    row = env.app.close_service().invoices.get(tenant.tenant_id, Period(2026, 11))
    from shared.storage.invoices import unpack_invoice
    lines = [(l.display_name, l.item, str(l.amount)) for l in unpack_invoice(row).lines]
    assert lines[-2:] == [("Server migration", "charge", "1200.00"), ("Goodwill credit", "charge", "-50.00")]
    pdf = env.app.close_service().archive.get(row["blob"])
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert "Server migration" in text and "Goodwill credit" in text


def test_a_change_older_than_twelve_months_is_reported_in_the_close_and_not_billed(env):
    tenant = env.client("Oldnews Dental")
    env.learn(tenant, ann_left(tenant), datetime(2027, 11, 20, tzinfo=UTC))  # October 2026, learned 13 months on
    env.clock.now = datetime(2027, 12, 1, 6, tzinfo=UTC)
    outcome = env.run(env.app.close_service().close_tenant(tenant.tenant_id, Period(2027, 11)))
    assert outcome.corrections == [{"sentence": "Oldnews Dental: the ledger learned of a change in October 2026 "
                                                f"(invoice {env.app.invoices.get(tenant.tenant_id, OCTOBER)['number']}) "
                                                "more than 12 months back; not billed"}]
    assert env.documents(tenant) == []
