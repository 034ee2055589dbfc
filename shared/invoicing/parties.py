"""The seller (the MSP) and the buyer (a client) as the law names them on an invoice: legal name,
postal address, VAT and company identifiers, electronic address; and how the seller is paid.

Plain frozen data checked on construction; the shape checks are shared by onboarding (which
answers 400 naming the field) and the Brand settings (which name the setting). No I/O.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Mapping

from shared.billing.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from shared.settings import Settings

# A VAT identifier: the ISO 3166-1 alpha-2 prefix of the issuing country (Greece: EL) then 2 to 13
# letters or digits (EN 16931 BT-31/BT-48: "prefixed by a country code"; the longest national
# forms, e.g. GB's 12 and FR's 11 characters, fit). Spaces, dots and dashes are dropped first.
_VAT_ID = re.compile(r"^[A-Z]{2}[0-9A-Z]{2,13}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# The shapes both the onboarding and the Brand settings check: an IBAN is a country, two check
# digits and 11 to 30 letters or digits (the shortest, Norway's, has 15 characters); a BIC is
# bank (4 letters), country (2), location (2) and an optional branch (3).
IBAN_SHAPE = re.compile(r"^[A-Z]{2}[0-9]{2}[0-9A-Z]{11,30}$")
BIC_SHAPE = re.compile(r"^[A-Z]{4}[A-Z]{2}[0-9A-Z]{2}([0-9A-Z]{3})?$")


@lru_cache(maxsize=1)
def _countries() -> frozenset[str]:
    from babel import Locale
    return frozenset(str(code) for code in Locale("en").territories if re.fullmatch(r"[A-Z]{2}", str(code)))


def check_country(value: object, field: str) -> str:
    """An ISO 3166-1 alpha-2 country code (upper case), or InputError naming the field."""
    if not isinstance(value, str) or value.strip().upper() not in _countries():
        raise InputError(f"must be an ISO 3166-1 alpha-2 country code such as 'BE' or 'US', got {value!r}",
                         field=field)
    return value.strip().upper()


def normalize_vat_id(value: object, field: str) -> str:
    """A VAT identifier without spaces, dots or dashes, upper case, or InputError naming the field."""
    if not isinstance(value, str):
        raise InputError(f"must be a string, got {value!r}", field=field)
    text = re.sub(r"[\s.\-]", "", value).upper()
    if not _VAT_ID.match(text):
        raise InputError(f"{value!r} is not a VAT identifier: expected the country prefix then 2 to 13 "
                         "letters or digits, e.g. BE0123456789 or DE123456789", field=field)
    return text


def iban_check_digits_ok(text: str) -> bool:
    """ISO 13616: the number with its first four characters moved to the end, letters read as
    10..35, is 1 modulo 97 (the one rule both the onboarding and the Brand settings check)."""
    return int("".join(str(int(ch, 36)) for ch in text[4:] + text[:4])) % 97 == 1


def check_iban(value: str, field: str) -> str:
    text = re.sub(r"\s", "", value).upper()
    if not IBAN_SHAPE.match(text) or not iban_check_digits_ok(text):
        raise InputError(f"{value!r} is not a valid IBAN", field=field)
    return text


@dataclass(frozen=True)
class PostalAddress:
    street: str = ""
    city: str = ""
    postcode: str = ""
    country: str = ""  # ISO 3166-1 alpha-2; empty only where no e-invoice is made

    def lines(self) -> tuple[str, ...]:
        """The address as printed lines: street, "postcode city", country."""
        town = " ".join(part for part in (self.postcode, self.city) if part)
        return tuple(part for part in (self.street, town, self.country) if part)

    def to_dict(self) -> dict[str, str]:
        return {"street": self.street, "city": self.city, "postcode": self.postcode, "country": self.country}


ADDRESS_FIELDS = ("street", "city", "postcode", "country")


def parse_postal_address(value: object, field: str = "postal_address") -> PostalAddress:
    """{street, city, postcode, country} with every part a string; country checked when given."""
    if value is None:
        return PostalAddress()
    if not isinstance(value, Mapping):
        raise InputError("must be an object with street, city, postcode and country", field=field)
    for name, text in value.items():
        if name not in ADDRESS_FIELDS:
            raise InputError(f"unknown field (known: {', '.join(ADDRESS_FIELDS)})", field=f"{field}.{name}")
        if not isinstance(text, str):
            raise InputError("must be a string", field=f"{field}.{name}")
    country = str(value.get("country") or "").strip()
    return PostalAddress(street=str(value.get("street") or "").strip(), city=str(value.get("city") or "").strip(),
                         postcode=str(value.get("postcode") or "").strip(),
                         country=check_country(country, f"{field}.country") if country else "")


@dataclass(frozen=True)
class Party:
    """A seller or buyer: `name` as trading name, `legal_name` as registered (defaults to name)."""

    name: str
    legal_name: str = ""
    vat_id: str = ""
    company_id: str = ""
    address: PostalAddress = PostalAddress()
    email: str = ""

    @property
    def registered_name(self) -> str:
        return self.legal_name or self.name


@dataclass(frozen=True)
class Payment:
    """How the seller is paid: a bank account (credit transfer), and/or a payment link."""

    iban: str = ""
    bic: str = ""
    bank_name: str = ""
    link: str = ""
    reference_format: str = "{number}"

    def reference(self, number: str) -> str:
        """The reference the client quotes with the payment (PAYMENT_REFERENCE, {number} replaced)."""
        return self.reference_format.replace("{number}", number)


class SettingError(ValueError):
    """A setting with a value that cannot be used; `setting` names it."""

    def __init__(self, setting: str, problem: str):
        self.setting = setting
        super().__init__(f"setting {setting}: {problem}")


def seller_from_settings(settings: "Settings") -> Party:
    """The MSP from the BRAND_* settings; a malformed VAT id, country or email names its setting."""
    def value(name: str) -> str:
        return (settings.get(name) or "").strip()

    def checked(name: str, check: Any) -> str:
        try:
            return check(value(name), name) if value(name) else ""
        except InputError as error:
            raise SettingError(name, error.problem) from None

    email = value("BRAND_EMAIL")
    if email and not _EMAIL.match(email):
        raise SettingError("BRAND_EMAIL", f"not an email address: {email!r}")
    return Party(name=value("BRAND_NAME"), legal_name=value("BRAND_LEGAL_NAME"),
                 vat_id=checked("BRAND_VAT_ID", normalize_vat_id), company_id=value("BRAND_COMPANY_ID"),
                 address=PostalAddress(street=value("BRAND_STREET"), city=value("BRAND_CITY"),
                                       postcode=value("BRAND_POSTCODE"),
                                       country=checked("BRAND_COUNTRY", check_country)),
                 email=email)


def payment_from_settings(settings: "Settings") -> Payment:
    iban = (settings.get("PAYMENT_IBAN") or "").strip()
    bic = re.sub(r"\s", "", settings.get("PAYMENT_BIC") or "").upper()
    try:
        iban = check_iban(iban, "PAYMENT_IBAN") if iban else ""
    except InputError as error:
        raise SettingError("PAYMENT_IBAN", error.problem) from None
    if bic and not BIC_SHAPE.match(bic):
        raise SettingError("PAYMENT_BIC", f"not a BIC (8 or 11 letters and digits): {bic!r}")
    return Payment(iban=iban, bic=bic, bank_name=(settings.get("PAYMENT_BANK_NAME") or "").strip(),
                   link=(settings.get("PAYMENT_LINK") or "").strip(),
                   reference_format=settings.get("PAYMENT_REFERENCE") or "{number}")


@dataclass(frozen=True)
class ClientLegal:
    """A client's legal details as onboarding gives them, and whether it wants e-invoices."""

    legal_name: str = ""
    vat_id: str = ""
    company_id: str = ""
    postal_address: PostalAddress = PostalAddress()
    einvoice: bool = False  # attach the UBL e-invoice to the invoice email

    def to_dict(self) -> dict[str, Any]:
        return {"legal_name": self.legal_name, "vat_id": self.vat_id, "company_id": self.company_id,
                "postal_address": self.postal_address.to_dict(), "einvoice": self.einvoice}

    def buyer(self, name: str, email: str = "") -> Party:
        """The client as the buyer of an invoice (`name`: the plan's name)."""
        return Party(name=name, legal_name=self.legal_name, vat_id=self.vat_id, company_id=self.company_id,
                     address=self.postal_address, email=email)


