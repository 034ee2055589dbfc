"""Runs the demo: local stand-ins up, four clients onboarded, a month played through Graph
notifications, the month-end close through its timer, then a short summary.

Only the clock is simulated (the simulator's and the app's, moved together); everything else
is the production path: HTTP into function_app.py, queues, Table and Blob Storage, msgraph-sdk.
"""
from __future__ import annotations

import json
import logging
import shutil
import sys
import time
import urllib.request
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from devtools.azurite import Azurite, free_ports
from devtools.demo.scenario import CLIENTS, Month, plan_month
from devtools.grants import consent_client, consent_msp
from devtools.graph_sim import GraphSimulator
from devtools.host import DevHost
from shared.billing import Period

ROOT = Path(__file__).resolve().parents[2]
KEY = "demo-function-key"
MSP_TENANT = "0c1d2e3f-4a5b-4c6d-8e7f-901a2b3c4d5e"
MAILBOX = "billing@northwind-msp.example"


class Clock:
    """The demo's clock: the one thing it simulates."""

    def __init__(self, sim: GraphSimulator, start: datetime):
        self.sim, self.now = sim, start
        sim.set_now(start)

    def __call__(self) -> datetime:
        return self.now

    def set(self, when: datetime) -> None:
        if when > self.now:
            self.now = when
            self.sim.set_now(when)


def say(text: str) -> None:
    print(text, flush=True)


def previous_month(today: datetime) -> Period:
    return Period(today.year, today.month).previous()


MARKER = ".prorata-demo"  # written into every folder the demo makes, so it may empty it next time


class OutNotEmpty(ValueError):
    """--out names a folder that holds files the demo did not make."""


def prepare_out(out: Path) -> None:
    """An empty `out` with the demo's marker. A folder the demo made before is emptied; any other
    non-empty folder (or a file) is refused, never deleted."""
    if out.exists():
        if not out.is_dir():
            raise OutNotEmpty(f"{out} is a file, not a folder")
        if any(out.iterdir()) and not (out / MARKER).is_file():
            raise OutNotEmpty(f"{out} is not empty and was not made by ./dev demo; choose another --out or empty it")
        shutil.rmtree(out)
    (out / "invoices").mkdir(parents=True)
    (out / MARKER).write_text("made by ./dev demo: emptied by the next ./dev demo with this --out\n")


def run(out: Path, period: Period | None = None, verbose: bool = False, guardrails: bool = False) -> int:
    began = time.monotonic()
    period = period or previous_month(datetime.now(timezone.utc))
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stdout,
                        format="%(levelname)s %(name)s: %(message)s")
    prepare_out(out)
    month = plan_month(period.year, period.month)
    say(f"Prorata demo: {len(CLIENTS)} sample clients through {period_name(period)}, then the month-end close.")
    say("[1/5] Starting Azurite, the Graph simulator and the development Functions host ...")
    with Azurite() as azurite, GraphSimulator() as sim:
        port = free_ports(1)[0]
        settings = {
            "FUNCTIONS_WORKER_RUNTIME": "python", "AzureWebJobsStorage": azurite.connection_string,
            "DEV_HOST_FUNCTION_KEYS": KEY, "GRAPH_BASE_URL": sim.base_url, "GRAPH_AUTH": "static",
            "GRAPH_STATIC_TOKEN": "sim-token.{tenant_id}", "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "MSP_TENANT_ID": MSP_TENANT, "INVOICE_MAILBOX": MAILBOX, "INVOICE_BCC": "archive@northwind-msp.example",
            "MONTH_END_SCHEDULE": "0 0 6 1 * *", "MONTH_END_CATCHUP_SCHEDULE": "0 15 * 1,2 * *",
            "SUBSCRIPTION_RENEW_SCHEDULE": "0 0 */6 * * *",
            "DAILY_SYNC_SCHEDULE": "0 30 2 * * *", "BRAND_NAME": "Northwind MSP",
            "BRAND_ADDRESS": "12 Harbour Street|Portsmouth PO1 2AB|United Kingdom",
            "INVOICE_NUMBER_PREFIX": "NW-", "SYNC_RECHECK_SECONDS": "1,2", **DEMO_LEGAL_SETTINGS,
        }
        start = period.start("UTC") - timedelta(days=3)
        clock = Clock(sim, start)
        sim.add_tenant(MSP_TENANT, "Northwind MSP", "northwind-msp.example")
        sim.create_user(MSP_TENANT, "Billing", MAILBOX, created=start - timedelta(days=900))
        consent_msp(sim, MSP_TENANT, MAILBOX)  # exactly what docs/deploy.md grants
        # The host's own timers stay off: the demo fires them at the simulated times instead.
        host = DevHost(settings=settings, port=port, enable_timers=False).start()
        try:
            from shared.app import get_app
            get_app().clock = clock
            onboard(sim, host, month, clock)
            change_price(host, period)
            close_previous(sim, host, period, clock)
            play(sim, host, month, clock, late=LateNews(sim, month, period))
            close(sim, host, period, clock)
            result = summarise(sim, host, period, out, began, guardrails_next=guardrails)
            if guardrails:
                result = result or show_guardrails(sim, host, period.next(), clock)
                say(f"Finished in {time.monotonic() - began:.0f} s. Local stand-ins stopped.")
            return result
        finally:
            host.stop()


