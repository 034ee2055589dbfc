"""The guardrails' rule: which invoices are held before sending, and why, in plain words."""
from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.billing import InputError, Period, parse_plan
from shared.billing.holds import Billed, HoldRules, UsersChange, hold_reason, rules_for
from shared.settings import Settings

OCT, NOV = Period(2026, 10), Period(2026, 11)


def billed(total: str, users: int, period: Period = NOV, currency: str = "USD") -> Billed:
    return Billed(period, "INV-2026-00042", Decimal(total), currency, users)


def test_the_reason_says_the_totals_the_share_and_the_users_of_both_months():
    reason = hold_reason(billed("5210.00", 41), billed("1262.00", 12, OCT), HoldRules(users_change=None))
    assert reason == "total 5,210.00 USD is 413 % of October's 1,262.00 USD; 41 users billed, 12 in October"


@pytest.mark.parametrize("total, held", [("150.00", False), ("150.01", True), ("50.00", False), ("49.99", True)])
def test_a_total_is_held_when_it_moves_more_than_the_percentage_either_way(total, held):
    assert (hold_reason(billed(total, 10), billed("100.00", 10, OCT), HoldRules()) is not None) is held


@pytest.mark.parametrize("users, held", [(16, False), (17, True), (8, False), (7, True)])
def test_users_are_held_only_past_both_the_percentage_and_the_count(users, held):
    rules = HoldRules(total_changes_percent=None, users_change=UsersChange(Decimal(30), 5))
    reason = hold_reason(billed("100.00", users), billed("100.00", 12, OCT), rules)
    assert (reason is not None) is held
    if held:
        assert f"users billed changed by {abs(users - 12)}" in reason


def test_a_first_invoice_is_held_only_when_asked_and_nothing_is_held_when_holds_are_off():
    assert hold_reason(billed("10.00", 1), None, HoldRules()) is None
    assert "first invoice" in hold_reason(billed("10.00", 1), None, HoldRules(first_invoice=True))
    assert hold_reason(billed("9999.00", 99), billed("1.00", 1, OCT), HoldRules(enabled=False)) is None


def test_a_total_after_a_zero_invoice_or_in_another_currency_is_held():
    assert "after October's 0.00 USD" in hold_reason(billed("10.00", 1), billed("0.00", 1, OCT), HoldRules())
    assert "another currency" in hold_reason(billed("10.00", 1, currency="EUR"), billed("10.00", 1, OCT), HoldRules())


@given(previous=st.decimals(min_value=1, max_value=10**9, places=2), factor=st.decimals(min_value=0, max_value=10, places=3),
       percent=st.integers(min_value=0, max_value=500))
def test_holding_a_total_depends_only_on_its_distance_from_the_previous(previous, factor, percent):
    total = (previous * factor).quantize(Decimal("0.01"))
    rules = HoldRules(total_changes_percent=Decimal(percent), users_change=None)
    held = hold_reason(billed(str(total), 1), billed(str(previous), 1, OCT), rules) is not None
    assert held == (abs(total - previous) * 100 > percent * previous)


def test_settings_set_the_rules_and_a_client_s_plan_overrides_them():
    settings = Settings({"HOLD_IF_TOTAL_CHANGES_PERCENT": "80", "HOLD_IF_USERS_CHANGE": "off", "HOLD_FIRST_INVOICE": "true"})
    assert rules_for(settings.get, {}) == HoldRules(True, Decimal(80), None, True)
    assert rules_for(settings.get, {"if_users_change": "50%,10", "first_invoice": False}) == \
        HoldRules(True, Decimal(80), UsersChange(Decimal(50), 10), False)
    assert rules_for(Settings({"HOLDS_ENABLED": "false"}).get, {}).enabled is False


def plan(**holds) -> dict:
    return {"tenant_id": "t", "name": "N", "currency": "USD", "timezone": "UTC", "holds": holds}


def test_a_plan_keeps_its_hold_overrides_through_its_json():
    parsed = parse_plan(plan(if_total_changes_percent="80", enabled=True))
    assert parse_plan(parsed.to_dict()).holds == {"if_total_changes_percent": "80", "enabled": True}


@pytest.mark.parametrize("holds, where", [({"nope": 1}, "holds.nope"), ({"if_total_changes_percent": "lots"},
                                          "holds.if_total_changes_percent"), ({"if_users_change": "30%"},
                                          "holds.if_users_change"), ({"enabled": "maybe"}, "holds.enabled")])
def test_a_bad_hold_override_is_refused_naming_the_field(holds, where):
    with pytest.raises(InputError) as refused:
        parse_plan(plan(**holds))
    assert refused.value.field == where
