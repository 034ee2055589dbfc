"""What an invoice is rendered from: the MSP's brand and the invoice document (core invoice +
number, dates, client, locale). Plain frozen data, checked on construction; no I/O, no clock."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import TYPE_CHECKING

from babel import Locale, UnknownLocaleError

from shared.billing.invoice import Invoice
from shared.invoicing.parties import BIC_SHAPE, IBAN_SHAPE, iban_check_digits_ok

if TYPE_CHECKING:  # pragma: no cover
    from shared.invoicing.parties import Party
    from shared.settings import Settings

TEMPLATE_VERSIONS = ("invoice_v1",)
DOCUMENT_TITLES = {"invoice": "Invoice", "supplementary_invoice": "Supplementary invoice", "credit_note": "Credit note"}

_COLOUR = re.compile(r"^#(?:[0-9A-Fa-f]{3}|[0-9A-Fa-f]{6})$")


class BrandError(ValueError):
    """A brand value that cannot be used; `setting` names the app setting (or field) at fault."""

    def __init__(self, setting: str, problem: str):
        self.setting = setting
        super().__init__(f"setting {setting}: {problem}")


def _colour(value: str, setting: str) -> str:
    """A colour as #RRGGBB (upper case); #RGB is expanded."""
    text = (value or "").strip()
    if not _COLOUR.match(text):
        raise BrandError(setting, f"expected a colour as #RGB or #RRGGBB (such as #1F4E79), got {value!r}")
    if len(text) == 4:
        text = "#" + "".join(ch * 2 for ch in text[1:])
    return text.upper()


def _logo_url(value: str, setting: str) -> str:
    text = (value or "").strip()
    if text and not (text.startswith("https://") or text.lower().startswith("data:image/")):
        raise BrandError(setting, f"the logo must be an https:// or data:image/ URL, got {value[:60]!r}")
    return text


_REFERENCE_FIELDS = ("number",)


def _iban(value: str, setting: str) -> str:
    """An IBAN without spaces, upper case, its check digits verified (ISO 13616: the number
    with its first four characters moved to the end, letters as 10..35, mod 97 is 1)."""
    text = "".join((value or "").split()).upper()
    if not text:
        return ""
    if not IBAN_SHAPE.match(text):
        raise BrandError(setting, f"expected an IBAN such as DE89 3704 0044 0532 0130 00, got {value!r}")
    if not iban_check_digits_ok(text):
        raise BrandError(setting, f"the IBAN {value!r} has wrong check digits (a typing error?)")
    return text


def _bic(value: str, setting: str) -> str:
    text = "".join((value or "").split()).upper()
    if text and not BIC_SHAPE.match(text):
        raise BrandError(setting, f"expected a BIC of 8 or 11 characters such as COBADEFFXXX, got {value!r}")
    return text


def _reference_format(value: str, setting: str) -> str:
    text = (value or "").strip() or "{number}"
    try:
        text.format(number="INV-1")
    except (KeyError, IndexError, ValueError) as error:
        raise BrandError(setting, f"{text!r} is not a reference format: use {{number}} for the invoice "
                                  f"number, such as 'Invoice {{number}}' ({error})") from None
    return text


@dataclass(frozen=True)
class PaymentDetails:
    """How a client pays the MSP: a bank transfer (IBAN, BIC, bank) and/or a payment link, and
    the reference to quote (a format with {number}, the invoice number)."""

    iban: str = ""
    bic: str = ""
    bank_name: str = ""
    link: str = ""
    reference: str = "{number}"

    def __post_init__(self) -> None:
        object.__setattr__(self, "iban", _iban(self.iban, "PAYMENT_IBAN"))
        object.__setattr__(self, "bic", _bic(self.bic, "PAYMENT_BIC"))
        object.__setattr__(self, "bank_name", " ".join((self.bank_name or "").split()))
        link = (self.link or "").strip()
        if link and not link.startswith("https://"):
            raise BrandError("PAYMENT_LINK", f"the payment link must be an https:// URL, got {link[:60]!r}")
        object.__setattr__(self, "link", link)
        object.__setattr__(self, "reference", _reference_format(self.reference, "PAYMENT_REFERENCE"))

    @property
    def by_transfer(self) -> bool:
        return bool(self.iban)

    @property
    def any(self) -> bool:
        return bool(self.iban or self.link)

    def reference_for(self, number: str) -> str:
        return self.reference.format(number=number)


