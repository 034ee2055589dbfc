"""argparse types of the ./dev values that name stored things, refused before they reach storage
or Graph (exit 2 naming the argument, as every bad input on the command line)."""
from __future__ import annotations

import argparse

from shared.tenants import is_tenant_id


def tenant_id(text: str) -> str:
    """A client's Entra tenant id: a GUID."""
    if not is_tenant_id(text):
        raise argparse.ArgumentTypeError(f"expected the client's Entra tenant id (a GUID), got {text[:80]!r}")
    return text
