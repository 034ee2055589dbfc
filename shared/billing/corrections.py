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
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Iterable
from zoneinfo import ZoneInfo

from shared.billing.invoice import Invoice, InvoiceLine, line_order
from shared.billing.money import round_signed
from shared.billing.observations import Observation
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
    # tax = subtotal × the original invoice's rate, rounded half-up once (symmetric for a credit)
    tax = round_signed(Fraction(subtotal) * Fraction(tax_rate), fresh.currency)
    return Correction(kind=kind, corrects=corrects, period=fresh.period, currency=fresh.currency,
                      tax_rate=tax_rate, lines=tuple(lines), subtotal=subtotal, tax=tax, total=subtotal + tax)


def within_reach(period: Period, closing: Period) -> bool:
    """True when a change to `period` may still be corrected by the close of `closing`."""
    months = (closing.year - period.year) * 12 + closing.month - period.month
    return 0 < months <= REACH_BACK_MONTHS


def _day(at: datetime, zone: str) -> str:
    local = at.astimezone(ZoneInfo(zone))
    return f"{local.day} {local:%B}"


def describe_change(before: Observation | None, after: Observation, zone: str) -> str:
    """A change of one user in plain words: "Ann Lee left on 20 October"."""
    name = after.display_name or (before.display_name if before else "") or after.user_id
    day = _day(after.at, zone)
    if after.deleted:
        return f"{name} left on {day}"
    if before is None:
        return f"{name} joined on {day}"
    if before.deleted:
        return f"{name} came back on {day}"
    changes = []
    added, removed = sorted(set(after.skus) - set(before.skus)), sorted(set(before.skus) - set(after.skus))
    if added:
        changes.append(f"was given {', '.join(added)}")
    if removed:
        changes.append(f"lost {', '.join(removed)}")
    if before.account_enabled != after.account_enabled:
        changes.append("was enabled again" if after.account_enabled else "was disabled")
    if before.is_guest != after.is_guest:
        changes.append("became a guest" if after.is_guest else "became a member")
    if before.user_principal_name != after.user_principal_name:
        changes.append(f"was renamed {after.user_principal_name}")
    return f"{name} {' and '.join(changes) or 'changed'} on {day}"


def explain_correction(correction: Correction, observations: Iterable[Observation],
                       learned: Iterable[tuple[Observation, datetime]], zone: str) -> list[str]:
    """Why each person on a correction is on it, in plain words, from the ledger records learned
    after the invoice: "Ann Lee left on 20 October, known since 3 November". A person with no
    such record (the ledger was right, the rules were not) gets the days that changed."""
    users = {line.user_id: line for line in correction.lines}
    history: dict[str, list[Observation]] = defaultdict(list)
    for observation in sorted(observations, key=lambda o: o.at):
        history[observation.user_id].append(observation)
    reasons: list[str] = []
    explained: set[str] = set()
    for observation, learned_at in sorted(learned, key=lambda pair: pair[0].at):
        if observation.user_id not in users:
            continue
        before = next((o for o in reversed(history[observation.user_id]) if o.at < observation.at), None)
        reasons.append(f"{describe_change(before, observation, zone)}, known since {_day(learned_at, zone)}")
        explained.add(observation.user_id)
    for user_id, line in users.items():
        if user_id not in explained:
            days = sum(l.days for l in correction.lines if l.user_id == user_id)
            reasons.append(f"{line.display_name or user_id}: {abs(days)} day{'s' if abs(days) != 1 else ''} "
                           f"{'added' if days > 0 else 'removed'}")
    return reasons
