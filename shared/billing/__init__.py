"""The pure billing core: plans, observations, holdings, proration and invoices.

It imports nothing of Azure, reads no clock and does no I/O. The month-end close in Azure and
`./dev quote` both call `compute_invoice`: one core, two doors.
"""
from shared.billing.errors import InputError
from shared.billing.invoice import Invoice, InvoiceLine, compute_invoice
from shared.billing.observations import Observation, parse_observation, parse_observations_jsonl
from shared.billing.period import Period
from shared.billing.plan import Plan, parse_plan

__all__ = [
    "InputError", "Invoice", "InvoiceLine", "compute_invoice", "Observation", "parse_observation",
    "parse_observations_jsonl", "Period", "Plan", "parse_plan",
]
