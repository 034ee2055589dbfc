"""The billing rules of ../shared/specs/billing-rules.md, example by example and edge by edge."""
from __future__ import annotations

import pytest

from shared.billing import InputError, parse_plan
from tests.billing_helpers import days_of, invoice, obs, plan


# --- the spec's own examples ----------------------------------------------------------------

def test_the_worked_example_bills_ann_24_68_plus_tax_26_72():
    result = invoice(plan(name="Contoso Ltd", timezone="Australia/Sydney", per_user_price="45.00",
                          sku_prices={}, tax_rate="0.0825"),
                     [obs("2026-10-14T15:03:00Z", upn="ann@contoso.com", name="Ann Lee", skus=["SPB"])])
    assert result["lines"] == [{"user_id": "u-1", "user_principal_name": "ann@contoso.com",
                                "display_name": "Ann Lee", "item": "user", "unit_price": "45.00",
                                "days": 17, "amount": "24.68"}]
    assert (result["subtotal"], result["tax"], result["total"]) == ("24.68", "2.04", "26.72")
    assert (result["period_start"], result["period_end"], result["days_in_period"]) == ("2026-10-01", "2026-10-31", 31)


def test_joining_on_the_15th_of_a_30_day_month_and_staying_counts_16_days():
    assert days_of(plan(), [obs("2026-11-15T09:00:00Z")], "2026-11") == {"user": 16}


def test_removal_on_the_20th_after_holding_from_the_1st_counts_19_days():
    history = [obs("2026-11-01T00:00:00Z", skus=["SPB"]), obs("2026-11-20T10:00:00Z")]
    assert days_of(plan(), history, "2026-11")["SPB"] == 19


def test_adding_and_removing_on_the_same_day_counts_0_days_and_a_later_readd_adds_up():
    history = [obs("2026-11-01T00:00:00Z"), obs("2026-11-03T08:00:00Z", skus=["SPB"]),
               obs("2026-11-03T17:00:00Z"), obs("2026-11-25T12:00:00Z", skus=["SPB"])]
    assert days_of(plan(), history, "2026-11")["SPB"] == 6  # the 25th..30th


def test_a_user_holding_an_item_all_month_pays_exactly_the_unit_price():
    result = invoice(plan(), [obs("2026-09-20T00:00:00Z", skus=["SPB"])])
    assert [(l["item"], l["days"], l["amount"]) for l in result["lines"]] == [("user", 31, "30.00"), ("SPB", 31, "22.00")]


def test_proration_none_charges_the_full_price_for_any_day_held():
    result = invoice(plan(proration="none"), [obs("2026-10-31T10:00:00Z", skus=["E3"])])
    assert [(l["item"], l["days"], l["amount"]) for l in result["lines"]] == [("user", 1, "30.00"), ("E3", 1, "36.00")]


def test_proration_none_charges_nothing_for_an_item_held_on_no_day_end():
    assert days_of(plan(proration="none"), [obs("2026-10-05T08:00:00Z", skus=["E3"]), obs("2026-10-05T09:00:00Z")]) == {"user": 27}


def test_money_is_rounded_half_up_once_per_line_and_tax_on_the_rounded_subtotal():
    # 10.00 × 1 ÷ 8 would be 1.25 exactly; use 28-day Feb 2027: 0.35 × 2 ÷ 28 = 0.025 → 0.03 (half-up)
    result = invoice(plan(per_user_price="0.35", tax_rate="0.5"), [obs("2027-02-27T00:00:00Z")], "2027-02")
    assert result["lines"][0]["amount"] == "0.03"
    assert result["tax"] == "0.02" and result["total"] == "0.05"  # 0.015 → 0.02


# --- time zones, DST, leap years, midnight --------------------------------------------------

def test_a_plus_14_client_day_starts_10_hours_before_utc_midnight():
    # Pacific/Kiritimati is UTC+14: 2026-10-14T10:00Z is 00:00 on the 15th there.
    assert days_of(plan(timezone="Pacific/Kiritimati"), [obs("2026-10-14T10:00:00Z")]) == {"user": 17}
    assert days_of(plan(timezone="Pacific/Kiritimati"), [obs("2026-10-14T09:59:59Z")]) == {"user": 18}


def test_a_minus_11_client_still_on_the_previous_day():
    # Pacific/Pago_Pago is UTC−11: 2026-11-01T05:00Z is still Oct 31 there: one October day.
    assert days_of(plan(timezone="Pacific/Pago_Pago"), [obs("2026-11-01T05:00:00Z")]) == {"user": 1}


def test_a_half_hour_offset_zone_counts_its_own_midnight():
    # Asia/Kolkata is UTC+05:30: 18:30Z is local midnight.
    assert days_of(plan(timezone="Asia/Kolkata"), [obs("2026-10-19T18:30:00Z")]) == {"user": 12}
    assert days_of(plan(timezone="Asia/Kolkata"), [obs("2026-10-19T18:29:00Z")]) == {"user": 13}


