"""Invoices as HTML, PDF and email: pure functions of an InvoiceDocument and a Brand.

Templates are versioned files in `templates/` (the document's `template_version` picks the
invoice template), rendered by jinja2 with autoescaping on. Every amount is formatted by
Babel for the document's locale and the invoice's currency; dates are Babel's "long" format.
The PDF is the HTML converted by xhtml2pdf, imported only inside `render_pdf` (it is slow to
import). Nothing here reads the clock or the environment; the only I/O is reading the templates,
a fallback font when a name needs one, and the brand's logo when it is an https URL rather
than a data: URL.

Every word of the invoice and the email comes from the gettext catalog of the client's language
(`i18n.py`); item names from the plan or the product catalog (`products.py`). Long names are
wrapped here, with the PDF font's metrics, into lines that fit their column, so that a wrapped
item name moves its days, price and amount down with it (they are stacked in sibling cells).
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any, Callable, Iterator, Sequence

from shared.billing.holdings import CHARGE_ITEM, USER_ITEM
from shared.billing.invoice import InvoiceLine
from shared.billing.plan import Plan
from shared.invoicing.document import Brand, InvoiceDocument
from shared.invoicing.i18n import translations
from shared.invoicing.products import DEFAULT_USER_ITEM_NAME, item_name, product_name

#: The per-user fee's name when the plan gives none (English; translated per client).
USER_ITEM_LABEL = DEFAULT_USER_ITEM_NAME

#: Currency symbols that several currencies share ($: USD, AUD, CAD, NZD...; kr: SEK, NOK, DKK,
#: ISK; ¥: JPY, CNY; R: ZAR; Rs: INR, PKR, LKR). Amounts in such a currency show its ISO code
#: instead ("AUD 1,917.30"), so a reader never has to guess which dollar is meant.
AMBIGUOUS_SYMBOLS = frozenset({"$", "kr", "kr.", "Kr", "Kr.", "¥", "￥", "R", "Rs", "₨"})

#: Invoice lines per table of the "Charges by user" section. Each user is one row, the user's
#: items stacked in its cells, so a user is never split by a page break; each table has a
#: <thead>, which xhtml2pdf repeats on every page the table crosses. xhtml2pdf splits a long
#: table at each page in time that grows with the rows left, so one table of 2,000 lines takes
#: about 12 s where tables of 25 to 150 lines take 7 to 9 s; up to 1,000 lines the size makes
#: no measurable difference. A new table starts with its header mid-page, which looks odd, so
#: the tables are large: most invoices are one table. A user is split over two tables only if
#: the user alone has more lines than this (the rest is marked "continued").
ROWS_PER_TABLE = 150

_TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")

#: Territories that print on US Letter; everyone else gets A4.
_LETTER_TERRITORIES = frozenset({"US", "CA", "MX", "PH", "CL", "CO", "VE", "GT", "CR", "PR", "SV",
                                 "DO", "PA", "NI", "HN", "BZ"})

#: ReportLab's built-in (not embedded) CJK faces, by language (and script for Chinese).
_CJK_FACES = {"ja": "HeiseiKakuGo-W5", "ko": "HYGothic-Medium", "zh_Hant": "MSung-Light",
              "zh": "STSong-Light"}

#: TrueType faces (regular, bold) tried, in order, for text Helvetica cannot draw: Cyrillic,
#: Greek, Central European letters (ě, ł) ... The first pair whose regular face exists is used.
_UNICODE_FONT_CANDIDATES = (
    ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"),
    ("/usr/share/fonts/dejavu/DejaVuSans.ttf", "/usr/share/fonts/dejavu/DejaVuSans-Bold.ttf"),
    ("/usr/share/fonts/TTF/DejaVuSans.ttf", "/usr/share/fonts/TTF/DejaVuSans-Bold.ttf"),
)


def item_label(item: str, plan: Plan | None = None) -> str:
    """An item's name in English: the plan's name for it, else the product catalog's, else the
    key (see products.item_name)."""
    if item == CHARGE_ITEM:  # shared/billing/charges.py: a one-off charge or credit, named by its description
        return "One-off"
    if plan is not None:
        return item_name(plan, item)
    if item == USER_ITEM:
        return USER_ITEM_LABEL
    return product_name(item) or item


def display_address(user_principal_name: str, mail: str = "") -> str:
    """The address a person reads: `mail` when known, else the UPN, except that a guest's UPN
    (`chloe_partner.example#EXT#@tenant.example`, Entra ID's form of an invited address) is
    decoded back to the invited address `chloe@partner.example`: the part before `#EXT#` is the
    address with its `@` written as the last `_` (a domain name has no `_`)."""
    if mail:
        return mail
    marker = user_principal_name.upper().find("#EXT#")
    if marker < 0:
        return user_principal_name
    local = user_principal_name[:marker]
    cut = local.rfind("_")
    return local if cut <= 0 else f"{local[:cut]}@{local[cut + 1:]}"


# --------------------------------------------------------------------------- formatting

class Formatter:
    """Babel formatting bound to one document's locale and currency. An invoice repeats a few
    amounts, prices and day counts on many lines: each is formatted once per document (babel's
    formatting is most of the HTML's cost)."""

    def __init__(self, document: InvoiceDocument):
        from babel import dates, numbers
        self._dates, self._numbers = dates, numbers
        self.locale = document.babel_locale
        self.currency = document.invoice.currency
        self._done: dict[tuple[str, str, str], str] = {}

    def _once(self, kind: str, value: int | Decimal, make: Callable[[Any], str]) -> str:
        key = (kind, type(value).__name__, str(value))  # str keeps a Decimal's exponent (45.00 vs 45)
        text = self._done.get(key)
        if text is None:
            text = self._done[key] = make(value)
        return text

    @staticmethod
    def _clean(text: str) -> str:
        # CLDR uses U+202F (narrow no-break space) in some locales (fr, ...); the PDF's base
        # font has no glyph for it, while U+00A0 is in every font and wraps the same way.
        return text.replace("\u202f", "\u00a0")

    def _currency_format(self) -> str | None:
        """The locale's currency pattern with the ISO code for the symbol when the symbol is
        ambiguous (None: the locale's own format)."""
        symbol = self._numbers.get_currency_symbol(self.currency, locale=self.locale)
        if symbol not in AMBIGUOUS_SYMBOLS:
            return None
        pattern = self.locale.currency_formats["standard"].pattern
        return pattern.replace("\u00a4", "\u00a4\u00a4")

    def _with_code(self, text: str) -> str:
        # The ISO code next to a digit gets a no-break space ("AUD 1,917.30", "1 917,30 SEK").
        code = self.currency
        if text.startswith(code) and not text[len(code):len(code) + 1].isspace():
            text = f"{code}\u00a0{text[len(code):]}"
        elif text.endswith(code) and not text[-len(code) - 1:-len(code)].isspace():
            text = f"{text[:-len(code)]}\u00a0{code}"
        return text

    def money(self, amount: Decimal) -> str:
        return self._once("money", amount, self._money)

    def _money(self, amount: Decimal) -> str:
        pattern = self._currency_format()
        text = self._numbers.format_currency(amount, self.currency, pattern, locale=self.locale)
        return self._clean(self._with_code(text) if pattern else text)

    def price(self, amount: Decimal) -> str:
        """A unit price: the currency's minor digits, more only where the price has them."""
        return self._once("price", amount, self._price)

    def _price(self, amount: Decimal) -> str:
        pattern = self._currency_format()
        text = self._numbers.format_currency(amount, self.currency, pattern, locale=self.locale,
                                             decimal_quantization=False)
        return self._clean(self._with_code(text) if pattern else text)

    def percent(self, rate: Decimal) -> str:
        return self._clean(self._numbers.format_percent(rate, locale=self.locale,
                                                        decimal_quantization=False))

    def number(self, value: int | Decimal) -> str:
        return self._once("number", value, self._number)

    def _number(self, value: int | Decimal) -> str:
        return self._clean(self._numbers.format_decimal(value, locale=self.locale))

    def date(self, day) -> str:
        return self._clean(self._dates.format_date(day, "long", locale=self.locale))

    def month(self, day) -> str:
        """The month of `day` as a title ("October 2026", "Oktober 2026", "2026年10月")."""
        return self._clean(self._dates.format_skeleton("yMMMM", day, locale=self.locale))

    def date_range(self, first, last) -> str:
        return self._clean(self._dates.format_interval(first, last, "yMMMd", locale=self.locale))


# --------------------------------------------------------------------------- wrapping

#: Printable width (points) of the page between the margins of the invoice template (1.6 cm).
_PAGE_TEXT_WIDTH = {"a4": 595.28 - 2 * 45.35, "letter": 612.0 - 2 * 45.35}
#: Column widths (fractions of the text width) of the template's tables, and the room a cell's
#: padding and a safety margin take from each (points).
NO_DAYS = "\u2014"  # the days cell of a one-off charge or credit (an em dash: it has no days)
LINE_COLUMNS = {"user": 0.33, "item": 0.31, "days": 0.09, "unit_price": 0.13, "amount": 0.14}
SUMMARY_COLUMNS = {"item": 0.36, "unit_price": 0.16, "users": 0.12, "days": 0.16, "amount": 0.20}
_CELL_SLACK = 16.0


@lru_cache(maxsize=4096)
def _char_width(char: str, font: str, size: float) -> float:
    if not _latin1_drawable(char):
        return size  # a fallback face's glyph: assume a full em (wider than any Latin glyph)
    from reportlab.pdfbase.pdfmetrics import stringWidth
    return stringWidth(char, font, size)


@lru_cache(maxsize=8192)
def _text_width(text: str, font: str, size: float) -> float:
    return sum(_char_width(char, font, size) for char in text)


def wrap_text(text: str, width: float, font: str = "Helvetica", size: float = 9.0) -> list[str]:
    """`text` as lines that each fit `width` points in the font: broken at spaces, and a word
    longer than a line is broken after a `_`, `-`, `.` or `@` where one fits, else anywhere."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if _text_width(candidate, font, size) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
            current = ""
        while _text_width(word, font, size) > width:
            head = _longest_prefix(word, width, font, size)
            lines.append(head)
            word = word[len(head):]
        current = word
    if current or not lines:
        lines.append(current)
    return lines


def _longest_prefix(word: str, width: float, font: str, size: float) -> str:
    fits = 1
    while fits < len(word) and _text_width(word[:fits + 1], font, size) <= width:
        fits += 1
    for cut in range(fits, max(fits // 2, 1) - 1, -1):  # prefer a break after punctuation
        if word[cut - 1] in "_-.@/":
            return word[:cut]
    return word[:fits]


def _wrapped(text: str, column: float, page_size: str, font: str = "Helvetica", size: float = 9.0):
    """(HTML with <br/> between the lines, number of lines) of `text` in a column."""
    from markupsafe import Markup, escape
    width = column * _PAGE_TEXT_WIDTH[page_size] - _CELL_SLACK
    lines = wrap_text(text, width, font, size)
    return Markup("<br/>").join(escape(line) for line in lines), len(lines)


# --------------------------------------------------------------------------- view model

@dataclass(frozen=True)
class _Row:
    item: str
    days: str
    unit_price: str
    amount: str
    pad: int = 0  # extra line breaks after the value: the item name above took that many more lines


@dataclass(frozen=True)
class _UserBlock:
    display_name: str
    user_principal_name: str
    rows: tuple[_Row, ...]
    shade: bool
    continued: bool = False


def _user_runs(lines: Sequence[InvoiceLine]) -> Iterator[list[InvoiceLine]]:
    """The lines, one list per user (the core sorts each user's lines together)."""
    run: list[InvoiceLine] = []
    for line in lines:
        if run and line.user_id != run[0].user_id:
            yield run
            run = []
        run.append(line)
    if run:
        yield run


def _chunks(blocks: list[_UserBlock], size: int) -> list[list[_UserBlock]]:
    """User blocks packed into tables of about `size` rows, never splitting a user who fits."""
    tables: list[list[_UserBlock]] = []
    current: list[_UserBlock] = []
    rows = 0
    for block in blocks:
        pending = block
        while True:
            room = size - rows
            if len(pending.rows) <= room or (not current and len(pending.rows) <= size):
                current.append(pending)
                rows += len(pending.rows)
                break
            if len(pending.rows) <= size:  # fits a fresh table: start one
                tables.append(current)
                current, rows = [], 0
                continue
            # A user with more lines than a table holds: fill this table, carry on in the next.
            take = max(room, 1) if current else size
            head, tail = pending.rows[:take], pending.rows[take:]
            current.append(_UserBlock(pending.display_name, pending.user_principal_name, head,
                                      pending.shade, pending.continued))
            tables.append(current)
            current, rows = [], 0
            pending = _UserBlock(pending.display_name, pending.user_principal_name, tail,
                                 pending.shade, True)
        if rows >= size:
            tables.append(current)
            current, rows = [], 0
    if current:
        tables.append(current)
    return tables


def _iban(value: str) -> str:
    """An IBAN in groups of four, as printed on paper."""
    compact = value.replace(" ", "")
    return " ".join(compact[i:i + 4] for i in range(0, len(compact), 4))


def _view(document: InvoiceDocument, brand: Brand) -> dict[str, Any]:
    invoice = document.invoice
    plan = invoice.plan
    fmt = Formatter(document)
    locale = document.babel_locale
    page_size = "letter" if locale.territory in _LETTER_TERRITORIES else "a4"
    gettext = translations(locale.language).gettext
    period = invoice.period
    days_in_period = period.days

    names: dict[tuple[str, float], tuple[Any, int]] = {}

    def named(item: str, column: float) -> tuple[Any, int]:
        key = (item, column)
        if key not in names:
            names[key] = _wrapped(item_name(plan, item, gettext), column, page_size)
        return names[key]

    blocks: list[_UserBlock] = []
    for index, run in enumerate(_user_runs(invoice.lines)):
        rows = []
        for line in run:
            name_html, height = named(line.item, LINE_COLUMNS["item"])
            # a one-off charge or credit is not held for days: its days cell shows a dash, not 0/30
            days = NO_DAYS if line.item == CHARGE_ITEM else f"{fmt.number(line.days)}/{fmt.number(days_in_period)}"
            rows.append(_Row(item=name_html, days=days,
                             unit_price=fmt.price(line.unit_price), amount=fmt.money(line.amount),
                             pad=height - 1))
        person = run[0]
        who, _ = _wrapped(person.display_name, LINE_COLUMNS["user"], page_size, "Helvetica-Bold")
        address, _ = _wrapped(display_address(person.user_principal_name), LINE_COLUMNS["user"],
                              page_size, size=7.5)
        blocks.append(_UserBlock(who, address, tuple(rows), shade=index % 2 == 1))

    # Per-item subtotals: users, user-days and the sum of the (rounded) lines per item, `user`
    # first, then SKUs A→Z; the unit price when the item has one price all period.
    summary: dict[str, list] = {}
    for line in invoice.lines:
        entry = summary.setdefault(line.item, [set(), 0, Decimal(0), {line.unit_price}])
        entry[0].add(line.user_id)
        entry[1] += line.days
        entry[2] += line.amount
        entry[3].add(line.unit_price)
    items = sorted(summary, key=lambda item: (item != USER_ITEM, item))
    item_rows = [{"item": named(item, SUMMARY_COLUMNS["item"])[0],
                  "unit_price": fmt.price(next(iter(summary[item][3]))) if len(summary[item][3]) == 1 else "",
                  "users": fmt.number(len(summary[item][0])),
                  "days": NO_DAYS if item == CHARGE_ITEM else fmt.number(summary[item][1]),
                  "amount": fmt.money(summary[item][2])}
                 for item in items]

    payment = brand.payment
    return {
        "doc": document,
        "brand": brand,
        "lang": locale.language,
        "page_size": page_size,
        "number": document.number,
        "issued_on": fmt.date(document.issued_on),
        "due_on": fmt.date(document.due_on),
        "period_label": fmt.month(period.first_day),
        "period_range": fmt.date_range(period.first_day, period.last_day),
        "days_in_period": fmt.number(days_in_period),
        "days_count": days_in_period,
        "client_name": document.client_name,
        "client_address": document.client_address,
        "purchase_order": plan.purchase_order,
        "currency": invoice.currency,
        "tables": _chunks(blocks, ROWS_PER_TABLE),
        "line_count": len(invoice.lines),
        "prorated": plan.proration == "daily",
        "user_count": fmt.number(invoice.billable_users),
        "user_total": invoice.billable_users,
        "item_rows": item_rows,
        "subtotal": fmt.money(invoice.subtotal),
        "tax_label": plan.tax_label or gettext("Tax"),
        "tax_rate": fmt.percent(plan.tax_rate),
        "has_tax": plan.tax_rate != 0,
        "tax": fmt.money(invoice.tax),
        "total": fmt.money(invoice.total),
        "payment": payment,
        "iban": _iban(payment.iban) if payment.iban else "",
        "payment_reference": payment.reference_for(document.number),
        "fonts": _font_stack(document, brand),
    }


# --------------------------------------------------------------------------- fonts

def _document_text(document: InvoiceDocument, brand: Brand) -> str:
    invoice = document.invoice
    plan = invoice.plan
    parts = [brand.name, *brand.address, document.client_name, *document.client_address,
             document.number, brand.vat_id, brand.company_id, brand.payment.bank_name,
             plan.tax_label, plan.purchase_order, plan.user_item_name, *plan.item_names.values()]
    for line in invoice.lines:
        parts += (line.display_name, display_address(line.user_principal_name), item_name(plan, line.item))
    fmt = Formatter(document)
    parts += (fmt.money(invoice.total), fmt.date(document.issued_on), fmt.date(document.due_on),
              fmt.month(invoice.period.first_day), fmt.date_range(invoice.period.first_day,
                                                                   invoice.period.last_day),
              fmt.percent(invoice.plan.tax_rate))
    return "".join(parts)


def _is_cjk(char: str) -> bool:
    code = ord(char)
    return (0x2E80 <= code <= 0x9FFF or 0xAC00 <= code <= 0xD7AF or 0xF900 <= code <= 0xFAFF
            or 0xFF00 <= code <= 0xFFEF or 0x20000 <= code <= 0x2FA1F)


@lru_cache(maxsize=1)
def _unicode_fonts() -> tuple[str, str | None] | None:
    """(regular, bold or None) paths of the fallback TrueType face, or None if none is installed."""
    for regular, bold in _UNICODE_FONT_CANDIDATES:
        if os.path.exists(regular):
            return regular, bold if os.path.exists(bold) else None
    return None


def _font_stack(document: InvoiceDocument, brand: Brand) -> dict[str, Any]:
    """The font families of the document: Helvetica (built into every PDF reader, fast), then
    only as much fallback as the text needs: a CJK face for Chinese, Japanese and Korean, and an
    embedded TrueType face (DejaVu Sans, where installed) for other scripts. xhtml2pdf draws
    each character with the first family that has a glyph for it."""
    families = ["Helvetica"]
    faces = None
    text = _document_text(document, brand)
    others = {ch for ch in text if not _latin1_drawable(ch)}
    cjk = {ch for ch in others if _is_cjk(ch)}
    if others - cjk:
        faces = _unicode_fonts()
        if faces:
            families.append("ProrataUnicode")
    locale = document.babel_locale
    if cjk or locale.language in ("ja", "ko", "zh"):
        if locale.language == "zh":
            key = "zh_Hant" if (locale.script == "Hant" or locale.territory in ("TW", "HK", "MO")) else "zh"
        elif locale.language in ("ja", "ko"):
            key = locale.language
        else:  # CJK names on a western invoice: guess from the characters
            key = "ko" if any(0xAC00 <= ord(ch) <= 0xD7AF for ch in cjk) else "ja"
        families.append(_CJK_FACES[key])
    families += ["Arial", "sans-serif"]  # for browsers; xhtml2pdf maps both to Helvetica
    css = ", ".join(f'"{name}"' if " " in name else name for name in families)
    return {"css": css, "unicode_regular": faces[0] if faces else None,
            "unicode_bold": faces[1] if faces else None}


@lru_cache(maxsize=4096)
def _latin1_drawable(char: str) -> bool:
    """Whether Helvetica (WinAnsi encoding) has a glyph for `char`."""
    if char.isspace():
        return True
    try:
        char.encode("cp1252")
        return True
    except UnicodeEncodeError:
        return False


# --------------------------------------------------------------------------- templates

@lru_cache(maxsize=8)
def _environment(language: str = "en"):
    """The jinja2 environment of a language, built once on first use: templates are files next
    to this module, their words from the language's gettext catalog (jinja2's i18n extension,
    new-style: `_("Due date")`, `_("%(n)s days", n=...)`, `ngettext(...)`). One environment per
    language, so renders in several threads never share a switched catalog."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATES),
        # HTML templates are autoescaped; the plain-text subject is not HTML and is not escaped.
        autoescape=lambda name: not (name or "").endswith(".txt"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]
    return env


def render_html(document: InvoiceDocument, brand: Brand) -> str:
    """The invoice as an HTML page (the PDF's source; also fine in a browser)."""
    language = document.babel_locale.language
    template = _environment(language).get_template(f"{document.template_version}.html")
    return template.render(**_view(document, brand))


def render_pdf(document: InvoiceDocument, brand: Brand) -> bytes:
    """The invoice as a PDF (xhtml2pdf). Raises RuntimeError if xhtml2pdf reports an error.

    The only resources the render may read are the templates' directory, the fallback font and
    the brand's https logo host (an https logo is fetched at render time, at most 10 s; a
    data: URL needs no fetch and is the better choice for a Function App)."""
    return html_to_pdf(render_html(document, brand), brand.logo_url, document.number)


def html_to_pdf(html: str, logo_url: str, number: str) -> bytes:
    """The PDF of an invoice's HTML (render_html): the slow half of render_pdf, on plain text
    arguments so that a worker process can run it (shared/invoicing/pdf_pool.py)."""
    from xhtml2pdf import pisa  # slow import (about 0.5 s): only where a PDF is made

    from shared.invoicing.pdf_single_pass import single_pass

    out = io.BytesIO()
    with single_pass():  # "Page N of M" without a second layout pass
        status = pisa.CreatePDF(html, dest=out, encoding="utf-8", resource_policy=_resource_policy(logo_url))
    if status.err:
        raise RuntimeError(f"invoice {number}: xhtml2pdf failed with {status.err} error(s)")
    return out.getvalue()


def _resource_policy(logo_url: str):
    from urllib.parse import urlsplit

    from xhtml2pdf.config.resources import ResourceAccessPolicy

    fonts = _unicode_fonts()
    logo_host = urlsplit(logo_url).hostname if logo_url.startswith("https://") else None
    return ResourceAccessPolicy.server(
        base_dir=_TEMPLATES,
        extra_roots=tuple({os.path.dirname(path) for path in fonts if path}) if fonts else (),
        allow_remote=logo_host is not None,
        allowed_hosts=frozenset({logo_host.lower()}) if logo_host else None,
        max_resource_bytes=5 * 1024 * 1024,
        max_fetch_seconds=10,
        max_render_seconds=600,           # a 2,000-line invoice takes about 8 s
        max_document_bytes=200 * 1024 * 1024,
    )


def render_email(document: InvoiceDocument, brand: Brand) -> tuple[str, str]:
    """(subject, HTML body) of the email that carries the invoice PDF."""
    language = document.babel_locale.language
    env = _environment(language)
    fmt = Formatter(document)
    payment = brand.payment
    context = {
        "brand": brand, "doc": document, "number": document.number,
        "client_name": document.client_name,
        "period_label": fmt.month(document.invoice.period.first_day),
        "total": fmt.money(document.invoice.total), "due_on": fmt.date(document.due_on),
        "issued_on": fmt.date(document.issued_on), "lang": language,
        "purchase_order": document.invoice.plan.purchase_order,
        "payment": payment, "iban": _iban(payment.iban) if payment.iban else "",
        "payment_reference": payment.reference_for(document.number),
    }
    subject = env.get_template("email_v1_subject.txt").render(**context)
    subject = " ".join(subject.split())  # one line, whatever the template's whitespace
    body = env.get_template("email_v1_body.html").render(**context)
    return subject, body

