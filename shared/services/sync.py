"""Turning Graph's view of a tenant's users into ledger records.

A delta query returns the users changed since the stored delta link (or all users, for the
baseline and after the link expired). One response may hold the same user several times, each
entry carrying only the changed properties (delta-query-overview): the entries are merged in
order onto a running state of each user (starting from the stored state), and the user's final
state is appended; the ledger appends only real changes, so replays and duplicates cost nothing.
Effective time: createdDateTime for a user the ledger has never seen, else the time observed.
"""
from __future__ import annotations

import logging
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Awaitable, Callable

from shared.billing import Observation
from shared.graph.gateway import DeltaExpired, DirectoryUser
from shared.messages import SyncRequest
from shared.services.notifications import MAX_TRACKED_USERS
from shared.ports import Clock, GraphPort, LedgerPort, SyncGatePort, TenantRepository

log = logging.getLogger("prorata.sync")


@dataclass(frozen=True)
class SyncReport:
    tenant_id: str
    name: str
    users_seen: int
    records: int
    full: bool
    skipped: str | None = None
    seen: frozenset[str] = field(default_factory=frozenset)  # the user ids Graph returned

    def sentence(self) -> str:
        if self.skipped:
            return f"Sync of {self.name or self.tenant_id}: skipped ({self.skipped})."
        kind = "full sync" if self.full else "delta sync"
        return (f"Sync of {self.name} ({self.tenant_id}): {kind}, {self.users_seen} user(s) reported by Graph, "
                f"{self.records} change(s) recorded in the ledger.")


def observe(user: DirectoryUser, previous: Observation | None, now: datetime,
            sku_names: dict[str, str]) -> Observation | None:
    """The observation a delta entry means, merged onto the user's stored state."""
    if user.removed:
        if previous is None or previous.deleted:
            return None
        return Observation(now, previous.user_id, previous.user_principal_name, previous.display_name,
                           previous.user_type, previous.account_enabled, previous.skus, True)
    p = user.properties
    at = now
    if previous is None and isinstance(p.get("createdDateTime"), datetime) and p["createdDateTime"] <= now:
        at = p["createdDateTime"]
    base = previous or Observation(at, user.user_id)
    skus = base.skus if "assignedLicenses" not in p else tuple(sku_names.get(s.lower(), s) for s in p["assignedLicenses"])
    upn = p.get("userPrincipalName", base.user_principal_name) or ""
    return Observation(at=at, user_id=user.user_id, user_principal_name=upn,
                       display_name=p.get("displayName", base.display_name) or upn or user.user_id,
                       user_type=p.get("userType", base.user_type) or "Member",
                       account_enabled=base.account_enabled if p.get("accountEnabled") is None else p["accountEnabled"],
                       skus=skus, deleted=False)


async def sync_tenant(tenant_id: str, *, tenants: TenantRepository, ledger: LedgerPort, graph: GraphPort,
                      clock: Clock) -> SyncReport:
    """Runs one delta (or full) sync of a tenant into the ledger, then stores the new link."""
    tenant = tenants.get(tenant_id)
    if tenant is None:
        return SyncReport(tenant_id, "", 0, 0, False, skipped="tenant is not onboarded")
    if tenant.status != "active":
        return SyncReport(tenant_id, tenant.name, 0, 0, False, skipped="tenant is offboarded")
    full = tenant.delta_link is None
    started = clock()
    try:
        result = await graph.delta(tenant_id, tenant.delta_link)
    except DeltaExpired:
        log.warning("Tenant %s (%s): the delta link has expired; running a full sync.", tenant.name, tenant_id)
        full = True
        result = await graph.delta(tenant_id, None)
    now = clock()
    sku_names = {k.lower(): v for k, v in tenant.sku_names.items()}
    assigned = {s.lower() for u in result.users for s in u.properties.get("assignedLicenses", [])}
    if assigned - set(sku_names):
        sku_names = {sku.sku_id.lower(): sku.part_number for sku in await graph.subscribed_skus(tenant_id)}
    known = ledger.current_states(tenant_id) if full else ledger.states_of(tenant_id, {u.user_id for u in result.users})
    running: dict[str, Observation] = {}  # each user's state after the entries merged so far
    for user in result.users:
        before = running.get(user.user_id)
        observation = observe(user, before or known.get(user.user_id), now, sku_names)
        if observation is None:
            continue
        if before is not None:  # the user's effective time is that of its first entry
            observation = replace(observation, at=before.at)
        running.pop(user.user_id, None)  # keep the order of the latest entry
        running[user.user_id] = observation
    observations = list(running.values())
    if full:  # whoever Graph no longer lists is gone
        listed = {u.user_id for u in result.users}
        for user_id, state in known.items():
            if user_id not in listed and not state.deleted:
                observations.append(Observation(now, user_id, state.user_principal_name, state.display_name,
                                                state.user_type, state.account_enabled, state.skus, True))
    records = ledger.append(tenant_id, observations, observed_at=now, source="full-sync" if full else "delta")
    tenants.update(tenant_id, delta_link=result.delta_link, sku_names=sku_names)
    seen = frozenset(u.user_id for u in result.users)
    _remember(tenant_id, started, seen)
    return SyncReport(tenant_id, tenant.name, len(result.users), records, full, seen=seen)


