"""CSV files that spreadsheets open safely: RFC 4180 quoting, CRLF line ends, and no cell that a
spreadsheet would run as a formula.

Rule: a text cell starting with = + - @ (or a tab or CR) gets a leading apostrophe. Names and
SKUs come from client tenants, and "=HYPERLINK(...)" is a valid display name.
"""
from __future__ import annotations

import csv
import io
from typing import Iterable, Sequence

_FORMULA_STARTS = frozenset("=+-@\t\r")


def text(value: str) -> str:
    """A text cell that a spreadsheet will not run as a formula."""
    return "'" + value if value[:1] in _FORMULA_STARTS else value


def csv_lines(rows: Iterable[Sequence[str | int]]) -> bytes:
    """Rows as UTF-8 CSV lines, each ending CRLF: a file is its header's line and its rows' lines,
    so lines written apart (a document's, ahead of its file) join into the same bytes."""
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue().encode("utf-8")


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence[str | int]], *, byte_order_mark: bool) -> bytes:
    """UTF-8 CSV (with a byte-order mark if asked: spreadsheets then read accents right; Xero
    would take one for part of its first column's name)."""
    return (b"\xef\xbb\xbf" if byte_order_mark else b"") + csv_lines([header, *rows])
