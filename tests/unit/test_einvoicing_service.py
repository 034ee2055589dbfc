"""What the close asks of e-invoicing (shared/services/einvoicing.py), with settings only."""
from __future__ import annotations

import pytest

from shared.services.einvoicing import EInvoiceRefused, EInvoicing
from shared.settings import Settings
from tests.unit.documents import document

LEGAL = {"BRAND_NAME": "Northwind", "BRAND_VAT_ID": "BE0403170701", "BRAND_COUNTRY": "BE",
         "BRAND_EMAIL": "billing@northwind.example"}


def test_without_the_msps_vat_id_and_country_no_e_invoice_is_attempted_and_the_reason_is_given():
    assert EInvoicing(Settings({"BRAND_NAME": "Northwind"})).unset_settings() == (
        "the MSP's settings BRAND_VAT_ID and BRAND_COUNTRY are not set (EN 16931 needs them)")
    assert EInvoicing(Settings(LEGAL)).unset_settings() == ""
    assert "BRAND_COUNTRY" in EInvoicing(Settings({**LEGAL, "BRAND_COUNTRY": "Belgium"})).unset_settings()


def test_a_document_that_breaks_a_rule_is_refused_with_the_rule_and_what_to_fix():
    einvoicing = EInvoicing(Settings(LEGAL))
    einvoicing.check_before_numbering(document([("Ann", 15, [])]))
    with pytest.raises(EInvoiceRefused, match=r"e-invoice PENDING fails .*BR-DEC-23.*BRAND_\* settings"):
        einvoicing.check_before_numbering(document([("Ann", 15, [])], currency="KWD", user_price="12.500"))


def test_a_runs_accounting_files_are_one_xero_and_one_quickbooks_file_per_currency():
    files = EInvoicing(Settings(LEGAL)).accounting_files("2026-10", "run1", [
        document([("Ann", 1, [])], currency="USD", number="A-1"), document([("Bo", 1, [])], number="A-2")])
    assert sorted(files) == ["2026-10/quickbooks-invoices-run1-EUR.csv", "2026-10/quickbooks-invoices-run1-USD.csv",
                             "2026-10/xero-invoices-run1-EUR.csv", "2026-10/xero-invoices-run1-USD.csv"]
    assert b"A-2" in files["2026-10/xero-invoices-run1-EUR.csv"] and b"A-1" not in files["2026-10/xero-invoices-run1-EUR.csv"]
