"""Corrections of an issued invoice: what a recomputation of its month owes more or less.

Contract ("An issued invoice is final; what changes later is corrected by new documents"): the
month is recomputed from the ledger as now known and compared with what was billed, line key by
line key (user, item, unit price). More owed: a supplementary invoice; less owed: a credit note.
Each line names the person, the item, the days added or removed and the amount, which is the
difference of the rounded line amounts; tax is at the original invoice's rate.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Iterable

from shared.billing.invoice import Invoice, InvoiceLine, line_order
from shared.billing.money import round_half_up
from shared.billing.period import Period

# Corrections reach back at most this many months before the month being closed; an older
# change is reported in the run summary and not billed.
REACH_BACK_MONTHS = 12

LineKey = tuple[str, str, Decimal]  # (user id, item, unit price)


class DocumentKind(StrEnum):
    INVOICE = "invoice"
    SUPPLEMENTARY_INVOICE = "supplementary_invoice"
    CREDIT_NOTE = "credit_note"


@dataclass(frozen=True)
class Correction:
    """One correcting document of one issued invoice, before it is numbered.

    Lines are InvoiceLines whose `days` and `amount` are signed: days added (> 0) or removed
    (< 0), amount owed more (> 0) or less (< 0). A credit note's lines and totals are negative.
    """
    kind: DocumentKind
    corrects: str              # the original invoice's number
    period: Period             # the original invoice's period
    currency: str
    tax_rate: Decimal          # the original invoice's rate
    lines: tuple[InvoiceLine, ...]
    subtotal: Decimal
    tax: Decimal
    total: Decimal


def line_key(line: InvoiceLine) -> LineKey:
    return (line.user_id, line.item, line.unit_price)


def billed_by_key(lines: Iterable[InvoiceLine]) -> dict[LineKey, InvoiceLine]:
    """Net days and amount billed per line key over an invoice and its corrections (signed),
    named as the latest line of that key."""
    result: dict[LineKey, InvoiceLine] = {}
    for line in lines:
        known = result.get(line_key(line))
        result[line_key(line)] = line if known is None else replace(
            line, days=known.days + line.days, amount=known.amount + line.amount)
    return result


def compute_corrections(billed: Iterable[InvoiceLine], fresh: Invoice, *, corrects: str,
                        tax_rate: Decimal) -> list[Correction]:
    """The corrections that bring what was billed for a month (the invoice's lines plus those of
    every correction already issued for it) to its fresh computation: at most one supplementary
    invoice (lines owed more) and one credit note (lines owed less). Nothing when they agree.

    Rule (Prorata's choice, docs/billing-rules.md): a line whose amount does not change is no
    correction even if its days do (`none` proration); lines owed more and lines owed less go on
    separate documents, so a credit note never carries a charge.
    """
    before = billed_by_key(billed)
    after = billed_by_key(fresh.lines)
    changes: list[InvoiceLine] = []
    for key in before.keys() | after.keys():
        old, new = before.get(key), after.get(key)
        old_amount = old.amount if old else Decimal(0)
        new_amount = new.amount if new else Decimal(0)
        if new_amount == old_amount:
            continue
        named = new or old
        assert named is not None
        changes.append(replace(named, days=(new.days if new else 0) - (old.days if old else 0),
                               amount=new_amount - old_amount))
    changes.sort(key=lambda line: line_order(line, line.unit_price))
    documents = []
    for kind, lines in ((DocumentKind.SUPPLEMENTARY_INVOICE, [l for l in changes if l.amount > 0]),
                        (DocumentKind.CREDIT_NOTE, [l for l in changes if l.amount < 0])):
        if lines:
            documents.append(_document(kind, lines, fresh, corrects, tax_rate))
    return documents


def _document(kind: DocumentKind, lines: list[InvoiceLine], fresh: Invoice, corrects: str,
              tax_rate: Decimal) -> Correction:
    subtotal = sum((line.amount for line in lines), Decimal(0))
    # tax = |subtotal| × the original invoice's rate, rounded half-up once, with the subtotal's sign
    tax = round_half_up(Fraction(abs(subtotal)) * Fraction(tax_rate), fresh.currency)
    if subtotal < 0:
        tax = -tax
    return Correction(kind=kind, corrects=corrects, period=fresh.period, currency=fresh.currency,
                      tax_rate=tax_rate, lines=tuple(lines), subtotal=subtotal, tax=tax, total=subtotal + tax)


def within_reach(period: Period, closing: Period) -> bool:
    """True when a change to `period` may still be corrected by the close of `closing`."""
    months = (closing.year - period.year) * 12 + closing.month - period.month
    return 0 < months <= REACH_BACK_MONTHS
