"""PDF rendering in worker processes, one per core of the machine.

xhtml2pdf is pure Python: renders in threads share one GIL, so a close that renders four
invoices at once renders them one after the other. The close renders each invoice's HTML here
(jinja2, milliseconds) and hands the text to a pool of worker processes for the PDF (the
seconds), so the PDFs use every core while this process numbers, stores and emails the others.
The workers are started on first use (not at import: the webhook path never pays for them),
each with xhtml2pdf imported once, and kept for the process.
"""
from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from shared.invoicing.document import Brand, InvoiceDocument

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None


def cores() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _warm() -> None:
    """A worker's start: the slow import once, before its first invoice."""
    import xhtml2pdf.pisa  # noqa: F401


def pool() -> ProcessPoolExecutor:
    """The process's PDF workers (one per core), started on first use. Workers are spawned, not
    forked: the parent runs threads (HTTP, queues, SDK clients) whose locks a fork would copy."""
    global _pool
    with _lock:
        if _pool is None:
            _pool = ProcessPoolExecutor(cores(), mp_context=multiprocessing.get_context("spawn"), initializer=_warm)
        return _pool


async def render_pdf_in_pool(document: InvoiceDocument, brand: Brand) -> bytes:
    """The invoice's PDF, as render_pdf makes it: the HTML here, the PDF in a worker."""
    from shared.invoicing.render import html_to_pdf, render_html

    global _pool
    html = render_html(document, brand)
    workers = pool()
    try:
        return await asyncio.get_running_loop().run_in_executor(workers, html_to_pdf, html, brand.logo_url,
                                                                document.number)
    except BrokenProcessPool:
        with _lock:  # a worker died (killed, out of memory): the next render starts a new pool
            if _pool is workers:
                _pool = None
        raise
