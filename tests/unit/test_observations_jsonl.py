"""Reading observations JSONL: the file's order does not matter, omitted fields carry forward in
time order, and with several bad lines the error names the same line whatever the reader's speed-ups."""
from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings, strategies as st

from shared.billing import InputError, parse_observation, parse_observations_jsonl

USERS = ["u-1", "u-2", "u-3"]


@st.composite
def lines(draw):
    """Observations of a few users, some naming every field and some only a few, at instants that
    may repeat, in any order in the file."""
    result = []
    for _ in range(draw(st.integers(1, 12))):
        row = {"at": f"2026-10-{draw(st.integers(1, 4)):02d}T0{draw(st.integers(0, 2))}:00:00Z",
               "user_id": draw(st.sampled_from(USERS))}
        optional = {"user_principal_name": st.sampled_from(["", "a@x.com", "b@x.com"]),
                    "display_name": st.sampled_from(["", "Ann", "Bo"]),
                    "user_type": st.sampled_from(["Member", "Guest"]), "account_enabled": st.booleans(),
                    "skus": st.lists(st.sampled_from(["E3", "SPB", "EMS"]), max_size=3), "deleted": st.booleans()}
        for name, values in optional.items():
            if draw(st.booleans()):
                row[name] = draw(st.none() | values)
        result.append(row)
    return result


def read_one_by_one_in_time_order(rows):
    """What the file means: each user's lines in time order (ties in file order), each read with
    the observation before it."""
    order = sorted(range(len(rows)), key=lambda i: rows[i]["at"])
    previous, result = {}, [None] * len(rows)
    for i in order:
        result[i] = previous[rows[i]["user_id"]] = parse_observation(rows[i], previous.get(rows[i]["user_id"]))
    return result


@settings(max_examples=300, deadline=None)
@given(lines())
def test_omitted_fields_carry_forward_in_time_order_whatever_the_files_order(rows):
    read = parse_observations_jsonl([json.dumps(row) + "\n" for row in rows])
    assert read == read_one_by_one_in_time_order(rows)


def test_a_user_whose_lines_are_out_of_time_order_keeps_the_later_state_last():
    rows = [{"at": "2026-10-05T00:00:00Z", "user_id": "u-1", "deleted": True},
            {"at": "2026-10-01T00:00:00Z", "user_id": "u-1", "user_principal_name": "ann@x.com",
             "skus": ["SPB", "E3", "SPB"]}]
    later, earlier = parse_observations_jsonl([json.dumps(row) for row in rows])
    assert (earlier.skus, earlier.deleted) == (("E3", "SPB"), False)
    assert (later.user_principal_name, later.skus, later.deleted) == ("ann@x.com", ("E3", "SPB"), True)


GOOD = '{"at": "2026-10-01T00:00:00Z", "user_id": "u-1"}'


@pytest.mark.parametrize("text, says", [
    ('{"at": "2026-10-03T00:00:00Z", "user_id": 7}\n' + GOOD + "\n{oops\n",
     "obs line 3: not valid JSON"),
    ('{"at": "2026-10-03T00:00:00Z", "user_id": 7}\n{"user_id": "u-2"}\n',
     "obs line 2: field 'at': is required"),
    ('{"at": "2026-10-03T00:00:00Z", "user_id": 7}\n{"at": "2026-10-02T00:00:00Z", "skus": "E3", "user_id": "u"}\n',
     "obs line 2: field 'skus': must be a list, got 'E3'"),
    (GOOD + '\n{"at": "2026-10-01T00:00:00Z", "user_id": "u-1", "deleted": "yes"}\n',
     "obs line 2: field 'deleted': must be a bool, got 'yes'"),
    (GOOD + '\n[1, 2]\n', "obs line 2: an observation must be a JSON object"),
    (GOOD + '\n\ufeff' + GOOD + '\n', "obs line 2: not valid JSON (Unexpected UTF-8 BOM"),
    (GOOD + ' {"x": 1}\n', "obs line 1: not valid JSON (Extra data at column 50)"),
    (GOOD + '\n{"at": "2026-10-01T00:00:00Z", "user_id": "u-1", "colour": "red"}\n',
     "obs line 2: field 'colour': unknown observation field"),
])
def test_with_several_bad_lines_the_error_names_invalid_json_first_then_a_missing_time_then_the_earliest(text, says):
    with pytest.raises(InputError) as caught:
        parse_observations_jsonl(text.splitlines(keepends=True), source="obs")
    assert str(caught.value).startswith(says), str(caught.value)


def test_blank_lines_and_surrounding_spaces_are_read_as_before():
    read = parse_observations_jsonl(["\n", "  " + GOOD + " \t\n", "   \n", GOOD.replace("u-1", "u-2")])
    assert [o.user_id for o in read] == ["u-1", "u-2"]


def test_a_large_shuffled_file_reads_the_same_as_the_sorted_one():
    rnd = random.Random(3)
    rows = [{"at": f"2026-10-{day:02d}T00:00:00Z", "user_id": f"u-{user}", "deleted": day % 3 == 0,
             **({"user_principal_name": f"user{user}@x.com", "skus": ["E3"]} if day % 4 else {})}
            for user in range(50) for day in range(1, 29)]
    ordered = parse_observations_jsonl([json.dumps(row) for row in rows])
    shuffled = list(zip(rows, ordered))
    rnd.shuffle(shuffled)
    read = parse_observations_jsonl([json.dumps(row) for row, _ in shuffled])
    assert read == [observation for _, observation in shuffled]
