"""Prorata's domain errors: states of the world a person can act on, each in plain words.
(Bad input is shared.billing.InputError; Graph's refusals are shared.graph.gateway.GraphError.)"""
from __future__ import annotations


class ProrataError(Exception):
    """A domain state that stops an operation; `str()` is a reason for a person."""


class TenantNotOnboarded(ProrataError, KeyError):
    """The tenant id is not one of the MSP's clients (HTTP 404, exit 1)."""

    def __init__(self, tenant_id: str):
        super().__init__(tenant_id)
        self.tenant_id = tenant_id

    def __str__(self) -> str:
        return f"tenant {self.tenant_id} is not onboarded"


class CloseError(ProrataError, RuntimeError):
    """A close that cannot go on, with the reason in plain words."""


class Busy(ProrataError, RuntimeError):
    """Other writers kept changing the same records; the operation is retried later (the queue
    retries it)."""


class InvoiceNotFound(ProrataError, KeyError):
    """No invoice has this number (HTTP 404, exit 1)."""

    def __init__(self, number: str):
        super().__init__(number)
        self.number = number

    def __str__(self) -> str:
        return f"there is no invoice {self.number}"