_recent: dict[str, deque[tuple[datetime, frozenset[str]]]] = {}
_recent_lock = threading.Lock()


def _remember(tenant_id: str, started: datetime, seen: frozenset[str]) -> None:
    """The users each delta of this process returned, by when it began (the last 50 per tenant),
    so that a request covered by another request's delta can tell whether its users showed."""
    with _recent_lock:
        _recent.setdefault(tenant_id, deque(maxlen=50)).append((started, seen))


def seen_since(tenant_id: str, since: datetime) -> set[str]:
    """Users returned by deltas of this process that began at or after `since`."""
    with _recent_lock:
        return {user for started, users in _recent.get(tenant_id, ()) if started >= since for user in users}


def latest_start(tenant_id: str) -> datetime | None:
    """When the latest finished delta of this process for the tenant began."""
    with _recent_lock:
        return max((started for started, _ in _recent.get(tenant_id, ())), default=None)


# Replication delay (graph-facts.md, delta-query-overview): a change can be notified before a
# delta shows it. A notification whose users did not show in the delta that followed is
# re-checked later, by a queue message made visible after each step of SYNC_RECHECK_SECONDS,
# before it counts as covered; the daily delta remains the last resort.
RECHECK = "recheck"
FOLLOW_UP = "follow-up"  # a trigger came while a delta ran: the next delta, in a message of its own


def unseen_users(request: SyncRequest, reports: list[SyncReport], requested_at: datetime | None = None) -> list[str]:
    """The notified users no delta since the request returned: neither these reports nor (when
    another request's delta covered this one) a delta of this process that began after it.
    Reports that skipped the tenant mean nothing is to be checked."""
    if any(r.skipped for r in reports):
        return []
    seen: set[str] = set()
    for report in reports:
        seen |= report.seen
    if requested_at is not None:
        seen |= seen_since(request.tenant_id, requested_at)
    return [user_id for user_id in request.user_ids if user_id not in seen]


def recheck_of(request: SyncRequest, missing: list[str], delays: list[int]) -> tuple[SyncRequest, int] | None:
    """The next re-check (request, seconds until its message is visible), or None after the last."""
    if not missing or request.recheck >= len(delays):
        return None
    # no received_at: the re-check runs a delta of its own (or joins one running), never "covered"
    return SyncRequest(request.tenant_id, RECHECK, user_ids=tuple(missing[:MAX_TRACKED_USERS]),
                       recheck=request.recheck + 1), delays[request.recheck]


async def run_sync_request(tenant_id: str, *, gate: SyncGatePort, clock: Clock,
                           run: Callable[[], Awaitable[SyncReport]],
                           requested_at: datetime | None = None,
                           follow_up: Callable[[], None] | None = None) -> list[SyncReport]:
    """Runs `run` (one sync) under the tenant's gate. Triggers that arrive meanwhile make it run
    again: at once, in a loop, or, given `follow_up`, through one follow-up call (a queue message)
    after the gate is handed over, so that a queue invocation never holds its message for more
    than one delta while other tenants' messages wait behind it."""
    from shared.storage.sync_gate import RUN

    owner = uuid.uuid4().hex
    decision = gate.acquire(tenant_id, owner, clock(), requested_at)
    if decision != RUN:
        log.debug("Tenant %s: trigger %s by a sync that is running or ran after it.", tenant_id, decision)
        return []
    reports = []
    try:
        while True:
            reports.append(await run())
            if follow_up is not None:
                if gate.hand_over(tenant_id, owner, clock()):
                    follow_up()
                return reports
            if not gate.release(tenant_id, owner, clock()):
                return reports
    except BaseException:
        gate.abandon(tenant_id, owner)
        raise