# The MSP's legal and payment details, which its e-invoices carry (a UK company in the demo).
DEMO_LEGAL_SETTINGS = {
    "BRAND_LEGAL_NAME": "Northwind MSP Ltd", "BRAND_VAT_ID": "GB 123 4567 89", "BRAND_COMPANY_ID": "09876543",
    "BRAND_STREET": "12 Harbour Street", "BRAND_CITY": "Portsmouth", "BRAND_POSTCODE": "PO1 2AB",
    "BRAND_COUNTRY": "GB", "BRAND_EMAIL": MAILBOX, "PAYMENT_IBAN": "GB82WEST12345698765432",
    "PAYMENT_BIC": "WESTGB2L", "PAYMENT_BANK_NAME": "Westminster Bank",
}


def sku_guid(part_number: str) -> str | None:
    """Microsoft's SKU id of a part number (from the product catalog), so the simulated tenants
    list the real ids; None lets the simulator make one up."""
    from shared.invoicing.products import catalog
    product = catalog().get(part_number.lower())
    return product.guid if product is not None else None


def invoice_number(subject: str) -> str:
    """The invoice number in an email subject, in whichever language it is written."""
    return next((word for word in subject.split() if word.startswith("NW-")), subject)


def period_name(period: Period) -> str:
    return period.first_day.strftime("%B %Y")


def api(host: DevHost, method: str, path: str, body: object | None = None) -> tuple[int, object]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(host.base_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", "x-functions-key": KEY})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace")


def settle(sim: GraphSimulator, host: DevHost) -> None:
    """Waits until every notification is delivered and every queued sync has run."""
    sim.wait_deliveries(30)
    host.wait_idle(60)


def onboard(sim: GraphSimulator, host: DevHost, month: Month, clock: Clock) -> None:
    say(f"[2/5] Onboarding {len(CLIENTS)} clients (plan, billing contacts, baseline sync, Graph subscription) ...")
    for client in CLIENTS:
        sim.add_tenant(client.tenant_id, client.name, client.domain)
        consent_client(sim, client.tenant_id)
        for sku, prepaid in client.skus.items():
            sim.add_sku(client.tenant_id, sku, prepaid=prepaid, sku_id=sku_guid(sku))
        for n, (name, upn, skus, kind) in enumerate(month.baseline[client.tenant_id]):
            sim.create_user(client.tenant_id, name, upn, skus=skus, user_type=kind,
                            created=clock.now - timedelta(days=60 + 37 * n))
        status, answer = api(host, "POST", "/api/tenants", client.onboarding())
        if status != 201:
            raise RuntimeError(f"onboarding {client.name} answered {status}: {answer}")
        say(f"      {client.name}: {answer['users']} users in the baseline, {client.plan['currency']}, "
            f"{client.plan['timezone']}, proration {client.plan['proration']}")
    settle(sim, host)


