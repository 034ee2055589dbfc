"""The Xero and QuickBooks Online import files (shared/invoicing/exports)."""
from __future__ import annotations

import csv
import io
from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given, settings, strategies as st

from shared.billing import InputError
from shared.invoicing.exports.accounting import AccountingCodes, line_taxes
from shared.invoicing.exports.quickbooks import QUICKBOOKS_COLUMNS, quickbooks_csvs
from shared.invoicing.exports.xero import XERO_COLUMNS, XERO_CREDIT_NOTE_COLUMNS, xero_credit_note_csvs, xero_csvs
from shared.services.einvoicing import EInvoicing
from shared.settings import Settings
from tests.unit.documents import crowd, document

CODES = AccountingCodes(revenue_account="4000", tax_type="20% (VAT on Income)", date_format="DD/MM/YYYY")


def rows(data: bytes) -> list[dict[str, str]]:
    assert not data.startswith(b"\xef\xbb\xbf"), "a BOM would become part of the first column's name"
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))


def test_every_column_xero_requires_is_filled_on_every_row():
    data = xero_csvs([document(crowd(40))], CODES)["EUR"]
    header = data.decode().split("\r\n")[0].split(",")
    assert tuple(header) == XERO_COLUMNS
    required = [name for name in XERO_COLUMNS if name.startswith("*")]
    assert set(required) == {"*ContactName", "*InvoiceNumber", "*InvoiceDate", "*DueDate", "*Description",
                             "*Quantity", "*UnitAmount", "*AccountCode", "*TaxType"}
    for row in rows(data):
        assert all(row[name] for name in required), row


def test_tax_is_carried_by_the_tax_type_and_tax_amount_never_as_a_line():
    doc = document([("Ann Lee", 15, ["SPB"]), ("Bob Ray", 1, [])])
    table = rows(xero_csvs([doc], CODES)["EUR"])
    assert len(table) == len(doc.invoice.lines) == 3
    assert not any("tax" in row["*Description"].lower() for row in table)
    assert sum(Decimal(row["*UnitAmount"]) * Decimal(row["*Quantity"]) for row in table) == doc.invoice.subtotal
    assert sum(Decimal(row["TaxAmount"]) for row in table) == doc.invoice.tax == Decimal("17.17")
    assert {row["*TaxType"] for row in table} == {"20% (VAT on Income)"}
    assert {row["Total"] for row in table} == {"98.91"}
    ann = table[0]
    assert ann["*Description"] == "Ann Lee (user0@contoso.example) — Managed user, 17/31 days"
    assert (ann["*Quantity"], ann["*UnitAmount"]) == ("1", "24.68")


def test_account_code_and_tax_type_come_from_settings_unless_the_plan_names_them_per_item():
    doc = document([("Ann Lee", 1, ["SPB"])], tax_rate="0", tax_category="AE",
                   accounting={"*": {"tax_type": "Reverse Charge Services"}, "SPB": {"account_code": "4100"}})
    table = rows(xero_csvs([doc], CODES)["EUR"])
    assert [(row["*AccountCode"], row["*TaxType"]) for row in table] == [
        ("4000", "Reverse Charge Services"), ("4100", "Reverse Charge Services")]
    assert {row["TaxAmount"] for row in table} == {"0.00"}


def test_without_a_tax_type_setting_taxed_and_untaxed_plans_get_xero_default_rate_names():
    taxed = rows(xero_csvs([document([("Ann", 1, [])])], AccountingCodes())["EUR"])
    untaxed = rows(xero_csvs([document([("Ann", 1, [])], tax_rate="0")], AccountingCodes())["EUR"])
    assert (taxed[0]["*TaxType"], untaxed[0]["*TaxType"]) == ("Tax on Sales", "Tax Exempt")
    assert taxed[0]["*AccountCode"] == "200"


@pytest.mark.parametrize("setting, issued, due", [("DD/MM/YYYY", "01/11/2026", "01/12/2026"),
                                                  ("MM/DD/YYYY", "11/01/2026", "12/01/2026"),
                                                  ("YYYY-MM-DD", "2026-11-01", "2026-12-01")])
def test_dates_are_written_as_the_organisations_region_reads_them(setting, issued, due):
    codes = AccountingCodes(date_format=setting)
    doc = document([("Ann", 1, [])])
    xero = rows(xero_csvs([doc], codes)["EUR"])[0]
    books = rows(quickbooks_csvs([doc], codes)["EUR"])[0]
    assert (xero["*InvoiceDate"], xero["*DueDate"]) == (issued, due)
    assert (books["Invoice Date"], books["Due Date"]) == (issued, due)


def test_an_unknown_date_format_setting_is_named():
    with pytest.raises(ValueError, match="ACCOUNTING_DATE_FORMAT"):
        AccountingCodes(date_format="D.M.YY")


