"""Plan versions: a price or rule change at local midnight of a date, each day billed by the
version in force (the contract's "Price and rule changes: plan versions")."""
from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings, strategies as st

from shared.billing import InputError, Observation, Period, compute_invoice, parse_plan
from shared.billing.observations import parse_instant
from tests.unit.strategies import histories, periods, plan_data

BASE = {"tenant_id": "t-1", "name": "Contoso Ltd", "currency": "USD", "timezone": "America/New_York",
        "per_user_price": "30.00", "sku_prices": {"SPB": "22.00", "E3": "36.00"}, "tax_rate": "0.1"}


def plan(**overrides):
    return parse_plan({**BASE, **overrides})


def ann(at="2026-09-01T00:00:00Z", **fields):
    values = {"user_principal_name": "ann@contoso.com", "display_name": "Ann Lee", "skus": ("SPB",)}
    values.update(fields)
    return Observation(at=parse_instant(at), user_id="u-ann", **values)


def lines(the_plan, observations, period="2026-10"):
    invoice = compute_invoice(the_plan, observations, Period.parse(period)).to_json()
    return [(l["display_name"], l["item"], l["unit_price"], l["days"], l["amount"]) for l in invoice["lines"]]


def test_a_price_change_on_the_15th_gives_two_lines_14_days_old_and_17_days_new():
    versioned = plan(versions=[{"effective_from": "2026-10-15", "sku_prices": {"SPB": "24.00"}}])
    assert lines(versioned, [ann()]) == [
        ("Ann Lee", "user", "30.00", 31, "30.00"),
        ("Ann Lee", "SPB", "22.00", 14, "9.94"),    # 22 × 14 / 31 = 9.935… → 9.94
        ("Ann Lee", "SPB", "24.00", 17, "13.16"),   # 24 × 17 / 31 = 13.161… → 13.16
    ]


def test_a_version_takes_effect_at_local_midnight_not_utc_midnight():
    # New York is UTC−4 in October: the 15th begins at 04:00 UTC. A user who joins at 02:00 UTC on
    # the 15th joined on the 14th local, so the 14th is billed at the old price.
    versioned = plan(versions=[{"effective_from": "2026-10-15", "sku_prices": {"SPB": "24.00"}}])
    joined = ann(at="2026-10-15T02:00:00Z")
    assert [(item, price, days) for _, item, price, days, _ in lines(versioned, [joined]) if item == "SPB"] == [
        ("SPB", "22.00", 1), ("SPB", "24.00", 17)]


def test_a_sku_left_out_of_a_versions_map_is_no_longer_billed_from_that_date():
    versioned = plan(versions=[{"effective_from": "2026-10-21", "sku_prices": {"E3": "36.00"}}])
    assert [(item, days) for _, item, _, days, _ in lines(versioned, [ann(skus=("SPB", "E3"))])] == [
        ("user", 31), ("E3", 31), ("SPB", 20)]


def test_a_null_per_user_price_ends_the_fee_and_fields_not_set_keep_their_value():
    versioned = plan(versions=[{"effective_from": "2026-10-11", "per_user_price": None},
                               {"effective_from": "2026-10-21", "require_license": True}])
    # The per-user fee ended on the 11th; the later version does not bring it back.
    assert [(item, days) for _, item, _, days, _ in lines(versioned, [ann()])] == [("user", 10), ("SPB", 31)]


def test_a_rule_change_decides_which_days_count_for_the_fee():
    versioned = plan(versions=[{"effective_from": "2026-10-11", "include_guests": True}])
    guest = ann(user_type="Guest", skus=())
    assert [(item, days) for _, item, _, days, _ in lines(versioned, [guest])] == [("user", 21)]


def test_the_order_of_versions_in_the_file_does_not_matter():
    first = {"effective_from": "2026-10-10", "per_user_price": "31.00"}
    second = {"effective_from": "2026-10-20", "per_user_price": "32.00"}
    assert lines(plan(versions=[first, second]), [ann()]) == lines(plan(versions=[second, first]), [ann()])


def test_two_versions_with_the_same_price_make_one_line_and_prices_sort_by_first_day():
    versioned = plan(versions=[{"effective_from": "2026-10-10", "per_user_price": "25.00"},
                               {"effective_from": "2026-10-20", "per_user_price": "30.00"}])
    # 30.00 applies on 1–9 and 20–31 (9 + 12 = 21 days), 25.00 on 10–19: the 30.00 line first.
    assert [(item, price, days) for _, item, price, days, _ in lines(versioned, [ann(skus=())])] == [
        ("user", "30.00", 21), ("user", "25.00", 10)]


def test_none_proration_charges_the_price_in_force_on_the_last_day_held():
    versioned = plan(proration="none", versions=[{"effective_from": "2026-10-15", "per_user_price": "49.00"}])
    stays = ann(skus=())
    leaves = Observation(at=parse_instant("2026-10-10T12:00:00Z"), user_id="u-bob", user_principal_name="bob@c.com",
                         display_name="Bob", deleted=False)
    gone = Observation(at=parse_instant("2026-10-12T12:00:00Z"), user_id="u-bob", user_principal_name="bob@c.com",
                       display_name="Bob", deleted=True)
    assert [(name, price, days, amount) for name, _, price, days, amount in lines(versioned, [stays, leaves, gone])] == [
        ("Ann Lee", "49.00", 31, "49.00"), ("Bob", "30.00", 2, "30.00")]


def test_a_version_from_an_earlier_month_is_in_force_from_the_first_day():
    versioned = plan(versions=[{"effective_from": "2026-01-01", "per_user_price": "45.00"}])
    assert lines(versioned, [ann(skus=())]) == [("Ann Lee", "user", "45.00", 31, "45.00")]


