"""Graph change-notification subscriptions that Prorata holds, one or more per client tenant.

Stored by shared/storage/subscriptions.py (table `subscriptions`, one row per subscription id).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Subscription:
    subscription_id: str
    tenant_id: str
    client_state: str
    expires_at: datetime
