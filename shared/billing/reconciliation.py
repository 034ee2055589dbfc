"""License reconciliation: no license in use goes unbilled, no idle license goes unnoticed.

For one client tenant, Graph's subscribedSkus (enabled prepaid units, consumed units per SKU)
is compared with the ledger's state at the same instant (its current state of every user that
is not deleted), under the tenant's plan. The findings, each with a plain-words sentence:

- `unpriced_in_use`: a license in use that the plan does not price (unbilled revenue). One
  finding per user the ledger records holding it; if Graph counts more in use than the ledger
  knows of, one more finding, without a user, for the rest.
- `idle_units`: units bought but not assigned (enabled - consumed > 0), per SKU: a cost the MSP
  carries, worth idle units x the plan's price per month where the plan prices the SKU.
- `excluded_holding_licenses`: a user who holds at least one license (any SKU) but is kept out
  of the per-user fee by a plan rule (`per_user_exclusion`: guest, disabled, UPN pattern). The
  per-user price is at stake. Rules: only when the plan has a per-user fee (without one, nobody
  is kept out of anything); `require_license` never excludes a holder, so it yields nothing.
- `lapsing_subscription`: a SKU whose subscription is in Warning (expired, in its grace
  period), Suspended or LockedOut (capabilityStatus, prepaidUnits.warning/suspended/lockedOut):
  users are about to lose (or have lost) those licences, e.g. "EXCHANGESTANDARD: 5 licences in
  Warning: renew before users lose them". At stake: those units x the plan's price.
- Free SKUs (FLOW_FREE, POWER_BI_STANDARD, TEAMS_EXPLORATORY... or any SKU with 10,000 or more
  enabled units, Microsoft's nominal count for free offers) and company-wide SKUs (`appliesTo`
  Company) are not seats: they are never idle units, and a user holding a free one is not an
  unpriced licence in use.
- `drift`: Graph's consumed units differ from the count of users that the ledger records
  holding the SKU. The sync has missed a change (or one is still on its way); the service logs a
  WARNING naming the tenant and the SKU, and the next delta sync repairs it. Amount at stake:
  the difference x the plan's price where there is one.
- `unnamed_product`: a priced SKU that users hold but that neither the plan's `item_names` nor
  the product catalog (`product_name`, given by the caller: shared/invoicing/products.py) names,
  so its invoice lines show the bare part number. One finding per SKU; nothing is at stake but
  the client's reading.

Amounts at stake are monthly, `Decimal`, rounded half-up to the currency's minor units;
a SKU the plan does not price has none ("no price in the plan"). SKUs are named by their part
number; the plan may price a SKU by part number or by SKU id (GUID).

`reconcile(plan, skus, states, at=)` is the pure comparison (no I/O, no clock) and `findings_csv`
the MSP's own report (not the client's); shared/services/reconcile.py gathers the inputs (Graph,
the ledger) and stores the report through the archive.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any, Callable, Iterable, Mapping, Protocol

from shared.billing import Observation, Plan
from shared.billing.holdings import per_user_exclusion, sku_item
from shared.billing.money import format_money, format_price, round_half_up
from shared.billing.observations import format_instant
from shared.spreadsheet import csv_bytes, text


class SubscribedSku(Protocol):
    """One of the tenant's subscribedSkus as Graph reports it (shared.graph.gateway.SkuInfo)."""

    @property
    def sku_id(self) -> str: ...

    @property
    def part_number(self) -> str: ...

    @property
    def consumed_units(self) -> int: ...

    @property
    def enabled_units(self) -> int: ...

    @property
    def applies_to(self) -> str: ...

    @property
    def capability_status(self) -> str: ...

    @property
    def warning_units(self) -> int: ...

    @property
    def suspended_units(self) -> int: ...

    @property
    def locked_out_units(self) -> int: ...

UNPRICED_IN_USE = "unpriced_in_use"
IDLE_UNITS = "idle_units"
EXCLUDED_HOLDING_LICENSES = "excluded_holding_licenses"
DRIFT = "drift"
LAPSING = "lapsing_subscription"
UNNAMED_PRODUCT = "unnamed_product"
KINDS = (UNPRICED_IN_USE, IDLE_UNITS, EXCLUDED_HOLDING_LICENSES, DRIFT, LAPSING, UNNAMED_PRODUCT)