@dataclass(frozen=True)
class Brand:
    """The MSP as its invoices show it."""

    name: str
    address: tuple[str, ...] = ()
    logo_url: str = ""
    primary_color: str = "#1F4E79"
    accent_color: str = "#E8EEF4"
    vat_id: str = ""           # BRAND_VAT_ID: the MSP's tax registration (VAT, GST, ABN...)
    company_id: str = ""       # BRAND_COMPANY_ID: the MSP's company registration number
    payment: PaymentDetails = PaymentDetails()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise BrandError("BRAND_NAME", "the MSP's name must not be empty")
        object.__setattr__(self, "address", tuple(line.strip() for line in self.address if line.strip()))
        object.__setattr__(self, "logo_url", _logo_url(self.logo_url, "BRAND_LOGO_URL"))
        object.__setattr__(self, "primary_color", _colour(self.primary_color, "BRAND_PRIMARY_COLOR"))
        object.__setattr__(self, "accent_color", _colour(self.accent_color, "BRAND_ACCENT_COLOR"))

    @classmethod
    def from_settings(cls, settings: "Settings") -> "Brand":
        """The brand from the BRAND_* app settings (BRAND_ADDRESS: lines separated by `|`)."""
        address = settings.get("BRAND_ADDRESS") or ""
        return cls(
            name=(settings.get("BRAND_NAME") or "").strip(),
            address=tuple(address.split("|")),
            logo_url=settings.get("BRAND_LOGO_URL") or "",
            primary_color=settings.get("BRAND_PRIMARY_COLOR") or "",
            accent_color=settings.get("BRAND_ACCENT_COLOR") or "",
            vat_id=" ".join((settings.get("BRAND_VAT_ID") or "").split()),
            company_id=" ".join((settings.get("BRAND_COMPANY_ID") or "").split()),
            payment=PaymentDetails(
                iban=settings.get("PAYMENT_IBAN") or "", bic=settings.get("PAYMENT_BIC") or "",
                bank_name=settings.get("PAYMENT_BANK_NAME") or "", link=settings.get("PAYMENT_LINK") or "",
                reference=settings.get("PAYMENT_REFERENCE") or "{number}"),
        )

    @property
    def on_primary_color(self) -> str:
        """Text colour readable on the primary colour: white on dark, near-black on light."""
        return "#FFFFFF" if _luminance(self.primary_color) < 0.45 else "#1A1A1A"

    @property
    def heading_color(self) -> str:
        """The primary colour when it reads on white paper, else a dark grey."""
        return self.primary_color if _luminance(self.primary_color) < 0.6 else "#333333"


def _luminance(colour: str) -> float:
    """Relative luminance (WCAG) of #RRGGBB, 0 (black) to 1 (white)."""
    def channel(hex_pair: str) -> float:
        c = int(hex_pair, 16) / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (channel(colour[i:i + 2]) for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


@dataclass(frozen=True)
class InvoiceDocument:
    """One client's invoice as sent: the core invoice plus what the run decided around it."""

    invoice: Invoice
    number: str
    issued_on: date
    due_on: date
    client_name: str
    client_address: tuple[str, ...] = ()
    locale: str = "en_US"
    template_version: str = "invoice_v1"
    client_email: str = ""  # the billing contact, if known (the CSV's EmailAddress)
    buyer: "Party | None" = None  # the client's legal details (e-invoices, accounting exports)
    kind: str = "invoice"  # or "supplementary_invoice", "credit_note" (shared/billing/corrections.py)
    corrects: str = ""     # a correction: the number of the invoice it corrects

    def __post_init__(self) -> None:
        if not isinstance(self.number, str) or not self.number.strip():
            raise ValueError("invoice document: the invoice number must not be empty")
        if not isinstance(self.issued_on, date) or not isinstance(self.due_on, date):
            raise ValueError("invoice document: issued_on and due_on must be dates")
        if self.due_on < self.issued_on:
            raise ValueError(f"invoice document {self.number}: due date {self.due_on} is before "
                             f"the invoice date {self.issued_on}")
        if self.template_version not in TEMPLATE_VERSIONS:
            raise ValueError(f"invoice document {self.number}: unknown template_version "
                             f"{self.template_version!r} (known: {', '.join(TEMPLATE_VERSIONS)})")
        object.__setattr__(self, "client_address",
                           tuple(line.strip() for line in self.client_address if line and line.strip()))
        _ = self.babel_locale  # fails early on an unknown locale

    @property
    def title(self) -> str:
        """The document's name as printed: Invoice, Supplementary invoice or Credit note."""
        return DOCUMENT_TITLES.get(self.kind, "Invoice")

    @property
    def babel_locale(self) -> "Locale":
        """The Babel Locale of `locale` ("en_US", "de-DE" and "ja_JP" all work)."""
        try:
            return _parse_locale(self.locale)
        except (UnknownLocaleError, ValueError, TypeError, AttributeError):
            raise ValueError(f"invoice document {self.number}: unknown locale {self.locale!r} "
                             "(expected a name such as 'en_US' or 'de_DE')") from None


@lru_cache(maxsize=64)
def _parse_locale(name: str) -> Locale:
    return Locale.parse(name.replace("-", "_"))