def test_one_file_per_currency_each_with_its_minor_digits():
    files = xero_csvs([document([("Ann", 15, [])], currency="JPY", user_price="5000", sku_prices={"SPB": "2000"},
                                number="INV-1"),
                       document([("Ann", 15, [])], currency="USD", number="INV-2"),
                       document([("Ann", 15, [])], currency="KWD", user_price="12.500",
                                sku_prices={"SPB": "3.000"}, number="INV-3")], CODES)
    assert list(files) == ["JPY", "KWD", "USD"]
    assert rows(files["JPY"])[0]["*UnitAmount"] == "2742"  # 5000 × 17/31 = 2741.9…
    assert rows(files["KWD"])[0]["*UnitAmount"] == "6.855"  # 12.5 × 17/31 = 6.8548…
    assert rows(files["USD"])[0]["*UnitAmount"] == "24.68"
    assert {row["Currency"] for row in rows(files["KWD"])} == {"KWD"}


def credit_note_as_stored(number="CN-2026-00001"):
    """A credit note as the corrections make it: negative days, amounts, tax and total."""
    doc = document([("Ann Lee", 29, ["SPB"])], number=number)
    invoice = doc.invoice
    lines = tuple(replace(line, days=-line.days, amount=-line.amount) for line in invoice.lines)
    return replace(doc, kind="credit_note", corrects="INV-2026-00042", invoice=replace(
        invoice, lines=lines, subtotal=-invoice.subtotal, tax=-invoice.tax, total=-invoice.total))


def test_credit_notes_are_written_in_xeros_credit_note_template_not_as_negative_invoices():
    data = xero_credit_note_csvs([credit_note_as_stored()], CODES)["EUR"]
    header = data.decode().split("\r\n")[0].split(",")
    assert tuple(header) == XERO_CREDIT_NOTE_COLUMNS
    assert "*CreditNoteNumber" in header and "*CreditNoteDate" in header
    assert not {"*InvoiceNumber", "*InvoiceDate", "*DueDate"} & set(header)
    assert [column for column in XERO_COLUMNS if column not in XERO_CREDIT_NOTE_COLUMNS] == [
        "*InvoiceNumber", "*InvoiceDate", "*DueDate"]
    table = rows(data)
    assert table and all(row[name] for row in table for name in header if name.startswith("*"))


def test_a_credit_note_carries_the_amounts_credited_positive_and_names_the_invoice_it_corrects():
    credit = credit_note_as_stored()
    table = rows(xero_credit_note_csvs([credit], CODES)["EUR"])
    assert [(row["*CreditNoteNumber"], row["*Quantity"], row["*UnitAmount"]) for row in table] == [
        ("CN-2026-00001", "1", "4.35"), ("CN-2026-00001", "1", "2.13")]
    assert sum(Decimal(row["*UnitAmount"]) for row in table) == -credit.invoice.subtotal
    assert sum(Decimal(row["TaxAmount"]) for row in table) == -credit.invoice.tax > 0
    assert {row["Total"] for row in table} == {str(-credit.invoice.total)}
    assert {row["Reference"] for row in table} == {"INV-2026-00042"}
    assert {row["*CreditNoteDate"] for row in table} == {credit.issued_on.strftime("%d/%m/%Y")}
    assert {(row["*AccountCode"], row["*TaxType"]) for row in table} == {("4000", "20% (VAT on Income)")}
    assert table[0]["*Description"] == "Ann Lee (user0@contoso.example) — Managed user, 3/31 days"


def test_a_credit_note_reads_the_same_whether_stored_negative_or_positive():
    stored = credit_note_as_stored()
    positive = replace(document([("Ann Lee", 29, ["SPB"])], number="CN-2026-00001"), kind="credit_note",
                       corrects="INV-2026-00042")
    assert xero_credit_note_csvs([stored], CODES) == xero_credit_note_csvs([positive], CODES)


def test_a_runs_accounting_files_put_credit_notes_in_xeros_credit_note_file_and_never_in_an_invoice_file():
    einvoicing = EInvoicing(Settings({}))
    supplementary = replace(document([("Bob Ray", 20, [])], number="INV-2026-00050"), kind="supplementary_invoice")
    files = einvoicing.accounting_files("2026-11", "r1", [document([("Ann", 1, [])]), supplementary,
                                                          credit_note_as_stored()])
    assert list(files) == ["2026-11/xero-invoices-r1-EUR.csv", "2026-11/xero-credit-notes-r1-EUR.csv",
                           "2026-11/quickbooks-invoices-r1-EUR.csv"]
    xero = rows(files["2026-11/xero-invoices-r1-EUR.csv"])
    credits = rows(files["2026-11/xero-credit-notes-r1-EUR.csv"])
    books = rows(files["2026-11/quickbooks-invoices-r1-EUR.csv"])
    assert sorted({row["*InvoiceNumber"] for row in xero}) == ["INV-2026-00042", "INV-2026-00050"]
    assert all(row["*Quantity"] == "1" and not row["Total"].startswith("-") for row in xero)
    assert {row["*CreditNoteNumber"] for row in credits} == {"CN-2026-00001"}
    assert sorted({row["Invoice no"] for row in books}) == ["INV-2026-00042", "INV-2026-00050"]


