"""Every document of a client, listed; voiding, re-issuing and re-sending one.

- list: invoices (table `invoices`) and correcting documents (table `documents`) with number,
  kind, period, total, currency, status (issued, emailed, voided) and the document each refers to.
- void: a full credit note of the document (for an invoice: of everything billed for its month
  so far, the invoice and its corrections; for a supplementary invoice: of its lines), issued
  through the same steps as any correction; the document is marked voided. A voided month is
  not corrected again unless it is re-issued. A credit note cannot be voided.
- reissue: a void plus a new invoice of the month from the ledger as now known (with the plan
  recorded on the original invoice), both created in one transaction.
- resend: the same archived PDF emailed again (to the billing contacts or another address),
  recorded on the document as a re-send; never a new number.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Callable
from zoneinfo import ZoneInfo

from shared.billing import Invoice, Observation, Period
from shared.billing.corrections import DocumentKind, compute_corrections
from shared.billing.observations import format_instant
from shared.errors import ProrataError, TenantNotOnboarded
from shared.invoicing.document import DOCUMENT_TITLES
from shared.invoicing.steps import Step
from shared.ports import Clock, InvoiceRepository, TenantRepository
from shared.services.corrections import CorrectionService, DocumentOutcome
from shared.storage.documents import DocumentStore, document_key
from shared.storage.invoices import invoice_document, unpack_invoice
from shared.storage.records import Conflict, InvoiceRecord

log = logging.getLogger("prorata.corrections")


class DocumentRefused(ProrataError):
    """The document cannot be voided, re-issued or re-sent (why, in plain words)."""


class UnknownDocument(ProrataError, LookupError):
    def __init__(self, number: str):
        super().__init__(f"no invoice, supplementary invoice or credit note is numbered {number!r}")


@dataclass(frozen=True)
class DocumentEntry:
    number: str
    kind: str
    period: str
    total: str
    currency: str
    status: str          # issued, emailed, voided
    refers_to: str       # the invoice it corrects or re-issues ("" for an invoice)
    issued_on: str
    reasons: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"number": self.number, "kind": self.kind, "period": self.period, "total": self.total,
                "currency": self.currency, "status": self.status, "refers_to": self.refers_to,
                "issued_on": self.issued_on, "reasons": list(self.reasons)}


def entry_of(row: InvoiceRecord) -> DocumentEntry:
    status = "voided" if row.get("voided_at") else "emailed" if row.get("step") == Step.EMAILED else "issued"
    return DocumentEntry(number=str(row["number"]), kind=str(row.get("kind") or DocumentKind.INVOICE),
                         period=str(row.get("period") or row.row_key), total=str(row.get("total", "")),
                         currency=str(row.get("currency", "")), status=status, refers_to=str(row.get("corrects") or ""),
                         issued_on=str(row.get("issued_on", "")), reasons=tuple(json.loads(row.get("reasons") or "[]")))


class Documents:
    def __init__(self, *, tenants: TenantRepository, numbered: InvoiceRepository, documents: DocumentStore,
                 corrections: Callable[[], CorrectionService], clock: Clock):
        self.tenants, self.numbered, self.documents = tenants, numbered, documents
        self._corrections, self.now = corrections, clock

    def listing(self, tenant_id: str) -> list[DocumentEntry]:
        if self.tenants.get(tenant_id) is None:
            raise TenantNotOnboarded(tenant_id)
        rows = [row for row in self.numbered.of_tenant(tenant_id) if row.get("number")]
        entries = [entry_of(row) for row in rows]
        return sorted(entries, key=lambda e: (e.period, e.issued_on, e.kind != DocumentKind.INVOICE, e.number))

    def find(self, number: str) -> InvoiceRecord:
        row = self.numbered.by_number(number)
        if row is None:
            raise UnknownDocument(number)
        return row

    # -- void and re-issue -------------------------------------------------------------------
    async def void(self, number: str, reason: str, *, reissue: bool = False) -> list[DocumentOutcome]:
        """A full credit note of the document (and with `reissue`, a new invoice of its month)."""
        if not reason.strip():
            raise DocumentRefused("say why the document is voided (--reason)")
        target = self.find(number)
        kind = target.get("kind") or DocumentKind.INVOICE
        if kind == DocumentKind.CREDIT_NOTE:
            raise DocumentRefused(f"{number} is a credit note: a credit note cannot be voided; issue an invoice instead")
        if target.get("step") != Step.EMAILED:
            raise DocumentRefused(f"{number} is not issued yet (its close stands at {target.get('step')!r})")
        if target.get("voided_at"):
            raise DocumentRefused(f"{number} was voided on {target.get('voided_at')} ({target.get('void_reason')})")
        if not target.get("invoice_chunks"):
            raise DocumentRefused(f"{number} holds no computed invoice to credit")
        tenant = self.tenants.get(target.tenant_id)
        if tenant is None:
            raise TenantNotOnboarded(target.tenant_id)
        service = self._corrections()
        period = Period.parse(str(target.get("period") or target.row_key))
        existing = self.documents.of_month(tenant.tenant_id, period)
        if not any(row.get("voids") == number for row in existing):
            self.documents.create_round(tenant.tenant_id, self._void_round(service, tenant, target, period, existing,
                                                                          reason, reissue))
        now = self.now()
        self._mark(target, {"voided_at": format_instant(now), "void_reason": reason})
        log.info("Voiding %s %s of %s for %s: %s.", DOCUMENT_TITLES.get(str(kind), kind), number,
                 period.first_day.strftime("%B %Y"), tenant.name, reason)
        return await service.correct_tenant(tenant.tenant_id, period=None, closing=None, resume_only=True)

    def _void_round(self, service: CorrectionService, tenant: Any, target: InvoiceRecord, period: Period,
                    existing: list[InvoiceRecord], reason: str, reissue: bool) -> list[tuple[str, Any]]:
        now = self.now()
        invoice_row = service.invoices.get(tenant.tenant_id, period)
        if invoice_row is None:
            raise DocumentRefused(f"the invoice of {period} is gone")
        original = unpack_invoice(invoice_row)
        if (target.get("kind") or DocumentKind.INVOICE) == DocumentKind.INVOICE:
            billed = list(original.lines)  # the month as billed so far: invoice and every correction
            for row in existing:
                billed += unpack_invoice(row).lines
        else:
            billed = list(unpack_invoice(target).lines)
        empty = Invoice(plan=original.plan, period=period, lines=(), subtotal=original.subtotal * 0,
                        tax=original.tax * 0, total=original.total * 0)
        credits = compute_corrections(billed, empty, corrects=str(target["number"]), tax_rate=original.plan.tax_rate)
        if not credits:
            raise DocumentRefused(f"nothing is left to credit on {target['number']}: its month is credited already")
        [credit] = credits
        round_ = 1 + max((int(row.row_key.split("|")[1]) for row in existing), default=0)
        issued_on = service.issued_on(tenant, now)
        rows = [(document_key(period, round_, DocumentKind.CREDIT_NOTE),
                 {**service.frozen(tenant, invoice_row, original, credit, [f"voids {target['number']}: {reason}"],
                                   issued_on, now), "voids": str(target["number"])})]
        if reissue:
            fresh, _ = service.steps.compute(replace(tenant, plan=original.plan), period, now)
            net = billed + list(credit.lines)
            again = compute_corrections(net, fresh, corrects=str(target["number"]), tax_rate=original.plan.tax_rate)
            for document in again:  # everything is owed again: one invoice
                document = replace(document, kind=DocumentKind.INVOICE)
                rows.append((document_key(period, round_, DocumentKind.INVOICE),
                             service.frozen(tenant, invoice_row, original, document,
                                            [f"re-issues {target['number']} from the ledger as now known"], issued_on, now)))
        return rows

    def _mark(self, row: InvoiceRecord, changes: dict[str, Any]) -> None:
        """Merges `changes` into the invoice's or document's record, reading it again on a conflict."""
        for _ in range(10):
            try:
                self.numbered.update(row, changes)
                return
            except Conflict:
                fresh = self.numbered.get(row.tenant_id, row.row_key)
                if fresh is None:
                    raise
                row = fresh
        raise DocumentRefused(f"{row.get('number')}: its record kept changing; try again")

    # -- explain ---------------------------------------------------------------------------
    def explain(self, number: str, user: str | None = None) -> list[str]:
        """For each line of an invoice: the runs of days it charged and the ledger records that
        began and ended each run, as the ledger stood when the invoice was computed (records it
        learned later are what the month's corrections are about, and are listed with them)."""
        from shared.billing.explain import explain_runs

        row = self.find(number)
        invoice = unpack_invoice(row)
        zone, period = invoice.plan.timezone, invoice.period
        service = self._corrections()
        lines = [line for line in invoice.lines
                 if user is None or user.lower() in (line.user_id.lower(), line.user_principal_name.lower(),
                                                     line.display_name.lower())]
        if user is not None and not lines:
            raise DocumentRefused(f"{number} has no line of {user!r}")
        title = DOCUMENT_TITLES.get(str(row.get("kind") or "invoice"), "Invoice")
        text = [f"{title} {number} for {row.get('client_name')}, {period.first_day:%B %Y} "
                f"({row.get('currency')} {row.get('total')})"]
        if row.get("kind") in (DocumentKind.SUPPLEMENTARY_INVOICE, DocumentKind.CREDIT_NOTE):
            text += [f"  corrects {row.get('corrects')}: {reason}" for reason in json.loads(row.get("reasons") or "[]")]
            text += [f"  {line.display_name} ({line.user_principal_name}), {line.item} at {line.unit_price}: "
                     f"{line.days:+d} days, {line.amount} {invoice.currency}" for line in lines]
            return text
        computed_at = row.time("computed_at") or self.now()
        late = {(o.user_id, o.at) for o, _ in service.ledger.learned_since(row.tenant_id, period.start(zone),
                                                                           period.end(zone), computed_at)}
        known = [o for o in service.ledger.read_month(row.tenant_id, period, zone).observations
                 if (o.user_id, o.at) not in late]
        runs = explain_runs(invoice.plan, known, period)
        for line in lines:
            text.append(f"{line.display_name} ({line.user_principal_name}), {line.item} at {line.unit_price}: "
                        f"{line.days} days, {line.amount} {invoice.currency}")
            for run in runs:
                if (run.user_id, run.item) != (line.user_id, line.item):
                    continue
                if invoice.plan.proration != "none" and run.unit_price != line.unit_price:
                    continue
                span = (f"{run.first_day.day}–{run.last_day.day} {run.last_day:%B}" if run.days > 1
                        else f"{run.first_day.day} {run.first_day:%B}")
                began = f"began with the record of {_when(run.began.at, zone)} ({_state(run.began)})"
                if run.price_changed:
                    ended = "ended by a price change (plan version)"
                elif run.ended is None:
                    ended = "held to the end of the month"
                else:
                    ended = f"ended by the record of {_when(run.ended.at, zone)} ({_state(run.ended)})"
                text.append(f"  {span} ({run.days} day{'s' if run.days != 1 else ''}): {began}; {ended}")
        return text

    # -- re-send ----------------------------------------------------------------------------
    async def resend(self, number: str, to: str | None = None) -> str:
        """The archived PDF emailed again; recorded on the document as a re-send."""
        row = self.find(number)
        if row.get("step") != Step.EMAILED:
            raise DocumentRefused(f"{number} has not been emailed yet (its close stands at {row.get('step')!r}); "
                                  "it is emailed when its close finishes")
        if not row.get("blob"):
            raise DocumentRefused(f"{number} has no archived PDF to send again")
        recipients = [to] if to else row.contacts
        if to is not None and ("@" not in to or any(ch.isspace() for ch in to) or len(to) > 254):
            raise DocumentRefused(f"--to: {to!r} is not an email address")
        steps = self._corrections().steps
        from shared.invoicing import render_email

        pdf = steps.archive.get(str(row["blob"]))  # exactly what was archived and first sent
        subject, html = render_email(invoice_document(row), steps.brand)
        draft_id = await steps.mailer.create_draft(subject=subject, html=html, to=recipients,
                                                   pdf_name=f"{number}.pdf", pdf=pdf)
        await steps.mailer.send_once(draft_id)
        resends = json.loads(row.get("resends") or "[]")
        resends.append({"at": format_instant(self.now()), "to": recipients, "draft_id": draft_id})
        self._mark(row, {"resends": json.dumps(resends)})
        sentence = (f"Re-sent {DOCUMENT_TITLES.get(str(row.get('kind') or 'invoice'), 'Invoice').lower()} {number} "
                    f"to {', '.join(recipients)} (the same PDF; re-send {len(resends)}).")
        log.info(sentence)
        return sentence



def _when(at: datetime, zone: str) -> str:
    local = at.astimezone(ZoneInfo(zone))
    return f"{local.day} {local:%B %H:%M}"


def _state(observation: Observation) -> str:
    if observation.deleted:
        return "deleted"
    parts = [observation.user_type, "enabled" if observation.account_enabled else "disabled"]
    return ", ".join(parts + [", ".join(observation.skus) or "no licenses"])