# What a SKU is (SkuCount.category): seats bought per user, a free offer, or company-wide.
SEATS, FREE, COMPANY = "seats", "free", "company-wide"
FREE_SKUS = frozenset({"FLOW_FREE", "POWER_BI_STANDARD", "TEAMS_EXPLORATORY", "POWERAPPS_VIRAL", "CCIBOTS_PRIVPREV_VIRAL",
                       "POWERAPPS_DEV", "STREAM", "MCOPSTNEAU", "WINDOWS_STORE", "RMSBASIC", "FORMS_PRO",
                       "POWER_BI_INDIVIDUAL_USER", "MICROSOFT_BUSINESS_CENTER", "TEAMS_FREE"})
FREE_UNITS_FROM = 10_000  # Microsoft's nominal count for free and viral offers
LAPSING_STATUSES = ("Warning", "Suspended", "LockedOut")

NO_PRICE = "no price in the plan"


# --------------------------------------------------------------------------- results

@dataclass(frozen=True)
class SkuCount:
    """One SKU as both sides see it."""
    sku: str                   # part number (or whatever name the ledger holds, if Graph lacks it)
    sku_id: str | None         # None when Graph does not list the SKU
    enabled_units: int         # Graph: prepaidUnits.enabled
    consumed_units: int        # Graph: consumedUnits
    ledger_units: int          # users not deleted whom the ledger records holding it
    price: Decimal | None      # the plan's monthly price, None if unpriced
    category: str = SEATS      # SEATS, FREE or COMPANY
    capability_status: str = "Enabled"
    lapsing_units: int = 0     # units in Warning, Suspended or LockedOut

    @property
    def idle_units(self) -> int:
        """Seats bought and not assigned; free and company-wide SKUs have none."""
        if self.category != SEATS:
            return 0
        return max(0, self.enabled_units - self.consumed_units)

    @property
    def drift(self) -> int:
        """Graph's count minus the ledger's: > 0 the ledger misses assignments, < 0 it keeps stale ones."""
        return self.consumed_units - self.ledger_units

    def to_json(self, currency: str) -> dict[str, Any]:
        return {"sku": self.sku, "sku_id": self.sku_id, "enabled_units": self.enabled_units,
                "consumed_units": self.consumed_units, "ledger_units": self.ledger_units,
                "idle_units": self.idle_units, "category": self.category,
                "capability_status": self.capability_status, "lapsing_units": self.lapsing_units,
                "price": None if self.price is None else format_price(self.price, currency)}


@dataclass(frozen=True)
class Finding:
    tenant_id: str
    tenant_name: str
    kind: str
    sku: str                    # part number(s); for an excluded user, the SKUs held, comma-separated
    units: int
    monthly_amount: Decimal | None  # at stake per month; None when the plan has no price for it
    currency: str
    detail: str                 # one plain-words sentence
    display_name: str = ""
    user_principal_name: str = ""
    user_id: str = ""
    rule: str = ""              # for excluded_holding_licenses: the plan rule that excluded the user

    @property
    def user(self) -> str:
        """"Name (upn)", or "" when the finding is not about one user."""
        if not (self.display_name or self.user_principal_name):
            return ""
        if self.display_name and self.user_principal_name:
            return f"{self.display_name} ({self.user_principal_name})"
        return self.display_name or self.user_principal_name

    @property
    def amount_text(self) -> str:
        return "" if self.monthly_amount is None else format_money(self.monthly_amount, self.currency)

    def to_json(self) -> dict[str, Any]:
        return {"tenant_id": self.tenant_id, "tenant_name": self.tenant_name, "kind": self.kind, "sku": self.sku,
                "user_id": self.user_id or None, "display_name": self.display_name or None,
                "user_principal_name": self.user_principal_name or None, "rule": self.rule or None,
                "units": self.units, "monthly_amount": self.amount_text or None, "currency": self.currency,
                "detail": self.detail}


