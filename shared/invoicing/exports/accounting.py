"""What both accounting exports share: the account code and tax type of each line, the date
format the organisation's region reads, the tax of each line, and the line's description."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_FLOOR, Decimal, Inexact, localcontext
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

from shared.billing.holdings import CHARGE_ITEM
from shared.billing.invoice import Invoice, InvoiceLine
from shared.billing.money import minor_units
from shared.invoicing.document import InvoiceDocument
from shared.spreadsheet import csv_lines

if TYPE_CHECKING:  # pragma: no cover
    from shared.settings import Settings

# ACCOUNTING_DATE_FORMAT -> strftime. Xero and QuickBooks read dates as the organisation's
# region writes them (Xero UK/AU/NZ: DD/MM/YYYY, US: MM/DD/YYYY); ISO is offered too.
DATE_FORMATS = {"DD/MM/YYYY": "%d/%m/%Y", "MM/DD/YYYY": "%m/%d/%Y", "YYYY-MM-DD": "%Y-%m-%d"}
ALL_ITEMS = "*"  # a plan `accounting` key that applies to every item without its own entry


@dataclass(frozen=True)
class AccountingCodes:
    """The defaults from settings; a plan's `accounting` block overrides them per item."""

    revenue_account: str = "200"
    tax_type: str = ""  # empty: "Tax on Sales" on taxed plans, "Tax Exempt" on untaxed ones
    date_format: str = "DD/MM/YYYY"

    def __post_init__(self) -> None:
        if self.date_format not in DATE_FORMATS:
            raise ValueError(f"setting ACCOUNTING_DATE_FORMAT: expected one of {', '.join(DATE_FORMATS)}, "
                             f"got {self.date_format!r}")
        if not self.revenue_account.strip():
            raise ValueError("setting ACCOUNTING_REVENUE_ACCOUNT must not be empty")

    @classmethod
    def from_settings(cls, settings: "Settings") -> "AccountingCodes":
        return cls(revenue_account=(settings.get("ACCOUNTING_REVENUE_ACCOUNT") or "").strip(),
                   tax_type=(settings.get("ACCOUNTING_TAX_TYPE") or "").strip(),
                   date_format=(settings.get("ACCOUNTING_DATE_FORMAT") or "").strip().upper())

    def date(self, day: date) -> str:
        return day.strftime(DATE_FORMATS[self.date_format])

    def for_item(self, invoice: Invoice, item: str) -> tuple[str, str]:
        """(account code, tax type) of an item: the plan's entry for the item, else its "*" entry,
        else the settings; the default tax type follows whether the plan is taxed."""
        plan = invoice.plan
        entry = {**plan.accounting.get(ALL_ITEMS, {}), **plan.accounting.get(item, {})}
        default_tax = self.tax_type or ("Tax on Sales" if plan.tax_rate else "Tax Exempt")
        return entry.get("account_code", self.revenue_account), entry.get("tax_type", default_tax)


def line_taxes(invoice: Invoice) -> list[Decimal]:
    """The invoice's tax spread over its lines so that they add up to it exactly.

    Rule: each line's share is amount × tax_rate; every line gets its share rounded down to the
    currency's minor unit, then the minor units still missing go one each to the lines with the
    largest remainders (ties: the earlier line). The sum is the invoice's tax, which was rounded
    once on the subtotal (billing rules), so the books show the PDF's tax to the cent.
    Computed in exact decimals (a product of two decimals is exact with enough digits)."""
    digits = minor_units(invoice.currency)
    rate = invoice.plan.tax_rate
    with localcontext() as exact:
        exact.prec = 80  # far beyond any amount × rate: every product and sum below is exact
        exact.traps[Inexact] = True
        shares = [(line.amount * rate).scaleb(digits) for line in invoice.lines]  # in minor units
        floors = [share.to_integral_value(rounding=ROUND_FLOOR) for share in shares]
        missing = int(invoice.tax.scaleb(digits) - sum(floors, Decimal(0)))
        by_remainder = sorted(range(len(shares)), key=lambda i: (floors[i] - shares[i], i))
        for index in by_remainder[:max(missing, 0)]:
            floors[index] += 1
        unit = Decimal(1).scaleb(-digits)
        return [units.scaleb(-digits).quantize(unit) for units in floors]


def describe_line(line: InvoiceLine, days_in_period: int, item_name: str) -> str:
    """ "Ann Lee (ann@contoso.com) — Managed user, 17/31 days": the proration is in the text, so
    that the amounts can stay quantity 1 × the exact line amount."""
    from shared.invoicing.render import display_address  # a guest by the address it was invited with, never #EXT#

    if line.item == CHARGE_ITEM:  # a one-off charge or credit: its description, no address, no days
        return f"{line.display_name} — {item_name}"
    return f"{line.display_name} ({display_address(line.user_principal_name)}) — {item_name}, {line.days}/{days_in_period} days"


def join_csv(header: Sequence[str], parts: Iterable[bytes]) -> bytes:
    """An import file from its header and its documents' lines, each written apart (csv_lines):
    UTF-8 without a byte-order mark (a BOM would become part of the first column's name in
    Xero), RFC 4180 quoting, CRLF line ends (shared/spreadsheet.py)."""
    return csv_lines([header]) + b"".join(parts)


def files_by_currency(documents: Iterable[InvoiceDocument], header: Sequence[str],
                      lines: Callable[[InvoiceDocument], bytes]) -> dict[str, bytes]:
    """{currency: import file} of the documents: the header, then each document's CSV lines."""
    return {currency: join_csv(header, map(lines, group)) for currency, group in by_currency(documents).items()}


def by_currency(documents: Iterable[InvoiceDocument]) -> dict[str, list[InvoiceDocument]]:
    """The documents grouped by currency, currencies A→Z, documents in their given order."""
    groups: dict[str, list[InvoiceDocument]] = {}
    for document in documents:
        groups.setdefault(document.invoice.currency, []).append(document)
    return dict(sorted(groups.items()))