def test_the_plan_with_versions_reads_back_equal_from_its_json():
    versioned = plan(versions=[{"effective_from": "2026-10-15", "sku_prices": {"SPB": "24.00"}, "per_user_price": None},
                               {"effective_from": "2026-11-01", "exclude_upn_patterns": ["svc-*"]}])
    assert parse_plan(versioned.to_dict()) == versioned
    assert versioned.to_dict()["versions"][0] == {"effective_from": "2026-10-15", "per_user_price": None,
                                                  "sku_prices": {"SPB": "24.00"}}


def test_a_plan_without_versions_is_still_accepted():
    assert plan().versions == ()


@pytest.mark.parametrize("versions, field, says", [
    ([{"effective_from": "2026-10-15", "per_user_price": "1"}, {"effective_from": "2026-10-15", "per_user_price": "2"}],
     "versions[1].effective_from", "the same date as versions[0]"),
    ([{"effective_from": "2026-13-01", "per_user_price": "1"}], "versions[0].effective_from", "not a calendar date"),
    ([{"effective_from": "15/10/2026", "per_user_price": "1"}], "versions[0].effective_from", "YYYY-MM-DD"),
    ([{"effective_from": "2026-10-15\n", "per_user_price": "1"}], "versions[0].effective_from", "YYYY-MM-DD"),
    ([{"effective_from": "9999-10-15", "per_user_price": "1"}], "versions[0].effective_from", "outside 2000..2199"),
    ([{"per_user_price": "1"}], "versions[0].effective_from", "is required"),
    ([{"effective_from": "2026-10-15", "discount": "1"}], "versions[0].discount", "unknown plan version field"),
    ([{"effective_from": "2026-10-15", "tax_rate": "0.2"}], "versions[0].tax_rate", "cannot change in a plan version"),
    ([{"effective_from": "2026-10-15", "currency": "EUR"}], "versions[0].currency", "cannot change in a plan version"),
    ([{"effective_from": "2026-10-15", "timezone": "UTC"}], "versions[0].timezone", "cannot change"),
    ([{"effective_from": "2026-10-15", "sku_prices": {"SPB": "-1"}}], "versions[0].sku_prices.SPB", "negative"),
    ([{"effective_from": "2026-10-15"}], "versions[0]", "must change at least one"),
    ("2026-10-15", "versions", "must be a list"),
    (["2026-10-15"], "versions[0]", "must be a JSON object"),
])
def test_bad_versions_are_refused_naming_the_field(versions, field, says):
    with pytest.raises(InputError) as error:
        plan(versions=versions)
    assert error.value.field == field and says in str(error.value), str(error.value)


# Invariants --------------------------------------------------------------------------------------

def _day_in(period: Period, draw) -> date:
    return period.first_day + timedelta(days=draw(st.integers(1, period.days - 1)))


@settings(max_examples=150, deadline=None)
@given(st.data(), plan_data(), periods)
def test_versions_that_take_effect_after_the_month_change_nothing(data, raw, period):
    history = data.draw(histories(period))
    later = period.next().first_day + timedelta(days=data.draw(st.integers(0, 400)))
    versioned = {**raw, "versions": [{"effective_from": later.isoformat(), "per_user_price": "999.00",
                                      "sku_prices": {}, "include_guests": not raw["include_guests"]}]}
    assert (compute_invoice(parse_plan(versioned), history, period).to_json()
            == compute_invoice(parse_plan(raw), history, period).to_json())


@settings(max_examples=150, deadline=None)
@given(st.data(), plan_data(), periods)
def test_a_version_before_the_month_bills_as_if_its_values_were_the_plans_own(data, raw, period):
    history = data.draw(histories(period))
    change = {"per_user_price": "12.34", "sku_prices": {"SPB": "5.00"}, "require_license": True}
    earlier = period.first_day - timedelta(days=data.draw(st.integers(0, 400)))
    versioned = {**raw, "versions": [{"effective_from": earlier.isoformat(), **change}]}
    fresh = compute_invoice(parse_plan({**raw, **change}), history, period).to_json()
    assert compute_invoice(parse_plan(versioned), history, period).to_json() == fresh


@settings(max_examples=150, deadline=None)
@given(st.data(), plan_data(), periods)
def test_splitting_a_month_at_a_version_with_the_same_prices_changes_nothing(data, raw, period):
    history = data.draw(histories(period))
    same = {name: raw[name] for name in data.draw(st.sets(st.sampled_from(
        ["per_user_price", "sku_prices", "include_guests", "require_license", "exclude_upn_patterns"]), min_size=1))}
    days = sorted(data.draw(st.sets(st.integers(1, period.days - 1), min_size=1, max_size=3)))
    versions = [{"effective_from": (period.first_day + timedelta(days=d)).isoformat(), **same} for d in days]
    assert (compute_invoice(parse_plan({**raw, "versions": versions}), history, period).to_json()
            == compute_invoice(parse_plan(raw), history, period).to_json())


@settings(max_examples=150, deadline=None)
@given(st.data(), plan_data(), periods)
def test_a_price_change_splits_days_without_losing_or_adding_any(data, raw, period):
    raw = {**raw, "proration": "daily"}
    history = data.draw(histories(period))
    day = _day_in(period, data.draw)
    versioned = {**raw, "versions": [{"effective_from": day.isoformat(), "per_user_price": "77.70",
                                      "sku_prices": {sku: "1.11" for sku in raw["sku_prices"]}}]}

    def days(invoice):
        totals: dict = {}
        for line in invoice.lines:
            totals[(line.user_id, line.item)] = totals.get((line.user_id, line.item), 0) + line.days
        return totals
    assert days(compute_invoice(parse_plan(versioned), history, period)) == days(compute_invoice(parse_plan(raw), history, period))