CLIENT_FIELDS = ("legal_name", "vat_id", "company_id", "postal_address", "einvoice")


def parse_client_legal(data: Mapping[str, Any]) -> ClientLegal:
    """The client fields of an onboarding request (all optional); errors name the field."""
    texts = {}
    for name in ("legal_name", "company_id"):
        value = data.get(name, "")
        if not isinstance(value, str):
            raise InputError("must be a string", field=name)
        texts[name] = value.strip()
    vat_id = data.get("vat_id") or ""
    einvoice = data.get("einvoice", False)
    if not isinstance(einvoice, bool):
        raise InputError(f"must be true or false, got {einvoice!r}", field="einvoice")
    return ClientLegal(legal_name=texts["legal_name"], company_id=texts["company_id"],
                       vat_id=normalize_vat_id(vat_id, "vat_id") if vat_id else "",
                       postal_address=parse_postal_address(data.get("postal_address")), einvoice=einvoice)


def check_einvoice_client(legal: ClientLegal, vat_category: str, minor_digits: int) -> None:
    """What EN 16931 needs of the client before an e-invoice can be made (InputError naming the
    field): the buyer's country (BR-11); for reverse charge, its VAT or company id (BR-AE-02);
    a currency with at most two minor digits (BR-DEC-*: amounts carry two decimals at most)."""
    if not legal.postal_address.country:
        raise InputError("e-invoices need the client's country (EN 16931 BR-11): give postal_address "
                         "{street, city, postcode, country}", field="postal_address.country")
    if vat_category == "AE" and not (legal.vat_id or legal.company_id):
        raise InputError("a reverse-charge e-invoice needs the client's VAT identifier (or company id) "
                         "(EN 16931 BR-AE-02)", field="vat_id")
    if minor_digits > 2:
        raise InputError("EN 16931 allows at most two decimals in amounts (BR-DEC-*), and this plan's "
                         "currency has three: e-invoices cannot carry its invoices exactly", field="einvoice")


def check_einvoice_seller(seller: Party, vat_category: str) -> None:
    """What EN 16931 needs of the MSP (InputError naming the setting): its country (BR-09) and,
    for every VAT category Prorata writes, its VAT identifier (BR-S-02, BR-Z-02, BR-E-02, BR-AE-02)."""
    missing = [name for name, value in (("BRAND_COUNTRY", seller.address.country),
                                        ("BRAND_VAT_ID", seller.vat_id)) if not value]
    if missing:
        raise InputError(f"e-invoices (category {vat_category}) need the MSP's settings "
                         f"{' and '.join(missing)} (EN 16931 BR-09, BR-{vat_category}-02); set them first",
                         field="einvoice")
