"""Product names of Microsoft's commercial SKUs, and the name an invoice gives each item.

The catalog is `data/microsoft_skus.csv` (string_id, guid, product_name): Microsoft's
"Product names and service plan identifiers for licensing" list, restricted to the SKUs an MSP
resells to businesses. `string_id` is Graph's `subscribedSku.skuPartNumber`, `guid` its `skuId`;
a plan prices a SKU by either, so both find the name (case-insensitively). The file is read once,
on first use; nothing here reads the clock or the network.

Naming rule (one place, used by the PDF, the email and the CSV export): the plan's own
`item_names` first, then for the per-user fee the plan's `user_item_name`, else the catalog's
product name, else the key itself (the part number), which the reconciliation reports as a
finding so the MSP can name it in the plan.
"""
from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Iterable, Mapping

from shared.billing.holdings import USER_ITEM
from shared.billing.plan import Plan

CATALOG_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "microsoft_skus.csv")
CATALOG_COLUMNS = ("string_id", "guid", "product_name")
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

def N_(text: str) -> str:
    """Marks a message for the catalogs (pybabel extract -k N_) without translating it here."""
    return text


#: The per-user fee's name when the plan gives none (a msgid: translated by the caller).
DEFAULT_USER_ITEM_NAME = N_("Managed user")


@dataclass(frozen=True)
class Product:
    string_id: str
    guid: str
    name: str


class CatalogError(ValueError):
    """The catalog file is malformed (a bad GUID, a duplicate key, a missing column)."""


def read_catalog(lines: Iterable[str], source: str = CATALOG_PATH) -> tuple[Product, ...]:
    """Parses and checks catalog CSV text: every GUID well-formed (lower case), no part number or
    GUID twice (case-insensitively), no empty name."""
    reader = csv.DictReader(lines)
    if tuple(reader.fieldnames or ()) != CATALOG_COLUMNS:
        raise CatalogError(f"{source}: expected the columns {', '.join(CATALOG_COLUMNS)}, "
                           f"got {', '.join(reader.fieldnames or ())}")
    products: list[Product] = []
    seen: dict[str, int] = {}
    for number, row in enumerate(reader, start=2):
        string_id, guid, name = (row.get(column) or "" for column in CATALOG_COLUMNS)
        if not string_id.strip() or not name.strip():
            raise CatalogError(f"{source} line {number}: string_id and product_name must not be empty")
        if not GUID.match(guid):
            raise CatalogError(f"{source} line {number}: {guid!r} is not a lower-case GUID")
        for key in (string_id.lower(), guid):
            if key in seen:
                raise CatalogError(f"{source} line {number}: {key} is already on line {seen[key]}")
            seen[key] = number
        products.append(Product(string_id, guid, name))
    return tuple(products)


@lru_cache(maxsize=1)
def catalog() -> Mapping[str, Product]:
    """Every product, by lower-cased part number and by GUID."""
    with open(CATALOG_PATH, encoding="utf-8", newline="") as handle:
        products = read_catalog(handle)
    index: dict[str, Product] = {}
    for product in products:
        index[product.string_id.lower()] = product
        index[product.guid] = product
    return index


def product_name(sku: str) -> str | None:
    """Microsoft's product name of a part number or SKU id, or None if the catalog lacks it."""
    product = catalog().get(sku.strip().lower())
    return product.name if product is not None else None


def item_name(plan: Plan, item: str, gettext: Callable[[str], str] = lambda text: text) -> str:
    """The name an invoice prints for an item (see the module's naming rule)."""
    named = plan.item_names.get(item)
    if named:
        return named
    if item == USER_ITEM:
        return plan.user_item_name or gettext(DEFAULT_USER_ITEM_NAME)
    return product_name(item) or item


def unnamed_items(plan: Plan) -> list[str]:
    """The plan's priced SKUs whose invoices would show a bare part number: neither the plan's
    `item_names` nor the catalog names them."""
    return sorted((sku for sku in plan.sku_prices
                   if sku not in plan.item_names and product_name(sku) is None), key=str.lower)