def _user_id(sim: GraphSimulator, tenant_id: str, name: str) -> str:
    return next(u["id"] for u in sim.users(tenant_id) if u["displayName"] == name)


PRICED = CLIENTS[0]  # Contoso Dental: its license price rises mid-month (a plan version)
PRICE_CHANGE_DAY, NEW_PRICE = 15, "24.00"


def change_price(host: DevHost, period: Period) -> None:
    """A price change taking effect mid-month: a plan version from the 15th."""
    sku = next(iter(PRICED.plan["sku_prices"]))
    day = period.first_day.replace(day=PRICE_CHANGE_DAY)
    status, answer = api(host, "POST", f"/api/tenants/{PRICED.tenant_id}/plan/versions",
                         {"effective_from": day.isoformat(), "sku_prices": {sku: NEW_PRICE}})
    if status != 201 or not isinstance(answer, dict):
        raise RuntimeError(f"the plan version of {PRICED.name} answered {status}: {answer}")
    say(f"      Price change: {answer['message']}")


def close_previous(sim: GraphSimulator, host: DevHost, period: Period, clock: Clock) -> None:
    """The clients were onboarded before the month began: their previous month is invoiced first."""
    previous = period.previous()
    say(f"      Month-end close of {period_name(previous)} (the clients' first invoices) ...")
    month_end(sim, host, previous, clock)


class LateNews:
    """A change inside the previous, already invoiced month that the ledger learns late: a leaver
    whose deletion no notification carried, back-dated by an import (as `./dev ledger import`
    does) on the 3rd. The next close corrects the previous month's invoice with a credit note."""

    def __init__(self, sim: GraphSimulator, month: Month, period: Period):
        self.sim, self.period, self.done = sim, period, False
        busy = {event.person for event in month.events}
        self.person = next(name for name, upn, _, kind in month.baseline[PRICED.tenant_id]
                           if kind == "Member" and not upn.startswith("svc-") and name not in busy)
        zone = PRICED.plan["timezone"]
        self.learned_at = datetime.combine(period.first_day.replace(day=3), datetime.min.time(),
                                           ZoneInfo(zone)).replace(hour=9).astimezone(timezone.utc)
        left = period.previous().last_day - timedelta(days=2)
        self.left_at = datetime.combine(left, datetime.min.time(), ZoneInfo(zone)).replace(hour=17).astimezone(timezone.utc)

    def due(self, at: datetime) -> bool:
        return not self.done and at >= self.learned_at

    def happen(self, host: DevHost, clock: Clock) -> None:
        from shared.app import get_app
        from shared.billing import Observation

        self.done = True
        clock.set(self.learned_at)
        app = get_app()
        user_id = _user_id(self.sim, PRICED.tenant_id, self.person)
        state = app.ledger.current_states(PRICED.tenant_id)[user_id]
        app.ledger.append(PRICED.tenant_id, [Observation(self.left_at, user_id, state.user_principal_name,
                                                         state.display_name, skus=state.skus, deleted=True)],
                          observed_at=clock.now, source="import")
        self.sim.soft_delete_user(PRICED.tenant_id, user_id)  # Graph agrees (its notification changes nothing)
        say(f"      Late news for {PRICED.name}: {self.person} left on {self.left_at:%d %B}, imported on "
            f"{self.learned_at:%d %B}, after {period_name(self.period.previous())} was invoiced")


