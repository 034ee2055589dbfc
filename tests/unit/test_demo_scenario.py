"""The demo's month plays in any month, February included."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from devtools.demo.scenario import plan_month


@pytest.mark.parametrize("year, month", [(2026, 2), (2028, 2), (2026, 4), (2026, 10)])
def test_every_event_of_the_demo_month_falls_inside_it_and_a_leaver_leaves_before_being_restored(year, month):
    played = plan_month(year, month)
    assert played.events
    left: dict[str, datetime] = {}
    for event in played.events:
        local = event.at.astimezone(ZoneInfo(event.client.plan["timezone"]))
        assert (local.year, local.month) == (year, month)
        if event.kind == "leave":
            left[event.person] = event.at
        if event.kind == "restore":
            assert left[event.person] < event.at
