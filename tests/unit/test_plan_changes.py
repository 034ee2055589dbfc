"""Changing a client's plan without re-onboarding: plan versions through the service, with
in-memory tenants and invoiced months."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import pytest

from shared.billing import InputError, Period, parse_plan
from shared.errors import TenantNotOnboarded
from shared.services.plans import PlanChangeRefused, VersionNotFound, add_version, remove_version, show_tenant
from shared.storage.records import InvoiceRecord
from shared.tenants import Tenant

TENANT = "7d0f3c1e-2b4a-4c5d-9e8f-0a1b2c3d4e5f"
NOW = datetime(2026, 11, 10, 12, tzinfo=timezone.utc)


class Tenants:
    def __init__(self, *tenants: Tenant):
        self.rows = {t.tenant_id: t for t in tenants}

    def get(self, tenant_id):
        return self.rows.get(tenant_id)

    def all(self, *, active_only=False):
        return list(self.rows.values())

    def save(self, tenant):
        self.rows[tenant.tenant_id] = tenant

    def update(self, tenant_id, **changes):
        self.rows[tenant_id] = replace(self.rows[tenant_id], **changes)


class Invoiced:
    """Invoice records of the client: {period: number}, each emailed."""

    def __init__(self, months):
        self.records = [InvoiceRecord({"PartitionKey": TENANT, "RowKey": str(period), "number": number,
                                       "status": "done", "step": "emailed"}, "etag") for period, number in months.items()]

    def of_tenant(self, tenant_id):
        return self.records


PLAN_DATA = {"tenant_id": TENANT, "name": "Contoso Dental", "currency": "USD", "timezone": "America/New_York",
             "per_user_price": "45.00", "sku_prices": {"SPB": "22.00"}}


@pytest.fixture
def tenants():
    plan = parse_plan(PLAN_DATA)
    return Tenants(Tenant(tenant_id=TENANT, plan=plan, billing_contacts=("ap@contoso.example",)))


OCTOBER_INVOICED = Invoiced({Period(2026, 9): "INV-2026-00007", Period(2026, 10): "INV-2026-00042"})


def test_a_version_after_the_last_invoiced_month_is_added_and_shown_with_the_plan(tenants):
    changed = add_version(tenants, OCTOBER_INVOICED, TENANT, {"effective_from": "2027-01-01", "per_user_price": "49.00"})
    assert changed.sentence == "Contoso Dental: from 01 January 2027, per-user fee 49.00 USD."
    shown = show_tenant(tenants, TENANT)
    assert shown["status"] == "active" and shown["billing_contacts"] == ["ap@contoso.example"]
    assert shown["plan"]["versions"] == [{"effective_from": "2027-01-01", "per_user_price": "49.00"}]


def test_a_version_dated_inside_an_invoiced_month_is_refused_naming_the_invoice(tenants):
    with pytest.raises(PlanChangeRefused) as refused:
        add_version(tenants, OCTOBER_INVOICED, TENANT, {"effective_from": "2026-10-15", "per_user_price": "49.00"})
    assert "INV-2026-00042" in str(refused.value) and "October 2026" in str(refused.value)
    assert tenants.get(TENANT).plan.versions == ()  # nothing half-written


def test_a_version_before_an_invoiced_month_is_refused_because_it_would_reprice_it(tenants):
    with pytest.raises(PlanChangeRefused) as refused:
        add_version(tenants, Invoiced({Period(2026, 10): "INV-2026-00042"}), TENANT,
                    {"effective_from": "2026-08-01", "sku_prices": {}})
    assert "INV-2026-00042" in str(refused.value)


def test_a_version_in_the_month_under_way_is_accepted(tenants):
    add_version(tenants, OCTOBER_INVOICED, TENANT, {"effective_from": "2026-11-15", "sku_prices": {"SPB": "24.00"}})
    assert [str(v.effective_from) for v in tenants.get(TENANT).plan.versions] == ["2026-11-15"]


@pytest.mark.parametrize("body, field", [
    ({"effective_from": "2026-11-31", "per_user_price": "1"}, "effective_from"),
    ({"effective_from": "2026-12-01", "tax_rate": "0.2"}, "tax_rate"),
    ({"effective_from": "2026-12-01", "per_user_price": "-1"}, "per_user_price"),
    ({"effective_from": "2026-12-01", "per_user_price": "1e26"}, "per_user_price"),
    ([1, 2], None),
])
def test_a_malformed_version_is_refused_naming_the_field(tenants, body, field):
    with pytest.raises(InputError) as error:
        add_version(tenants, OCTOBER_INVOICED, TENANT, body)
    assert error.value.field == field


def test_an_unknown_tenant_is_not_found(tenants):
    with pytest.raises(TenantNotOnboarded):
        add_version(tenants, OCTOBER_INVOICED, "nobody", {"effective_from": "2027-01-01", "per_user_price": "1"})
    with pytest.raises(TenantNotOnboarded):
        show_tenant(tenants, "nobody")


def test_a_second_version_on_the_same_date_is_refused(tenants):
    add_version(tenants, OCTOBER_INVOICED, TENANT, {"effective_from": "2027-01-01", "per_user_price": "49.00"})
    with pytest.raises(PlanChangeRefused):
        add_version(tenants, OCTOBER_INVOICED, TENANT, {"effective_from": "2027-01-01", "per_user_price": "50.00"})


def test_only_a_version_not_yet_in_force_can_be_deleted(tenants):
    add_version(tenants, OCTOBER_INVOICED, TENANT, {"effective_from": "2026-11-10", "per_user_price": "46.00"})
    add_version(tenants, OCTOBER_INVOICED, TENANT, {"effective_from": "2027-01-01", "per_user_price": "49.00"})
    with pytest.raises(PlanChangeRefused) as refused:
        remove_version(tenants, TENANT, "2026-11-10", NOW)  # today in New York: in force
    assert "already in force" in str(refused.value)
    remove_version(tenants, TENANT, "2027-01-01", NOW)
    assert [str(v.effective_from) for v in tenants.get(TENANT).plan.versions] == ["2026-11-10"]
    with pytest.raises(VersionNotFound):
        remove_version(tenants, TENANT, "2027-01-01", NOW)
    with pytest.raises(InputError):
        remove_version(tenants, TENANT, "January", NOW)


def test_onboarding_again_with_a_plan_without_versions_keeps_the_stored_versions(tenants):
    import asyncio

    from shared.services.onboarding import Onboarding

    add_version(tenants, OCTOBER_INVOICED, TENANT, {"effective_from": "2027-01-01", "per_user_price": "49.00"})

    class Quiet:  # the baseline sync and the subscription are not what this test is about
        async def sync(self, tenant_id):
            return []

        def for_tenant(self, tenant_id):
            return ["subscribed"]

        def current_states(self, tenant_id):
            return {}

    again = replace(tenants.get(TENANT), plan=replace(tenants.get(TENANT).plan, versions=(),
                                                      per_user_price=parse_plan({**PLAN_DATA, "per_user_price": "46"}).per_user_price))
    onboarding = Onboarding(tenants=tenants, subscriptions=Quiet(), ledger=Quiet(), syncing=Quiet(),
                            manager=lambda: None, clock=lambda: NOW)
    asyncio.run(onboarding.onboard(again))
    stored = tenants.get(TENANT).plan
    assert str(stored.per_user_price) == "46" and [str(v.effective_from) for v in stored.versions] == ["2027-01-01"]