@dataclass(frozen=True)
class Reconciliation:
    tenant_id: str
    tenant_name: str
    currency: str
    at: datetime | None
    skus: tuple[SkuCount, ...] = ()
    findings: tuple[Finding, ...] = ()
    error: str | None = None   # set when the tenant could not be reconciled (e.g. Graph refused)

    def of_kind(self, kind: str) -> list[Finding]:
        return [f for f in self.findings if f.kind == kind]

    @property
    def has_drift(self) -> bool:
        return any(f.kind == DRIFT for f in self.findings)

    def summary_line(self) -> str:
        """One plain-words line, e.g. "Contoso Dental: 1 unpriced license in use (EXCHANGESTANDARD ×1),
        3 idle units (USD 66.00/month), 1 excluded user holding licenses, no drift." """
        if self.error:
            return f"{self.tenant_name or self.tenant_id}: could not be reconciled ({self.error})."
        parts = [self._unpriced_text(), self._idle_text(), self._excluded_text(), self._drift_text()]
        unnamed = self.of_kind(UNNAMED_PRODUCT)
        if unnamed:
            parts.append(f"{len(unnamed)} {_plural(len(unnamed), 'product')} without a name on invoices "
                         f"({', '.join(f.sku for f in unnamed)})")
        return f"{self.tenant_name}: " + ", ".join(parts) + "." + \
            "".join(f" {f.detail}" for f in self.of_kind(LAPSING))

    def _unpriced_text(self) -> str:
        per_sku: dict[str, int] = {}
        for finding in self.of_kind(UNPRICED_IN_USE):
            per_sku[finding.sku] = per_sku.get(finding.sku, 0) + finding.units
        total = sum(per_sku.values())
        if not total:
            return "no unpriced license in use"
        skus = ", ".join(f"{sku} ×{units}" for sku, units in per_sku.items())
        return f"{total} unpriced {_plural(total, 'license')} in use ({skus})"

    def _idle_text(self) -> str:
        idle = self.of_kind(IDLE_UNITS)
        total = sum(f.units for f in idle)
        if not total:
            return "no idle units"
        priced = [f for f in idle if f.monthly_amount is not None]
        unpriced = sum(f.units for f in idle if f.monthly_amount is None)
        if not priced:
            money = NO_PRICE
        else:
            at_stake = sum((f.monthly_amount for f in priced if f.monthly_amount is not None), Decimal(0))
            money = f"{self.currency} {format_money(at_stake, self.currency)}/month"
            if unpriced:
                money += f", {unpriced} of them with {NO_PRICE}"
        return f"{total} idle {_plural(total, 'unit')} ({money})"

    def _excluded_text(self) -> str:
        count = len(self.of_kind(EXCLUDED_HOLDING_LICENSES))
        if not count:
            return "no excluded user holding licenses"
        return f"{count} excluded {_plural(count, 'user')} holding licenses"

    def _drift_text(self) -> str:
        drifting = [s for s in self.skus if s.drift]
        if not drifting:
            return "no drift"
        return "drift on " + ", ".join(f"{s.sku} (Graph {s.consumed_units}, ledger {s.ledger_units})"
                                       for s in drifting)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data (money as strings with the currency's minor digits)."""
        return {"tenant_id": self.tenant_id, "tenant_name": self.tenant_name, "currency": self.currency,
                "at": format_instant(self.at) if self.at else None, "error": self.error,
                "summary": self.summary_line(), "drift": self.has_drift,
                "skus": [s.to_json(self.currency) for s in self.skus],
                "findings": [f.to_json() for f in self.findings]}


def _plural(count: int, word: str) -> str:
    return word if count == 1 else word + "s"


# --------------------------------------------------------------------------- the comparison

def _at_stake(price: Decimal | None, units: int, currency: str) -> Decimal | None:
    if price is None:
        return None
    return round_half_up(Fraction(price) * units, currency)


def _plan_price(plan: Plan, *names: str | None) -> Decimal | None:
    for name in names:
        if name:
            key = sku_item(plan, name)
            if key is not None:
                return plan.sku_prices[key]
    return None


def _rule_words(rule: str) -> str:
    if rule == "guest":
        return "a guest account (the plan leaves guests out of the per-user fee)"
    if rule == "disabled":
        return "a disabled account (the plan leaves disabled accounts out of the per-user fee)"
    if rule.startswith("UPN matches "):
        return f"its UPN matches the plan's exclusion pattern {rule[len('UPN matches '):]}"
    return f"the plan's rule '{rule}'"


def reconcile(plan: Plan, skus: Iterable[SubscribedSku], states: Iterable[Observation] | Mapping[str, Observation],
              *, at: datetime | None = None, tenant_name: str | None = None,
              product_name: Callable[[str], str | None] | None = None) -> Reconciliation:
    """Compares Graph's subscribed SKUs with the ledger's current user states under the plan.
    Pure: no I/O, no clock (`at` is only recorded). Deleted users are left out."""
    tenant_id, name, currency = plan.tenant_id, tenant_name or plan.name, plan.currency
    users = [s for s in (states.values() if isinstance(states, Mapping) else states) if not s.deleted]
    users.sort(key=lambda s: (s.display_name.lower(), s.user_principal_name.lower(), s.user_id))

    # Graph's SKUs, reachable by part number or SKU id (the ledger holds part numbers, or the id
    # of a SKU the sync could not name).
    graph: dict[str, SubscribedSku] = {}
    order: list[str] = []
    for info in skus:
        graph[info.part_number.lower()] = info
        graph[str(info.sku_id).lower()] = info
        order.append(info.part_number)

    def part_number(held: str) -> str:
        info = graph.get(held.lower())
        return info.part_number if info is not None else held

    holders: dict[str, list[Observation]] = {}
    for state in users:
        for held in dict.fromkeys(part_number(s) for s in state.skus):
            holders.setdefault(held, []).append(state)
            if held not in order:
                order.append(held)

    counts: list[SkuCount] = []
    for sku in sorted(order, key=str.lower):
        listed = graph.get(sku.lower())
        price = _plan_price(plan, sku, str(listed.sku_id) if listed is not None else None)
        counts.append(SkuCount(
            sku=sku, sku_id=str(listed.sku_id) if listed is not None else None,
            enabled_units=int(listed.enabled_units) if listed is not None else 0,
            consumed_units=int(listed.consumed_units) if listed is not None else 0,
            ledger_units=len(holders.get(sku, ())), price=price,
            category=sku_category(listed, price) if listed is not None else SEATS,
            capability_status=listed.capability_status if listed is not None else "Enabled",
            lapsing_units=lapsing_units(listed) if listed is not None else 0))

    findings: list[Finding] = []

    def finding(kind: str, sku: str, units: int, amount: Decimal | None, detail: str,
                user: Observation | None = None, rule: str = "") -> None:
        findings.append(Finding(tenant_id, name, kind, sku, units, amount, currency, detail,
                                display_name=user.display_name if user else "",
                                user_principal_name=user.user_principal_name if user else "",
                                user_id=user.user_id if user else "", rule=rule))

    for count in counts:
        if count.price is None and count.category == SEATS:
            for user in holders.get(count.sku, ()):
                finding(UNPRICED_IN_USE, count.sku, 1, None,
                        f"{user.display_name} ({user.user_principal_name}) holds {count.sku}, which the plan does "
                        f"not price: this license is not billed ({NO_PRICE}).", user)
            unattributed = count.consumed_units - count.ledger_units
            if unattributed > 0:
                finding(UNPRICED_IN_USE, count.sku, unattributed, None,
                        f"Graph counts {unattributed} more {count.sku} {_plural(unattributed, 'license')} in use "
                        f"than the ledger records (see drift); the plan does not price {count.sku}, so "
                        f"{'it is' if unattributed == 1 else 'they are'} not billed ({NO_PRICE}).")

    for count in counts:
        if count.idle_units:
            amount = _at_stake(count.price, count.idle_units, currency)
            money = NO_PRICE if amount is None else f"{currency} {format_money(amount, currency)} a month at the plan's price"
            finding(IDLE_UNITS, count.sku, count.idle_units, amount,
                    f"{count.idle_units} of {count.enabled_units} {count.sku} {_plural(count.enabled_units, 'license')} "
                    f"bought are not assigned to anyone ({money}).")

    if plan.per_user_price is not None:
        fee = round_half_up(Fraction(plan.per_user_price), currency)
        for user in users:
            if not user.skus:
                continue
            rule = per_user_exclusion(plan, user)
            if rule is None:
                continue
            held = ", ".join(dict.fromkeys(part_number(s) for s in user.skus))
            finding(EXCLUDED_HOLDING_LICENSES, held, 1, fee,
                    f"{user.display_name} ({user.user_principal_name}) holds {held} but is not charged the per-user "
                    f"fee: {_rule_words(rule)}; {currency} {format_money(fee, currency)} a month at stake.",
                    user, rule)

    for count in counts:
        if count.drift:
            units = abs(count.drift)
            amount = _at_stake(count.price, units, currency)
            if count.drift > 0:
                what = (f"{units} {_plural(units, 'assignment')} {'has' if units == 1 else 'have'} not reached "
                        "the ledger and would go unbilled")
            else:
                what = (f"the ledger still records {units} {_plural(units, 'assignment')} that Graph no longer has "
                        "and would bill")
            money = NO_PRICE if amount is None else f"{currency} {format_money(amount, currency)} a month at stake"
            finding(DRIFT, count.sku, units, amount,
                    f"Graph counts {count.consumed_units} {count.sku} {_plural(count.consumed_units, 'license')} "
                    f"assigned, the ledger {count.ledger_units}: {what} ({money}). The sync missed a change; "
                    "the next delta sync should repair it.")

    if product_name is not None:
        for count in counts:
            if count.price is None or not count.ledger_units:
                continue  # only what invoices show
            key = sku_item(plan, count.sku) or (sku_item(plan, count.sku_id) if count.sku_id else None)
            if key in plan.item_names or product_name(count.sku) or (count.sku_id and product_name(count.sku_id)):
                continue
            finding(UNNAMED_PRODUCT, count.sku, count.ledger_units, None,
                    f"Invoices show {count.sku} by its part number: the product catalog has no name for it. "
                    f"Name it in the plan's item_names (\"{key}\": \"<product name>\").")

    for count in counts:
        if count.lapsing_units:
            amount = _at_stake(count.price, count.lapsing_units, currency)
            licences = f"{count.lapsing_units} {_plural(count.lapsing_units, 'licence')}"
            if count.capability_status in ("Suspended", "LockedOut"):
                words = (f"{licences} {count.capability_status}: users have lost or are losing them; renew the "
                         "subscription or remove the assignments")
            else:
                words = f"{licences} in Warning: renew before users lose them"
            finding(LAPSING, count.sku, count.lapsing_units, amount, f"{count.sku}: {words}.")

    return Reconciliation(tenant_id, name, currency, at, tuple(counts), tuple(findings))


def sku_category(info: SubscribedSku, price: Decimal | None) -> str:
    """COMPANY for appliesTo Company; FREE for a known free offer or a nominal 10,000+ count
    that the plan does not price; otherwise SEATS."""
    if info.applies_to == "Company":
        return COMPANY
    if price is None and (info.part_number.upper() in FREE_SKUS or info.enabled_units >= FREE_UNITS_FROM):
        return FREE
    return SEATS


def lapsing_units(info: SubscribedSku) -> int:
    """Units of a subscription about to lapse or lapsed: prepaidUnits.warning + suspended +
    lockedOut, or (a status without those counts) the units in use."""
    units = info.warning_units + info.suspended_units + info.locked_out_units
    if not units and info.capability_status in LAPSING_STATUSES:
        units = info.consumed_units or info.enabled_units
    return units


# --------------------------------------------------------------------------- the MSP's CSV report

CSV_COLUMNS = ("checked_at", "tenant_id", "tenant", "kind", "sku", "user", "user_principal_name", "rule",
               "units", "monthly_amount", "currency", "detail")


def findings_csv(reconciliations: Iterable[Reconciliation]) -> bytes:
    """A row per finding (a tenant that could not be reconciled gets a row of kind `error`).
    UTF-8 with a byte-order mark (so that spreadsheets read accents right), RFC 4180 quoting, CRLF;
    money with the currency's minor digits, empty where the plan has no price; text cells
    starting with = + - @ get a leading apostrophe (shared/spreadsheet.py)."""
    rows: list[list[str | int]] = []
    for rec in reconciliations:
        checked = format_instant(rec.at) if rec.at else ""
        if rec.error:
            rows.append([checked, rec.tenant_id, text(rec.tenant_name), "error", "", "", "", "", "", "",
                         rec.currency, text(f"Could not be reconciled: {rec.error}")])
        for f in rec.findings:
            rows.append([checked, f.tenant_id, text(f.tenant_name), f.kind, text(f.sku), text(f.display_name),
                         text(f.user_principal_name), text(f.rule), f.units, f.amount_text, f.currency,
                         text(f.detail)])
    return csv_bytes(CSV_COLUMNS, rows, byte_order_mark=True)