def test_a_run_that_issued_only_a_credit_note_writes_only_xeros_credit_note_file():
    files = EInvoicing(Settings({})).accounting_files("2026-11", "r2", [credit_note_as_stored()])
    assert list(files) == ["2026-11/xero-credit-notes-r2-EUR.csv"]


def test_a_display_name_that_looks_like_a_formula_is_written_as_text():
    doc = document([("=HYPERLINK(\"http://x\")", 1, [])])
    assert rows(xero_csvs([doc], CODES)["EUR"])[0]["*Description"].startswith("'=HYPERLINK")
    assert rows(quickbooks_csvs([doc], CODES)["EUR"])[0]["Item Description"].startswith("'=")


def test_quickbooks_uses_the_column_names_it_maps_by_itself_and_quantity_times_rate_is_the_amount():
    doc = document(crowd(60), currency="USD")
    data = quickbooks_csvs([doc], CODES)["USD"]
    assert tuple(data.decode().split("\r\n")[0].split(",")) == QUICKBOOKS_COLUMNS
    table = rows(data)
    assert len(table) == len(doc.invoice.lines)
    for row in table:
        assert Decimal(row["Item Quantity"]) * Decimal(row["Item Rate"]) == Decimal(row["Item Amount"])
        assert row["Invoice no"] == "INV-2026-00042" and row["Customer"] == "Contoso" and row["Taxable"] == "Y"
    assert sum(Decimal(row["Item Amount"]) for row in table) == doc.invoice.subtotal
    assert sum(Decimal(row["Item Tax Amount"]) for row in table) == doc.invoice.tax
    assert {row["Item(Product/Service)"] for row in table} == {"Managed user", "Microsoft 365 Business Premium"}


def test_a_plan_accounting_block_with_an_unknown_field_is_refused_naming_it():
    with pytest.raises(InputError, match="accounting.SPB.acount_code"):
        document([("Ann", 1, [])], accounting={"SPB": {"acount_code": "4000"}})


@settings(max_examples=200, deadline=None)
@given(amounts=st.lists(st.integers(min_value=0, max_value=10**7), min_size=1, max_size=30),
       rate=st.sampled_from(["0", "0.05", "0.0825", "0.19", "0.2", "0.21", "0.075"]),
       currency=st.sampled_from(["USD", "JPY", "KWD"]))
def test_line_taxes_always_add_up_to_the_invoice_tax(amounts, rate, currency):
    from dataclasses import replace
    from fractions import Fraction

    from shared.billing.money import minor_units, round_half_up
    doc = document([("Ann", 1, [])], currency=currency, tax_rate=rate, user_price="1")
    line = doc.invoice.lines[0]
    unit = Decimal(1).scaleb(-minor_units(currency))
    lines = tuple(replace(line, amount=amount * unit) for amount in amounts)
    subtotal = sum((x.amount for x in lines), Decimal(0))
    tax = round_half_up(Fraction(subtotal) * Fraction(Decimal(rate)), currency)
    invoice = replace(doc.invoice, lines=lines, subtotal=subtotal, tax=tax, total=subtotal + tax)
    taxes = line_taxes(invoice)
    assert sum(taxes, Decimal(0)) == tax
    assert all(t >= 0 for t in taxes)
    # each line's tax is within one minor unit of its exact share
    for x, t in zip(lines, taxes):
        assert abs(Fraction(t) - Fraction(x.amount) * Fraction(Decimal(rate))) <= Fraction(unit) * 2


def test_a_one_off_charge_is_described_by_its_text_without_days_in_the_import_files():
    from shared.billing.charges import parse_charge, with_charges

    doc = document([("Ann", 1, [])])
    charge = parse_charge({"period": "2026-10", "description": "Server migration", "amount": "1200.00"},
                          doc.invoice.plan)
    doc = replace(doc, invoice=with_charges(doc.invoice, [charge]))
    assert rows(xero_csvs([doc], CODES)["EUR"])[-1]["*Description"] == "Server migration — One-off"
    assert rows(quickbooks_csvs([doc], CODES)["EUR"])[-1]["Item Description"] == "Server migration — One-off"


def test_a_runs_files_from_lines_written_while_other_invoices_render_are_the_files_written_at_once():
    ahead, at_once = EInvoicing(Settings({})), EInvoicing(Settings({}))
    documents = [document([("Ann", 1, [])]), replace(document(crowd(30), number="INV-2026-00051"),
                                                     kind="supplementary_invoice"), credit_note_as_stored()]
    for each in documents:
        ahead.accounting_lines(each)
    assert ahead.accounting_files("2026-11", "r3", documents) == at_once.accounting_files("2026-11", "r3", documents)
    # a different document under a number seen before (never in production: an issued document
    # never changes) is written from its own lines, not from the earlier one's
    changed = replace(documents[0], invoice=replace(documents[0].invoice, total=documents[0].invoice.total + 1))
    assert ahead.accounting_lines(changed) != ahead.accounting_lines(documents[0])
