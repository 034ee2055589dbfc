"""Which billable items a user holds at an instant, and why a user does not count."""
from __future__ import annotations

from decimal import Decimal
from fnmatch import fnmatchcase

from shared.billing.observations import Observation
from shared.billing.plan import Plan

USER_ITEM = "user"
CHARGE_ITEM = "charge"  # a one-off charge or credit (charges.py), not a user's item


def per_user_exclusion(plan: Plan, state: Observation) -> str | None:
    """The plan rule that keeps an existing user out of the per-user fee, or None if the user counts.

    Rule: the per-user fee is held while the user exists, is not deleted, and passes every rule
    of the plan: guests only with include_guests, disabled accounts only with include_disabled,
    at least one SKU with require_license, and a UPN matching no exclude pattern (case-insensitive).
    """
    if state.is_guest and not plan.include_guests:
        return "guest"
    if not state.account_enabled and not plan.include_disabled:
        return "disabled"
    if plan.require_license and not state.skus:
        return "no license"
    upn = state.user_principal_name.lower()
    for pattern in plan.exclude_upn_patterns:
        if fnmatchcase(upn, pattern.lower()):
            return f"UPN matches {pattern}"
    return None


def sku_item(plan: Plan, sku: str) -> str | None:
    """The plan's price key for an assigned SKU (part number or GUID, GUIDs case-insensitive)."""
    if sku in plan.sku_prices:
        return sku
    lowered = sku.lower()
    for key in plan.sku_prices:
        if key.lower() == lowered:
            return key
    return None


def unit_price(plan: Plan, item: str) -> Decimal:
    """The price of a held item under the plan in force (the per-user fee or the SKU's price)."""
    price = plan.per_user_price if item == USER_ITEM else plan.sku_prices[item]
    assert price is not None, "the per-user fee is held only while it has a price"
    return price


def items_held(plan: Plan, state: Observation | None) -> frozenset[str]:
    """Items held in a state. Rule: nothing before the first observation or while deleted; the
    per-user fee as per_user_exclusion says; each priced SKU while assigned, even when the account
    is disabled (the MSP still pays Microsoft for it). Unpriced SKUs are not billed."""
    if state is None or state.deleted:
        return frozenset()
    items = {item for item in (sku_item(plan, sku) for sku in state.skus) if item is not None}
    if plan.per_user_price is not None and per_user_exclusion(plan, state) is None:
        items.add(USER_ITEM)
    return frozenset(items)
