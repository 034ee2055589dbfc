""""Page N of M" in one layout pass of xhtml2pdf.

`<pdf:pagecount />` makes xhtml2pdf lay the whole document out twice (a multiBuild: the first
pass only counts the pages), which costs 1.4x to 1.6x the render of an invoice. Our templates
print the page count only in static frames (the footer), and those are painted on each page
independently of the flow. So the render here lays the flow out once and paints the static
frames of every page at the end, when the number of pages is known:

* the canvas keeps each finished page (as ReportLab's "page x of y" recipe does) instead of
  writing it, and writes them all on save, after painting each page's deferred static frames
  with the final page count;
* the static frames are recorded, not painted, while the flow is laid out;
* the page count no longer turns multiBuild on.

Only for renders made through `single_pass()`; anything else in the process renders as
xhtml2pdf always does. A page count in the flow itself (not in a static frame) would show the
pages laid out so far: the invoice templates never put one there.
"""
from __future__ import annotations

import contextvars
import threading
from contextlib import contextmanager
from typing import Any, Iterator

_active: contextvars.ContextVar[bool] = contextvars.ContextVar("single_pass_pagecount", default=False)
_installed = False
_install_lock = threading.Lock()


@contextmanager
def single_pass() -> Iterator[None]:
    """xhtml2pdf renders inside this block lay their document out once."""
    _install()
    token = _active.set(True)
    try:
        yield
    finally:
        _active.reset(token)


def _install() -> None:
    global _installed
    with _install_lock:
        if _installed:
            return
        from xhtml2pdf.builders.printmarks import MarkedCanvas
        from xhtml2pdf.context import pisaContext
        from xhtml2pdf.xhtml2pdf_reportlab import PmlBaseDoc, PmlPageTemplate

        class DeferredCanvas(MarkedCanvas):
            """Keeps the pages and paints their static frames on save, page count known."""

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                self._kept_pages: list[dict[str, Any]] = []
                self._deferred: list[tuple[Any, Any, Any]] = []  # this page's static frames
                self._document: Any = None  # the doc template (the build drops canvas._doctemplate early)

            def showPage(self) -> None:  # noqa: N802 - ReportLab's name
                state = dict(self.__dict__)
                state["_deferred"] = self._deferred
                self._kept_pages.append(state)
                self._deferred = []
                self._startPage()

            def save(self) -> None:
                pages, document = self._kept_pages, self._document
                total = len(pages)
                gone = "_doctemplate" not in self.__dict__  # the build let go of it before saving
                for state in pages:
                    self.__dict__.update(state)  # the page as it was when finished
                    if state["_deferred"]:
                        self._doctemplate = document
                        document._page_count = total
                    for template, frame, renumber in state["_deferred"]:
                        self.saveState()
                        try:
                            paint(template, frame, self, renumber)
                        finally:
                            self.restoreState()
                    MarkedCanvas.showPage(self)
                if gone:
                    self.__dict__.pop("_doctemplate", None)
                MarkedCanvas.save(self)

        paint = PmlPageTemplate._paintStaticFrame

        def paint_static_frame(self: Any, frame: Any, canvas: Any, renumber: Any) -> None:
            if isinstance(canvas, DeferredCanvas):
                canvas._deferred.append((self, frame, renumber))
                canvas._document = getattr(canvas, "_doctemplate", None) or canvas._document
            else:
                paint(self, frame, canvas, renumber)

        make_canvas = PmlBaseDoc._makeCanvas

        def _make_canvas(self: Any, filename: Any = None, canvasmaker: Any = None) -> Any:
            if _active.get():
                canvasmaker = DeferredCanvas
            return make_canvas(self, filename=filename, canvasmaker=canvasmaker)

        add_page_count = pisaContext.addPageCount

        def addPageCount(self: Any) -> None:  # noqa: N802 - xhtml2pdf's name
            if not _active.get():
                add_page_count(self)

        PmlPageTemplate._paintStaticFrame = paint_static_frame
        PmlBaseDoc._makeCanvas = _make_canvas
        pisaContext.addPageCount = addPageCount
        _installed = True
