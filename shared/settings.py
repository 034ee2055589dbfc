"""Every app setting Prorata reads, with its default, in one place.

Azure Functions exposes app settings as environment variables; `local.settings.json` does the
same locally. `Settings.from_env()` is called by the composition root, never at import time.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

# name -> (default, meaning). None as default means: required where it is used.
SETTINGS: dict[str, tuple[str | None, str]] = {
    "AzureWebJobsStorage": (None, "storage connection string (locally `UseDevelopmentStorage=true`); "
                            "in Azure the identity-based AzureWebJobsStorage__* settings replace it"),
    "GRAPH_BASE_URL": ("https://graph.microsoft.com/v1.0", "Microsoft Graph endpoint"),
    "GRAPH_AUTH": ("federated", "how Prorata signs in to client tenants: federated, secret, certificate or static"),
    "GRAPH_APP_CLIENT_ID": (None, "application (client) id of the MSP's multi-tenant app registration"),
    "MSP_TENANT_ID": (None, "the MSP's own Entra tenant id (where the invoicing mailbox lives)"),
    "MANAGED_IDENTITY_CLIENT_ID": (None, "client id of the Function App's user-assigned managed identity"),
    "GRAPH_CLIENT_SECRET": (None, "client secret of the multi-tenant app (GRAPH_AUTH=secret; use a Key Vault reference)"),
    "GRAPH_CERTIFICATE_PATH": (None, "PEM certificate with private key (GRAPH_AUTH=certificate)"),
    "GRAPH_STATIC_TOKEN": (None, "pre-issued bearer token, {tenant_id} replaced (GRAPH_AUTH=static, local work only)"),
    "PUBLIC_BASE_URL": (None, "public https base URL of the Function App, for Graph notification URLs"),
    "MONTH_END_SCHEDULE": ("0 0 6 1 * *", "NCRONTAB schedule of the month-end close (UTC)"),
    "MONTH_END_CATCHUP_SCHEDULE": ("0 15 * 1,2 * *", "NCRONTAB schedule (UTC) of the month-end catch-up, which "
                                   "closes the clients whose month ended after the main run (zones west of UTC)"),
    "SUBSCRIPTION_RENEW_SCHEDULE": ("0 0 */6 * * *", "NCRONTAB schedule of the subscription renewal"),
    "DAILY_SYNC_SCHEDULE": ("0 30 2 * * *", "NCRONTAB schedule of the daily delta sync of every tenant"),
    "SUBSCRIPTION_LIFETIME_MINUTES": ("4320", "lifetime asked for each Graph subscription (max 41760)"),
    "SUBSCRIPTION_RENEW_BEFORE_MINUTES": ("1440", "renew a subscription when it expires within this many minutes"),
    "INVOICE_MAILBOX": (None, "the MSP mailbox invoices are sent from (UPN or id)"),
    "INVOICE_CC": ("", "comma-separated addresses copied on every invoice email"),
    "INVOICE_BCC": ("", "comma-separated addresses blind-copied on every invoice email"),
    "INVOICE_NUMBER_PREFIX": ("INV-", "prefix of invoice numbers"),
    "INVOICE_NUMBER_FORMAT": ("{prefix}{year}-{seq:05d}", "invoice number format ({prefix}, {year}, {month}, {seq})"),
    "INVOICE_PAYMENT_TERMS_DAYS": ("30", "days from the invoice date to the due date"),
    "INVOICE_CONTAINER": ("invoices", "blob container for PDFs and run CSVs"),
    "BRAND_NAME": ("Your MSP", "the MSP's name on invoices"),
    "BRAND_ADDRESS": ("", "the MSP's postal address on invoices (lines separated by |)"),
    "BRAND_LOGO_URL": ("", "logo image on invoices (https or data: URL)"),
    "BRAND_PRIMARY_COLOR": ("#1F4E79", "main colour of invoices"),
    "BRAND_ACCENT_COLOR": ("#E8EEF4", "accent colour of invoices (table stripes)"),
    "WEBHOOK_MAX_BODY_BYTES": ("1048576", "largest notification body accepted (413 above)"),
    "BRAND_VAT_ID": ("", "the MSP's tax registration number on invoices (VAT ID, GST/ABN...); e-invoices need it, with its country prefix (BE0123456789)"),
    "BRAND_COMPANY_ID": ("", "the MSP's company registration number on invoices"),
    "PAYMENT_IBAN": ("", "IBAN clients pay invoices to (printed with the bank details; checked)"),
    "PAYMENT_BIC": ("", "BIC/SWIFT code of the MSP's bank account"),
    "PAYMENT_BANK_NAME": ("", "name of the MSP's bank, printed with the IBAN"),
    "PAYMENT_LINK": ("", "https link where clients pay online (printed and in the email)"),
    "PAYMENT_REFERENCE": ("{number}", "the reference clients quote with a payment ({number}: the invoice number)"),
    "WEBHOOK_MAX_ITEMS": ("1000", "most items accepted in one notification body (413 above; Graph sends a few hundred)"),
    "WEBHOOK_UNKNOWN_SUBSCRIPTION_SECONDS": ("2", "how long the webhook remembers that a subscription id is unknown"),
    "WEBHOOK_DEADLINE_MILLISECONDS": ("2000", "the webhook answers 503 (Graph retries) if storage has not "
                                      "answered by then; Graph wants an answer within 3 s"),
    "HOLD_IF_TOTAL_CHANGES_PERCENT": ("50", "hold an invoice (not emailed) whose total differs from the client's "
                                      "previous invoice by more than this percentage (off: never)"),
    "HOLD_IF_USERS_CHANGE": ("30%,5", "hold an invoice whose users billed differ from the previous invoice's by "
                             "more than this percentage and at least this many (off: never)"),
    "HOLD_FIRST_INVOICE": ("false", "hold each client's first invoice"),
    "HOLDS_ENABLED": ("true", "hold invoices by the HOLD_* rules (false: every invoice is emailed at once)"),
    "REVIEW_DAYS": ("0", "days every invoice stays a draft after its month ends (0 to 6), so that late changes "
                    "land before it is numbered and emailed"),
    "SYNC_RECHECK_SECONDS": ("30,120,600", "delays before re-checking notified users a delta did not show yet"),
    "BRAND_LEGAL_NAME": ("", "the MSP's registered legal name on e-invoices (default: BRAND_NAME)"),
    "BRAND_STREET": ("", "the MSP's street and number (e-invoices)"),
    "BRAND_CITY": ("", "the MSP's city (e-invoices)"),
    "BRAND_POSTCODE": ("", "the MSP's postcode (e-invoices)"),
    "BRAND_COUNTRY": ("", "the MSP's country, ISO 3166-1 alpha-2 (e.g. BE); e-invoices need it"),
    "BRAND_EMAIL": ("", "the MSP's contact email (the seller's electronic address on e-invoices)"),
    "ACCOUNTING_REVENUE_ACCOUNT": ("200", "account code of the revenue in the Xero / QuickBooks exports "
                                   "(plan `accounting` overrides per item)"),
    "ACCOUNTING_TAX_TYPE": ("", "tax rate name of the Xero / QuickBooks exports, as the books spell it "
                            "(e.g. '20% (VAT on Income)'); empty: 'Tax on Sales' when taxed, 'Tax Exempt' when not"),
    "ACCOUNTING_DATE_FORMAT": ("DD/MM/YYYY", "dates in the Xero / QuickBooks exports: DD/MM/YYYY (UK, AU, NZ...), "
                               "MM/DD/YYYY (US) or YYYY-MM-DD, as the organisation's region reads them"),
    "CREDIT_NOTE_NUMBER_FORMAT": ("CN-{year}-{seq:05d}", "credit note number format, a gap-free sequence of its own "
                                  "({prefix}, {year}, {month}, {seq})"),
}


@dataclass(frozen=True)
class Settings:
    values: Mapping[str, str]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if environ is None else environ
        return cls(dict(env))

    def fingerprint(self) -> tuple[tuple[str, str], ...]:
        """The values of the settings Prorata reads (other variables do not matter)."""
        return tuple(sorted((k, v) for k, v in self.values.items()
                            if k in SETTINGS or k.startswith("AzureWebJobsStorage")))

    def get(self, name: str) -> str | None:
        """The setting's value, or its default; names must be declared in SETTINGS."""
        if name not in SETTINGS and not name.startswith("AzureWebJobsStorage"):
            raise KeyError(f"undeclared setting {name}")
        value = self.values.get(name)
        if value is None or value == "":
            return SETTINGS.get(name, (None, ""))[0]
        return value

    def require(self, name: str) -> str:
        value = self.get(name)
        if not value:
            raise MissingSetting(name)
        return value

    def integer(self, name: str) -> int:
        raw = self.require(name)
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"setting {name} must be a whole number, got {raw!r}") from None

    def csv(self, name: str) -> list[str]:
        return [part.strip() for part in (self.get(name) or "").split(",") if part.strip()]


class MissingSetting(RuntimeError):
    def __init__(self, name: str):
        super().__init__(f"setting {name} is not set: {SETTINGS.get(name, (None, 'see README'))[1]}")
        self.name = name


__all__ = ["SETTINGS", "Settings", "MissingSetting"]