def play(sim: GraphSimulator, host: DevHost, month: Month, clock: Clock, late: LateNews | None = None) -> None:
    say(f"[3/5] Playing the month: {len(month.events)} directory changes, each arriving as a Graph notification ...")
    counts: Counter[str] = Counter()
    day = None
    for event in month.events:
        if event.at.date() != day:  # a new day: the timers that run daily in Azure run here too
            day = event.at.date()
            clock.set(datetime.combine(day, datetime.min.time(), timezone.utc) + timedelta(hours=2, minutes=30))
            host.trigger_timer("renew_subscriptions")
            host.trigger_timer("daily_sync")
            settle(sim, host)
        if late is not None and late.due(event.at):
            late.happen(host, clock)
            settle(sim, host)
        clock.set(event.at)
        tenant = event.client.tenant_id
        if event.kind == "join":
            sim.create_user(tenant, event.person, event.upn, skus=[event.sku], created=event.at)
        else:
            user = _user_id(sim, tenant, event.person)
            {"leave": lambda: sim.soft_delete_user(tenant, user),
             "restore": lambda: sim.restore_user(tenant, user),
             "license_add": lambda: sim.assign_license(tenant, user, event.sku),
             "license_remove": lambda: sim.remove_license(tenant, user, event.sku),
             "disable": lambda: sim.disable_user(tenant, user),
             "enable": lambda: sim.enable_user(tenant, user)}[event.kind]()
        counts[event.kind] += 1
        settle(sim, host)
    if late is not None and not late.done:
        late.happen(host, clock)
        settle(sim, host)
    delivered = [d for d in sim.delivery_log if d.get("status", 0) and d["status"] < 300]
    say(f"      {counts['join']} joiners, {counts['leave']} leavers, {counts['restore']} restores, "
        f"{counts['license_add'] + counts['license_remove']} license changes, "
        f"{counts['disable'] + counts['enable']} disables/enables; {len(delivered)} notifications acknowledged")


def close(sim: GraphSimulator, host: DevHost, period: Period, clock: Clock, step: str = "[4/5] ") -> None:
    say(f"{step}Month-end close of {period_name(period)}: the month_end timer at 06:00 UTC on the 1st ...")
    month_end(sim, host, period, clock)


def month_end(sim: GraphSimulator, host: DevHost, period: Period, clock: Clock) -> None:
    """The month_end timer at 06:00 UTC on the 1st after the period, and what it queued, done."""
    clock.set(period.end("UTC") + timedelta(hours=6))
    invocation = host.trigger_timer("month_end")
    if invocation.error is not None:
        raise RuntimeError(f"the month_end timer failed: {invocation.error}")
    settle(sim, host)