def test_a_change_exactly_at_local_midnight_belongs_to_the_new_day():
    history = [obs("2026-10-01T04:00:00Z", skus=["SPB"]), obs("2026-10-11T04:00:00Z")]  # NY midnight, EDT
    assert days_of(plan(timezone="America/New_York"), history)["SPB"] == 10


def test_the_dst_change_day_is_one_day_like_any_other():
    ny = plan(timezone="America/New_York")
    # Clocks go back on 2026-11-01 (a 25-hour day); joining at 23:30 EST on Nov 1 (04:30Z Nov 2).
    assert days_of(ny, [obs("2026-11-02T04:30:00Z")], "2026-11") == {"user": 30}
    assert days_of(ny, [obs("2026-11-02T05:00:00Z")], "2026-11") == {"user": 29}
    # Spring forward: 2026-03-08 is a 23-hour day; its end is 04:00Z on the 9th.
    assert days_of(ny, [obs("2026-03-09T03:59:00Z")], "2026-03") == {"user": 24}
    assert days_of(ny, [obs("2026-03-09T04:00:00Z")], "2026-03") == {"user": 23}


def test_a_month_in_a_zone_whose_dst_skips_midnight_still_has_all_its_days():
    # America/Santiago springs forward at 00:00 (to 01:00) on 2026-09-06.
    result = invoice(plan(timezone="America/Santiago"), [obs("2026-08-01T12:00:00Z")], "2026-09")
    assert result["lines"][0]["days"] == 30 and result["lines"][0]["amount"] == "30.00"


def test_leap_february_has_29_days_and_prorates_by_29():
    result = invoice(plan(per_user_price="29.00"), [obs("2028-02-20T12:00:00Z")], "2028-02")
    assert result["days_in_period"] == 29 and result["lines"][0]["days"] == 10 and result["lines"][0]["amount"] == "10.00"


def test_observations_before_the_period_set_the_opening_state_and_after_it_are_ignored():
    history = [obs("2026-08-01T00:00:00Z", skus=["SPB"]), obs("2026-11-05T00:00:00Z")]
    assert days_of(plan(), history) == {"user": 31, "SPB": 31}


# --- items and rules ------------------------------------------------------------------------

def test_a_license_swap_bills_each_sku_for_its_own_days():
    history = [obs("2026-10-01T00:00:00Z", skus=["SPB"]), obs("2026-10-11T09:00:00Z", skus=["E3"])]
    assert days_of(plan(), history) == {"user": 31, "SPB": 10, "E3": 21}


def test_guests_do_not_count_for_the_per_user_fee_unless_the_plan_includes_them():
    guest = [obs("2026-10-01T00:00:00Z", user_type="Guest", skus=["SPB"])]
    assert days_of(plan(), guest) == {"SPB": 31}
    assert days_of(plan(include_guests=True), guest) == {"user": 31, "SPB": 31}


def test_a_disabled_account_keeps_paying_for_its_licenses_but_not_the_user_fee():
    history = [obs("2026-10-01T00:00:00Z", skus=["SPB"]), obs("2026-10-21T12:00:00Z", skus=["SPB"], enabled=False)]
    assert days_of(plan(), history) == {"user": 20, "SPB": 31}
    assert days_of(plan(include_disabled=True), history) == {"user": 31, "SPB": 31}


def test_re_enabling_a_disabled_account_resumes_the_user_fee():
    history = [obs("2026-10-01T00:00:00Z", enabled=False), obs("2026-10-22T12:00:00Z")]
    assert days_of(plan(), history) == {"user": 10}


def test_upn_patterns_exclude_matching_accounts_case_insensitively():
    the_plan = plan(exclude_upn_patterns=["svc-*", "*#EXT#*"])
    assert days_of(the_plan, [obs("2026-10-01T00:00:00Z", upn="SVC-backup@contoso.com", skus=["SPB"])]) == {"SPB": 31}
    assert days_of(the_plan, [obs("2026-10-01T00:00:00Z", upn="bob_fabrikam.com#ext#@contoso.com")]) == {}
    assert days_of(the_plan, [obs("2026-10-01T00:00:00Z", upn="service@contoso.com")]) == {"user": 31}


def test_require_license_counts_the_user_fee_only_while_a_sku_is_held():
    history = [obs("2026-10-01T00:00:00Z"), obs("2026-10-11T12:00:00Z", skus=["Unpriced"])]
    assert days_of(plan(require_license=True), history) == {"user": 21}


def test_deletion_stops_every_item_and_restoring_resumes_them():
    history = [obs("2026-10-01T00:00:00Z", skus=["SPB"]), obs("2026-10-11T12:00:00Z", skus=["SPB"], deleted=True),
               obs("2026-10-21T12:00:00Z", skus=["SPB"])]
    assert days_of(plan(), history) == {"user": 21, "SPB": 21}


