"""Invoicing: rendering invoices (HTML, PDF) and invoice emails; the accounting exports are in
`exports/`, the e-invoices in `einvoice/`.

Names are loaded on first use, so that importing one submodule of this package (numbering,
mail, ...) does not import jinja2 and Babel; xhtml2pdf is imported only by `render_pdf` itself.
"""
from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Brand": "shared.invoicing.document",
    "BrandError": "shared.invoicing.document",
    "InvoiceDocument": "shared.invoicing.document",
    "render_html": "shared.invoicing.render",
    "render_pdf": "shared.invoicing.render",
    "render_email": "shared.invoicing.render",
    "item_label": "shared.invoicing.render",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from shared.invoicing.document import Brand, BrandError, InvoiceDocument
    from shared.invoicing.render import item_label, render_email, render_html, render_pdf


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