def summarise(sim: GraphSimulator, host: DevHost, period: Period, out: Path, began: float,
              guardrails_next: bool = False) -> int:
    from shared.app import get_app

    app = get_app()
    say("[5/5] Done. What the MSP got:")
    container = app.storage.container(app.settings.get("INVOICE_CONTAINER"))
    files = []
    for blob in container.list_blobs(name_starts_with=f"{period}/"):
        target = out / "invoices" / blob.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(container.download_blob(blob.name).readall())
        files.append(target)
    sim.export_outbox(out / "outbox")
    sent = [m for m in sim.outbox if m.mailbox.lower() == MAILBOX]
    width = max(len(client.name) for client in CLIENTS)
    for client in CLIENTS:
        status, preview = api(host, "GET", f"/api/tenants/{client.tenant_id}/invoices/preview?period={period}")
        if status != 200 or not isinstance(preview, dict):
            raise RuntimeError(f"the preview of {client.name} answered {status}: {preview}")
        number = (preview.get("close") or {}).get("number") or "?"  # this month's invoice, not last month's
        mail = next((m for m in sent if set(m.to) & set(client.contacts) and number in m.subject), None)
        users = len({line["user_id"] for line in preview["lines"]})
        say(f"      {client.name:<{width}} {users:>3} users billed, {preview['currency']} {preview['total']:>9} incl. tax, "
            + (f"{invoice_number(mail.subject)} emailed to {', '.join(mail.to)}" if mail else "NOT emailed"))
        status, reconciliation = api(host, "GET", f"/api/tenants/{client.tenant_id}/reconciliation")
        say(f"      {'':<{width}} licenses: " + (reconciliation["summary"] if status == 200 else f"reconciliation failed ({status})"))
    previous = period.previous()
    for blob in container.list_blobs(name_starts_with=f"{previous}/"):  # the first invoices and the correction
        target = out / "invoices" / blob.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(container.download_blob(blob.name).readall())
    corrections = [c for header in app.runs.runs_of_period(period)
                   for c in (app.runs.summary(header) or {}).get("corrections", [])]
    for correction in corrections:
        say(f"      Correction: {correction['sentence']} (PDF in {out / 'invoices' / str(previous)})")
    pdfs = [f for f in files if f.suffix == ".pdf"]
    exports = [str(f) for f in files if f.name.startswith(("xero-invoices-", "xero-credit-notes-", "quickbooks-invoices-"))]
    ubls = [f for f in files if f.suffix == ".xml"]
    findings_csv = [str(f) for f in files if f.name.startswith("reconciliation-")]
    say(f"      PDF invoices: {len(pdfs)} in {out / 'invoices' / str(period)}")
    say(f"      E-invoices (UBL, EN 16931, validated): {len(ubls)} beside the PDFs")
    say(f"      Xero and QuickBooks import files: {', '.join(exports) or 'none'}")
    say(f"      License reconciliation CSV (for the MSP): {', '.join(findings_csv) or 'none'}")
    say(f"      Sent emails with attachments: {out / 'outbox'} ({len(sent)} messages)")
    if not guardrails_next:
        say(f"Finished in {time.monotonic() - began:.0f} s. Local stand-ins stopped.")
    # Each client's invoice of the month and of the month before, and the one correction.
    return 0 if len(pdfs) == len(CLIENTS) and len(sent) == 2 * len(CLIENTS) + 1 and len(corrections) == 1 else 1


def show_guardrails(sim: GraphSimulator, host: DevHost, period: Period, clock: Clock) -> int:
    """The next month, in which Contoso Dental's staff triples: its invoice is held (numbered and
    archived, not emailed) while the others are emailed; then it is released, and emailed once."""
    from shared.app import get_app

    app = get_app()
    tripled = CLIENTS[0]
    staff = len(sim.users(tripled.tenant_id))
    say(f"[6/6] Guardrails: in {period_name(period)} {tripled.name} grows from {staff} to {3 * staff} users ...")
    sku = next(s for s in tripled.skus if s in tripled.plan["sku_prices"])
    clock.set(period.start(tripled.plan["timezone"]) + timedelta(hours=9))
    for n in range(2 * staff):
        name = f"Seasonal Temp {n + 1:02d}"
        sim.create_user(tripled.tenant_id, name, f"temp{n + 1:02d}@{tripled.domain}", skus=[sku], created=clock.now)
    settle(sim, host)
    close(sim, host, period, clock, step="      ")
    held = []
    for client in CLIENTS:
        record = app.invoices.get(client.tenant_id, period)
        if record is None:
            continue
        if record.step == "held":
            held.append(record)
            say(f"      {client.name:<19} {record.number} HELD, not emailed: {record.get('hold_reason')}")
        else:
            say(f"      {client.name:<19} {record.number or '-'} {record.step}")
    if len(held) != 1:
        say(f"      expected one held invoice, found {len(held)}")
        return 1
    number = held[0].number
    before = sum(1 for m in sim.outbox if set(m.to) & set(tripled.contacts))
    say(f"      Releasing it, as ./dev invoice release --number {number} does (POST /api/invoices/{number}/release) ...")
    status, answer = api(host, "POST", f"/api/invoices/{number}/release")
    say(f"      {answer['sentence'] if status == 200 else f'release answered {status}: {answer}'}")
    status, again = api(host, "POST", f"/api/invoices/{number}/release")
    say(f"      Released again: {again['sentence'] if status == 200 else status}")
    sent = sum(1 for m in sim.outbox if set(m.to) & set(tripled.contacts)) - before
    say(f"      {number} was emailed {sent} time(s).")
    return 0 if sent == 1 else 1