def test_skus_not_in_the_plan_are_not_billed_and_guid_keys_match_any_case():
    the_plan = plan(sku_prices={"CBDBAF51-0000-4C3A-8D5B-0F3B7A9C1012": "12.00"})
    history = [obs("2026-10-01T00:00:00Z", skus=["cbdbaf51-0000-4c3a-8d5b-0f3b7a9c1012", "OTHER"])]
    assert days_of(the_plan, history) == {"user": 31, "CBDBAF51-0000-4C3A-8D5B-0F3B7A9C1012": 31}


def test_a_plan_without_a_per_user_price_has_no_user_lines():
    assert days_of(plan(per_user_price=None), [obs("2026-10-01T00:00:00Z", skus=["SPB"])]) == {"SPB": 31}


# --- currencies and invoice shape ----------------------------------------------------------

def test_yen_amounts_have_no_minor_digits():
    result = invoice(plan(currency="JPY", per_user_price="1200", sku_prices={}, tax_rate="0.10"),
                     [obs("2026-10-17T00:00:00Z")])
    assert result["lines"][0]["amount"] == "581"  # 1200 × 15 ÷ 31 = 580.6
    assert (result["subtotal"], result["tax"], result["total"]) == ("581", "58", "639")


def test_kuwaiti_dinar_amounts_have_three_minor_digits():
    result = invoice(plan(currency="KWD", per_user_price="9.5", sku_prices={}), [obs("2026-10-17T00:00:00Z")])
    assert result["lines"][0]["unit_price"] == "9.500" and result["lines"][0]["amount"] == "4.597"


def test_lines_are_sorted_by_display_name_then_upn_then_user_before_skus():
    history = [obs("2026-10-01T00:00:00Z", "u-2", name="Zoe Park", skus=["SPB", "E3"]),
               obs("2026-10-01T00:00:00Z", "u-1", name="Ann Lee", upn="anna@contoso.com"),
               obs("2026-10-01T00:00:00Z", "u-3", name="Ann Lee", upn="ann@contoso.com", skus=["SPB"])]
    result = invoice(plan(), history)
    assert [(l["display_name"], l["user_principal_name"], l["item"]) for l in result["lines"]] == [
        ("Ann Lee", "ann@contoso.com", "user"), ("Ann Lee", "ann@contoso.com", "SPB"),
        ("Ann Lee", "anna@contoso.com", "user"),
        ("Zoe Park", "u-2@contoso.com", "user"), ("Zoe Park", "u-2@contoso.com", "E3"),
        ("Zoe Park", "u-2@contoso.com", "SPB")]


def test_an_unsorted_input_gives_the_same_invoice_as_a_sorted_one():
    history = [obs("2026-10-01T00:00:00Z", skus=["SPB"]), obs("2026-10-09T12:00:00Z"),
               obs("2026-10-20T12:00:00Z", skus=["E3"]), obs("2026-10-03T00:00:00Z", "u-2")]
    assert invoice(plan(), list(reversed(history))) == invoice(plan(), history)


def test_ties_at_the_same_instant_keep_file_order():
    first, second = obs("2026-10-05T00:00:00Z", skus=["SPB"]), obs("2026-10-05T00:00:00Z", skus=["E3"])
    assert days_of(plan(), [first, second]) == {"user": 27, "E3": 27}
    assert days_of(plan(), [second, first]) == {"user": 27, "SPB": 27}


def test_an_invoice_without_lines_totals_zero():
    assert (invoice(plan(), [])["lines"], invoice(plan(), [])["total"]) == ([], "0.00")


# --- bad plans --------------------------------------------------------------------------------

@pytest.mark.parametrize("field, value, says", [
    ("currency", "XYZ", "unknown currency"),
    ("timezone", "Mars/Olympus", "unknown time zone"),
    ("per_user_price", "-1.00", "negative"),
    ("sku_prices", {"SPB": "-3"}, "negative"),
    ("tax_rate", "abc", "not a decimal"),
    ("proration", "hourly", "'daily' or 'none'"),
    ("colour", "red", "unknown plan field"),
    ("include_guests", "yes", "true or false"),
])
def test_a_bad_plan_names_the_field(field, value, says):
    data = {"tenant_id": "t", "name": "n", "currency": "USD", "timezone": "UTC", field: value}
    with pytest.raises(InputError) as caught:
        parse_plan(data, source="plan.json")
    assert caught.value.field.startswith(field) and says in str(caught.value) and "plan.json" in str(caught.value)


def test_json_numbers_in_a_plan_are_read_exactly_as_decimals():
    import json
    from decimal import Decimal
    data = json.loads('{"tenant_id": "t", "name": "n", "currency": "USD", "timezone": "UTC", "per_user_price": 0.1}',
                      parse_float=Decimal)
    assert parse_plan(data).per_user_price == Decimal("0.1")
