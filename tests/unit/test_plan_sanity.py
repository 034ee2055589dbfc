"""Plan sanity: a plausible mistake is refused where it is entered, naming the field, and no
input makes `./dev quote` print a traceback or hang."""
from __future__ import annotations

import json
import time
from contextlib import redirect_stderr, redirect_stdout
from io import StringIO
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from devtools import cmd_quote
from shared.billing import InputError, Period, parse_plan
from shared.billing.limits import load_json

PLAN = {"tenant_id": "t-9", "name": "Fabrikam", "currency": "EUR", "timezone": "Europe/Berlin",
        "per_user_price": "12.50", "sku_prices": {"SPB": "20.60"}, "tax_rate": "0.19"}
LINE = {"at": "2026-10-14T15:03:00Z", "user_id": "u-1", "user_principal_name": "ann@fabrikam.de",
        "display_name": "Ann Lee", "skus": ["SPB"]}


def refusal(**overrides) -> InputError:
    with pytest.raises(InputError) as error:
        parse_plan({**PLAN, **overrides})
    return error.value


def test_a_tax_rate_typed_as_a_percentage_is_refused_with_the_fraction_it_meant():
    error = refusal(tax_rate="8.25")
    assert error.field == "tax_rate" and "8.25 looks like a percentage; did you mean 0.0825?" in str(error)
    assert refusal(tax_rate="1").field == "tax_rate"


@pytest.mark.parametrize("price, says", [
    ("1e26", "too large"), ("1000000000000", "too large"), ("1e-99999999", "too many decimals"),
    ("0.0000001", "too many decimals"), ("NaN", "not a finite number"), ("Infinity", "not a finite number"),
    ("-0.01", "must not be negative"), ("1" * 100, "not a decimal number"),
])
def test_prices_beyond_sane_bounds_are_refused_naming_the_field(price, says):
    error = refusal(sku_prices={"SPB": price})
    assert error.field == "sku_prices.SPB" and says in str(error), str(error)


def test_prices_at_the_bounds_are_accepted_and_trailing_zeros_do_not_count_as_decimals():
    plan = parse_plan({**PLAN, "per_user_price": "999999999999.999999", "sku_prices": {"SPB": "20.600000000"}})
    assert str(plan.per_user_price) == "999999999999.999999"


@pytest.mark.parametrize("overrides, field", [
    (dict(timezone="A" * 300), "timezone"), (dict(timezone="../../etc/passwd"), "timezone"),
    (dict(name="x" * 201), "name"), (dict(tenant_id="t\n1"), "tenant_id"),
    (dict(exclude_upn_patterns=["*"] * 101), "exclude_upn_patterns"),
    (dict(sku_prices={f"S{i}": "1" for i in range(201)}), "sku_prices"),
    (dict(sku_prices={"S" * 101: "1"}), "sku_prices key"),
])
def test_strings_and_collections_are_bounded(overrides, field):
    assert refusal(**overrides).field == field


@pytest.mark.parametrize("text", ["9999-12", "1999-12", "2200-01", "0000-01", "2026-10\n", "２０２６-10"])
def test_periods_outside_a_sane_range_are_refused_naming_the_period(text):
    with pytest.raises(InputError) as error:
        Period.parse(text)
    assert error.value.field == "period"


@pytest.mark.parametrize("text, says", [
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"), ('{"a":' * 40 + "1" + "}" * 40, "nested too deeply"),
    (b"\xff\xfe{}", "not UTF-8"), ('{"a": NaN}', "not valid JSON"), ('{"a": ' + "9" * 5000 + "}", "not valid JSON"),
])
def test_hostile_json_is_a_clear_error(text, says):
    with pytest.raises(InputError) as error:
        load_json(text)
    assert says in str(error.value)


# quote: never a traceback, never a hang ----------------------------------------------------------

def run_quote(tmp: Path, plan: bytes, observations: bytes, period: str) -> tuple[int, str, str, float]:
    (tmp / "plan.json").write_bytes(plan)
    (tmp / "obs.jsonl").write_bytes(observations)
    out, err = StringIO(), StringIO()
    started = time.monotonic()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = cmd_quote.main(["--plan", str(tmp / "plan.json"), "--observations", str(tmp / "obs.jsonl"),
                                   "--period", period])
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 2
    return code, out.getvalue(), err.getvalue(), time.monotonic() - started


HOSTILE_VALUES = st.one_of(
    st.sampled_from(["8.25", "1e26", "1e-99999999", "1e999999999", "-1", "NaN", "0.1", "", "A" * 300, None,
                     True, [], {}, "2026-10-15", "../x", "\x00", "Europe/Berlin", "9" * 80]),
    st.integers(-10**30, 10**30), st.text(max_size=40), st.floats(allow_nan=True, allow_infinity=True),
    st.recursive(st.none() | st.booleans() | st.text(max_size=5), lambda inner: st.lists(inner, max_size=3)
                 | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=10),
)
PLAN_FIELDS = st.sampled_from(list(PLAN) + ["proration", "versions", "include_guests", "exclude_upn_patterns", "extra"])


@st.composite
def plan_bytes(draw) -> bytes:
    kind = draw(st.sampled_from(["mutated", "mutated", "mutated", "versions", "deep", "bytes"]))
    if kind == "deep":
        depth = draw(st.integers(30, 200_000))
        return ('{"versions":' + "[" * depth + "]" * depth + "}").encode()
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    data = dict(PLAN)
    if kind == "versions":
        data["versions"] = [{"effective_from": draw(st.sampled_from(["2026-10-15", "2026-10-15", "9999-01-01", "x", 5])),
                             draw(st.sampled_from(["per_user_price", "sku_prices", "tax_rate", "zzz"])): draw(HOSTILE_VALUES)}
                            for _ in range(draw(st.integers(0, 3)))]
    for _ in range(draw(st.integers(1, 3))):
        data[draw(PLAN_FIELDS)] = draw(HOSTILE_VALUES)
    return json.dumps(data, default=str, allow_nan=True).encode()


@st.composite
def observation_bytes(draw) -> bytes:
    kind = draw(st.sampled_from(["good", "mutated", "mutated", "bytes", "deep"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "deep":
        return ("[" * 100_000 + "]" * 100_000 + "\n").encode()
    line = dict(LINE)
    if kind == "mutated":
        line[draw(st.sampled_from(list(LINE) + ["deleted", "account_enabled", "user_type"]))] = draw(st.one_of(
            HOSTILE_VALUES, st.sampled_from(["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "2026-10-14"])))
    return (json.dumps(line, default=str, allow_nan=True) + "\n").encode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow, HealthCheck.data_too_large])
@given(plan_bytes(), observation_bytes(),
       st.one_of(st.sampled_from(["2026-10", "9999-12", "0000-01", "2026-13", "1999-12", "2199-12", "x"]), st.text(max_size=12)))
def test_quote_answers_any_input_with_an_invoice_or_one_clear_line_within_seconds(tmp_path, plan, observations, period):
    code, out, err, seconds = run_quote(tmp_path, plan, observations, period)
    assert code in (0, 2), err
    assert seconds < 3, f"took {seconds:.1f} s"
    if code == 0:
        assert json.loads(out)["period"] == period and err == ""
    else:
        assert out == "" and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
