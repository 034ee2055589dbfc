"""The month-end close, split by concern:

- schedule.py: which month of a client is due (pure; the timers and ./dev close alike)
- runner.py: the step machine (a table of steps under a lease on the invoice record)
- service.py: CloseService: preview, the timers' fan-out, the steps, closing by hand
- reports.py: outcomes, sentences and run reports
"""
from shared.errors import CloseError
from shared.services.close.reports import (
    ALREADY_OUTCOME, EMAILED_OUTCOME, FAILED_OUTCOME, NOTHING_OUTCOME, Outcome, TenantOutcome, summary_text,
)
from shared.services.close.runner import CloseBusy, LeaseLost
from shared.services.close.schedule import bills_month, due_period, last_ended_month
from shared.services.close.service import CloseService, RunStarted

__all__ = ["ALREADY_OUTCOME", "EMAILED_OUTCOME", "FAILED_OUTCOME", "NOTHING_OUTCOME", "CloseBusy", "CloseError",
           "CloseService", "LeaseLost", "Outcome", "RunStarted", "TenantOutcome", "bills_month", "due_period",
           "last_ended_month", "summary_text"]
