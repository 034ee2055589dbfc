"""The steps of an invoice's close, in order. The invoice record's `step` is the last one done."""
from __future__ import annotations

from enum import StrEnum


class Step(StrEnum):
    QUEUED = "queued"
    COMPUTED = "computed"
    NUMBERED = "numbered"
    RENDERED = "rendered"
    STORED = "stored"
    DRAFTED = "drafted"
    EMAILED = "emailed"
    NOTHING_TO_BILL = "nothing to bill"  # computed, with no billable line: no number, PDF or email


FINISHED_STEPS = frozenset({Step.EMAILED, Step.NOTHING_TO_BILL})
