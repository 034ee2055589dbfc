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
    HELD = "held"  # numbered, rendered and stored, not emailed: a guardrail holds it until released
    IN_REVIEW = "in review"  # computed, kept a draft (no number) until REVIEW_DAYS after its month


FINISHED_STEPS = frozenset({Step.EMAILED, Step.NOTHING_TO_BILL, Step.HELD, Step.IN_REVIEW})
