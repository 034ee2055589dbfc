"""Invoice numbers as INVOICE_NUMBER_FORMAT writes them (the gap-free sequence itself is kept
by shared/storage/numbering.py)."""
from __future__ import annotations

from datetime import date


class NumberFormatError(ValueError):
    pass


def format_number(template: str, prefix: str, issued_on: date, seq: int) -> str:
    """The invoice number from INVOICE_NUMBER_FORMAT: {prefix}, {year}, {month}, {seq}."""
    try:
        return template.format(prefix=prefix, year=issued_on.year, month=f"{issued_on.month:02d}", seq=seq)
    except (KeyError, IndexError, ValueError) as error:
        raise NumberFormatError(f"setting INVOICE_NUMBER_FORMAT {template!r} cannot be used ({error!r}); "
                                "it may use {prefix}, {year}, {month} and {seq}, e.g. {prefix}{year}-{seq:05d}") from None


def check_format(template: str, prefix: str) -> None:
    """Fails early on a format that cannot number invoices or would repeat numbers."""
    first, second = (format_number(template, prefix, date(2026, 1, 1), n) for n in (1, 2))
    if first == second:
        raise NumberFormatError(f"setting INVOICE_NUMBER_FORMAT {template!r} must contain {{seq}}")
