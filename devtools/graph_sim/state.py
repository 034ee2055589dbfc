"""The simulator's model: tenants, users, SKUs, delta cursors, subscriptions, mail.

Everything here runs under one re-entrant lock (`DirectoryState.lock`). Methods named like Graph
operations answer Graph-shaped JSON (dicts) or raise `GraphError`; the control methods raise
`ControlError` / `ControlNotFound`. Change notifications are built here, under the lock, in the
order the changes happen, and handed to the notifier (the delivery thread) without waiting.
"""
from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Iterable, Protocol
from urllib.parse import urlsplit

from .clock import SimClock, as_utc, graph_datetime, parse_graph_datetime
from .permissions import OPERATIONS, denial

MAX_SUBSCRIPTION_MINUTES = 41_760
USER_SUBSCRIPTION_QUOTA = 100
MAX_CLIENT_STATE = 128
DELTA_TOKEN_LIFETIME = timedelta(days=7)
REQUEST_BODY_LIMIT = 4 * 1024 * 1024
INLINE_ATTACHMENT_LIMIT = 3 * 1024 * 1024
UPLOAD_SESSION_MIN = 3 * 1024 * 1024
UPLOAD_SESSION_MAX = 150 * 1024 * 1024
UPLOAD_SESSION_LIFETIME = timedelta(hours=1)
DEFAULT_APPLICATION_ID = "5e3ce6c0-2b1f-4285-8d4b-75ee78787346"

# Every user property the simulator knows; $select of anything else is a 400, as in Graph.
USER_PROPERTIES = (
    "id", "displayName", "userPrincipalName", "mail", "userType", "accountEnabled",
    "assignedLicenses", "createdDateTime", "givenName", "surname", "jobTitle", "mobilePhone",
    "officeLocation", "preferredLanguage", "businessPhones", "department", "companyName",
    "usageLocation", "employeeId", "otherMails", "proxyAddresses", "onPremisesSyncEnabled",
    "deletedDateTime",
)
_PROPERTY_BY_LOWER = {name.lower(): name for name in USER_PROPERTIES}
# What Graph returns for a user without $select: notably NOT accountEnabled, userType,
# assignedLicenses or createdDateTime, which must be selected explicitly.
DEFAULT_USER_SELECT = (
    "businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone",
    "officeLocation", "preferredLanguage", "surname", "userPrincipalName", "id",
)
_EMPTY_LIST_PROPERTIES = {"businessPhones", "otherMails", "proxyAddresses"}
LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")
# change-notifications-lifecycle-events: "for Microsoft Entra ID resources (users, groups)
# only reauthorizationRequired" is sent.
USER_LIFECYCLE_EVENTS = ("reauthorizationRequired",)
SKU_APPLIES_TO = ("User", "Company")
SKU_CAPABILITY_STATUSES = ("Enabled", "Warning", "Suspended", "Deleted", "LockedOut")
# How a delta token that can no longer be used is answered (delta-query-overview, "Synchronization
# reset"; graph-facts.md): identity resources typically answer 400 syncStateNotFound; a 410 Gone,
# a 410 resyncRequired with a Location header to start over, and Directory_ExpiredPageToken exist too.
EXPIRY_FORMS = {
    "syncStateNotFound": (400, "syncStateNotFound", False),
    "gone": (410, "syncStateNotFound", False),
    "resyncRequired": (410, "resyncRequired", True),
    "Directory_ExpiredPageToken": (400, "Directory_ExpiredPageToken", False),
}


class GraphError(Exception):
    """An error answered on /v1.0 as `{"error": {"code", "message"}}`."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


class ControlError(ValueError):
    """A control call that makes no sense (unknown SKU, deleting a deleted user...)."""


class ControlNotFound(LookupError):
    """A control call naming a tenant, user or subscription that does not exist."""


class Notifier(Protocol):
    def publish(self, url: str, item: dict, kind: str) -> None: ...
    def dropped(self, url: str, item: dict, kind: str) -> None: ...


@dataclass
class Sku:
    sku_id: str
    part_number: str
    prepaid: dict[str, int]
    # subscribedsku resource: appliesTo "User" (assignable) or "Company" (company-wide, never a
    # user's licence); capabilityStatus Enabled, Warning, Suspended, Deleted or LockedOut
    applies_to: str = "User"
    capability_status: str = "Enabled"
    subscription_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class SimUser:
    id: str
    display_name: str
    upn: str
    mail: str | None
    user_type: str
    account_enabled: bool
    licenses: list[str]
    created: datetime
    status: str = "active"  # active | soft_deleted | hard_deleted
    deleted_at: datetime | None = None
    changed: dict[str, int] = field(default_factory=dict)  # property -> seq of its last change
    status_seq: int = 0  # seq of creation, soft delete, restore or hard delete

    def value(self, prop: str) -> Any:
        if prop == "id":
            return self.id
        if prop == "displayName":
            return self.display_name
        if prop == "userPrincipalName":
            return self.upn
        if prop == "mail":
            return self.mail
        if prop == "userType":
            return self.user_type
        if prop == "accountEnabled":
            return self.account_enabled
        if prop == "assignedLicenses":
            return [{"disabledPlans": [], "skuId": sku} for sku in self.licenses]
        if prop == "createdDateTime":
            return graph_datetime(self.created)
        if prop == "deletedDateTime":
            return graph_datetime(self.deleted_at) if self.deleted_at else None
        if prop in _EMPTY_LIST_PROPERTIES:
            return []
        return None

    def project(self, select: tuple[str, ...] | None) -> dict:
        props = select or DEFAULT_USER_SELECT
        out = {prop: self.value(prop) for prop in props}
        out.setdefault("id", self.id)
        return out

    def control_json(self) -> dict:
        out = self.project(USER_PROPERTIES[:8])
        out["status"] = self.status
        return out


@dataclass
class Draft:
    id: str
    mailbox_id: str
    message: dict  # normalised message (see DirectoryState._read_message)
    created: datetime


@dataclass
class UploadSession:
    id: str
    auth_token: str
    tenant_id: str
    draft_id: str
    name: str
    content_type: str
    is_inline: bool
    content_id: str | None
    size: int
    expires: datetime
    data: bytearray = field(default_factory=bytearray)


@dataclass
class Tenant:
    id: str
    name: str
    domain: str
    service_principal_id: str
    users: dict[str, SimUser] = field(default_factory=dict)
    skus: dict[str, Sku] = field(default_factory=dict)
    drafts: dict[str, Draft] = field(default_factory=dict)
    seq: int = 0
    delta_epoch: int = 0
    expiry_form: str = "syncStateNotFound"  # how invalidated tokens of this tenant are answered
    changes: list["Change"] = field(default_factory=list)  # every change in order, for delta rounds
    replay_next_delta: bool = False
    drop_next: int = 0
    roles: set[str] = field(default_factory=set)  # application permissions consented in the tenant
    mailbox_roles: dict[str, set[str]] = field(default_factory=dict)  # user id -> RBAC for Applications

    def bump(self) -> int:
        self.seq += 1
        return self.seq


@dataclass
class Change:
    """One directory change as delta rounds see it, once replicated (`visible_at`, monotonic)."""
    seq: int
    user_id: str
    kind: str                 # "full" (created, restored), "props" (updated), "removed"
    data: Any                 # props: {property: new value}; removed: "changed" or "deleted"
    before_status: str        # the user's status before it: active, soft_deleted, or absent
    before: dict[str, Any]    # props: {property: old value}
    visible_at: float


@dataclass
class Subscription:
    id: str
    tenant_id: str
    resource: str
    change_types: tuple[str, ...]
    notification_url: str
    lifecycle_url: str | None
    expiration: datetime
    client_state: str | None
    creator_id: str
    application_id: str
    reauthorization_required: bool = False

    def item_base(self) -> dict:
        return {
            "subscriptionId": self.id,
            "subscriptionExpirationDateTime": graph_datetime(self.expiration, fraction=True),
            "clientState": self.client_state,
        }

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.application_id,
            "changeType": ",".join(self.change_types),
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "notificationQueryOptions": None,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": graph_datetime(self.expiration, fraction=True),
            "creatorId": self.creator_id,
            "includeResourceData": False,
            "latestSupportedTlsVersion": "v1_2",
            "encryptionCertificate": None,
            "encryptionCertificateId": None,
            "notificationUrlAppId": None,
        }


@dataclass
class Cursor:
    kind: str  # "delta-page" | "delta" | "users-page"
    tenant_id: str
    select: tuple[str, ...] | None
    issued_at: datetime
    epoch: int
    since_seq: int = 0
    items: list[dict] | None = None
    offset: int = 0
    end_seq: int = 0
    page_size: int = 100


@dataclass
class SentAttachment:
    name: str
    content_type: str
    data: bytes
    is_inline: bool = False
    content_id: str | None = None

    def to_json(self, include_bytes: bool = False) -> dict:
        out = {"name": self.name, "contentType": self.content_type, "size": len(self.data),
               "isInline": self.is_inline, "contentId": self.content_id}
        if include_bytes:
            out["contentBytes"] = base64.b64encode(self.data).decode("ascii")
        return out


@dataclass
class SentMessage:
    id: str
    tenant_id: str
    mailbox: str  # the sending user's userPrincipalName
    sent_at: datetime
    subject: str
    body_content_type: str  # "html" | "text"
    body: str
    to: list[str]
    cc: list[str]
    bcc: list[str]
    attachments: list[SentAttachment]
    save_to_sent_items: bool = True
    via: str = "sendMail"  # or "draft" (created, uploaded, then sent)

    def to_json(self, include_bytes: bool = False) -> dict:
        return {
            "id": self.id, "tenantId": self.tenant_id, "mailbox": self.mailbox,
            "sentDateTime": graph_datetime(self.sent_at), "subject": self.subject,
            "body": {"contentType": self.body_content_type, "content": self.body},
            "to": list(self.to), "cc": list(self.cc), "bcc": list(self.bcc),
            "saveToSentItems": self.save_to_sent_items, "via": self.via,
            "attachments": [a.to_json(include_bytes) for a in self.attachments],
        }


def new_guid() -> str:
    return str(uuid.uuid4())


def _new_token() -> str:
    return secrets.token_urlsafe(32)


def _new_message_id() -> str:
    return "AAMkAGI2" + base64.urlsafe_b64encode(os.urandom(36)).decode("ascii") + "AAA="


def ci_get(obj: Any, key: str, default: Any = None) -> Any:
    """Case-insensitive member of a JSON object (Graph reads property names that way: the SDK
    sends `Message`/`SaveToSentItems`, the docs write `message`/`saveToSentItems`)."""
    if not isinstance(obj, dict):
        return default
    if key in obj:
        return obj[key]
    lower = key.lower()
    for name, value in obj.items():
        if name.lower() == lower:
            return value
    return default


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", ".", text.lower()).strip(".") or "user"


def _safe_file_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._ -]+", "_", name).strip(" .")
    return cleaned or "attachment"


class DirectoryState:
    def __init__(self, clock: SimClock, notifier: Notifier):
        self.lock = threading.RLock()
        self.clock = clock
        self.notifier = notifier
        self.application_id = DEFAULT_APPLICATION_ID
        self.outbox_dir: Path | None = None
        self.clear()

    def clear(self) -> None:
        """Forgets all tenants, subscriptions, tokens, drafts, messages and throttles."""
        with self.lock:
            self._clear()

    def _clear(self) -> None:
        self.delta_page_size = 100
        self.users_page_size = 100
        self.tenants: dict[str, Tenant] = {}
        self.replication_delay = 0.0  # seconds before delta shows a change (see _log_change)
        self.subscriptions: dict[str, Subscription] = {}
        self.cursors: dict[str, Cursor] = {}
        self.upload_sessions: dict[str, UploadSession] = {}
        self.outbox: list[SentMessage] = []
        self.throttles: list[dict] = []

    # ------------------------------------------------------------------ lookups
    def tenant(self, tenant_id: str) -> Tenant:
        tenant = self.tenants.get(tenant_id)
        if tenant is None:
            raise ControlNotFound(f"unknown tenant {tenant_id!r}")
        return tenant

    def knows_tenant(self, tenant_id: str) -> bool:
        with self.lock:
            return tenant_id in self.tenants

    def _user(self, tenant: Tenant, user_id: str) -> SimUser:
        user = tenant.users.get(user_id)
        if user is None or user.status == "hard_deleted":
            raise ControlNotFound(f"unknown user {user_id!r} in tenant {tenant.id}")
        return user

    def _sku(self, tenant: Tenant, sku: str) -> Sku:
        if sku in tenant.skus:
            return tenant.skus[sku]
        for candidate in tenant.skus.values():
            if candidate.part_number.lower() == sku.lower():
                return candidate
        raise ControlError(f"tenant {tenant.id} has no SKU {sku!r} (add it with add_sku first)")

    def _find_live_user(self, tenant: Tenant, key: str) -> SimUser | None:
        lower = key.lower()
        for user in tenant.users.values():
            if user.status != "active":
                continue
            if user.id == lower or user.upn.lower() == lower or (user.mail or "").lower() == lower:
                return user
        return None

    # ------------------------------------------------------------------ control: directory
    def add_tenant(self, tenant_id: str, name: str | None = None, domain: str | None = None,
                   roles: Iterable[str] = ()) -> dict:
        with self.lock:
            if tenant_id in self.tenants:
                raise ControlError(f"tenant {tenant_id} exists")
            if not tenant_id or "/" in tenant_id or " " in tenant_id:
                raise ControlError(f"bad tenant id {tenant_id!r}")
            name = name or f"Tenant {tenant_id[:8]}"
            domain = domain or f"{_slug(name).replace('.', '')}.onmicrosoft.com"
            self.tenants[tenant_id] = Tenant(tenant_id, name, domain, new_guid())
            self.grant(tenant_id, roles)
            return self.tenant_json(tenant_id)

    # ------------------------------------------------------------------ permissions
    @staticmethod
    def _known_permissions(permissions: Iterable[str]) -> set[str]:
        known = {p for op in OPERATIONS.values() for p in op.allowed}
        wanted = {str(p) for p in permissions}
        unknown = wanted - known
        if unknown:
            raise ControlError(f"unknown application permission(s) {sorted(unknown)}; the simulator knows {sorted(known)}")
        return wanted

    def grant(self, tenant_id: str, roles: Iterable[str]) -> list[str]:
        """Admin consent in the tenant: tokens for it carry these application permissions."""
        with self.lock:
            tenant = self.tenant(tenant_id)
            tenant.roles |= self._known_permissions(roles)
            return sorted(tenant.roles)

    def revoke(self, tenant_id: str, roles: Iterable[str]) -> list[str]:
        with self.lock:
            tenant = self.tenant(tenant_id)
            tenant.roles -= set(roles)
            return sorted(tenant.roles)

    def grant_mailbox(self, tenant_id: str, mailbox: str, roles: Iterable[str]) -> list[str]:
        """Exchange RBAC for Applications: `New-ManagementRoleAssignment -Role "Application
        Mail.Send" -CustomResourceScope` limited to one mailbox."""
        wanted = self._known_permissions(roles)
        if any(not p.startswith("Mail.") for p in wanted):
            raise ControlError("RBAC for Applications in Exchange grants mail permissions only")
        with self.lock:
            tenant = self.tenant(tenant_id)
            user = self._find_live_user(tenant, mailbox)
            if user is None:
                raise ControlNotFound(f"no mailbox {mailbox!r} in tenant {tenant_id}")
            held = tenant.mailbox_roles.setdefault(user.id, set())
            held |= wanted
            return sorted(held)

    def authorize(self, tenant_id: str, operation: str, mailbox: str | None = None) -> None:
        """Raises Graph's 403 unless the token (or, for mail, a mailbox-scoped role
        assignment) holds one of the permissions the operation's doc page lists."""
        op = OPERATIONS[operation]
        with self.lock:
            tenant = self.tenant(tenant_id)
            held = set(tenant.roles)
            if mailbox is not None:
                user = self._find_live_user(tenant, mailbox)
                if user is not None:
                    held |= tenant.mailbox_roles.get(user.id, set())
            if held.isdisjoint(op.allowed):
                code, message = denial(op)
                raise GraphError(403, code, message)

    def tenant_json(self, tenant_id: str) -> dict:
        with self.lock:
            t = self.tenant(tenant_id)
            return {"tenantId": t.id, "name": t.name, "domain": t.domain,
                    "users": sum(1 for u in t.users.values() if u.status == "active"),
                    "skus": [s.part_number for s in t.skus.values()], "roles": sorted(t.roles),
                    "mailboxRoles": {t.users[uid].upn: sorted(r) for uid, r in t.mailbox_roles.items()
                                     if uid in t.users}}

    def add_sku(self, tenant_id: str, part_number: str, prepaid: int | dict = 0,
                sku_id: str | None = None, *, applies_to: str = "User", capability_status: str = "Enabled") -> str:
        if applies_to not in SKU_APPLIES_TO:
            raise ControlError(f"appliesTo is one of {', '.join(SKU_APPLIES_TO)}")
        if capability_status not in SKU_CAPABILITY_STATUSES:
            raise ControlError(f"capabilityStatus is one of {', '.join(SKU_CAPABILITY_STATUSES)}")
        with self.lock:
            tenant = self.tenant(tenant_id)
            if any(s.part_number.lower() == part_number.lower() for s in tenant.skus.values()):
                raise ControlError(f"tenant {tenant_id} already has SKU {part_number}")
            sku = Sku(sku_id or new_guid(), part_number, self._prepaid(prepaid, {}), applies_to, capability_status)
            tenant.skus[sku.sku_id] = sku
            return sku.sku_id

    def set_sku_status(self, tenant_id: str, sku: str, capability_status: str) -> None:
        """A subscription lapsing: Warning (grace period), Suspended, Deleted, LockedOut."""
        if capability_status not in SKU_CAPABILITY_STATUSES:
            raise ControlError(f"capabilityStatus is one of {', '.join(SKU_CAPABILITY_STATUSES)}")
        with self.lock:
            self._sku(self.tenant(tenant_id), sku).capability_status = capability_status

    @staticmethod
    def _prepaid(value: int | dict, current: dict) -> dict:
        base = {"enabled": 0, "suspended": 0, "warning": 0, "lockedOut": 0}
        base.update(current)
        if isinstance(value, dict):
            for key, number in value.items():
                if key not in base:
                    raise ControlError(f"prepaid units have no {key!r} (enabled, suspended, warning, lockedOut)")
                base[key] = int(number)
        else:
            base["enabled"] = int(value)
        return base

    def set_prepaid_units(self, tenant_id: str, sku: str, enabled: int | None = None, *,
                          suspended: int | None = None, warning: int | None = None,
                          locked_out: int | None = None) -> dict:
        with self.lock:
            target = self._sku(self.tenant(tenant_id), sku)
            changes = {k: v for k, v in (("enabled", enabled), ("suspended", suspended),
                                         ("warning", warning), ("lockedOut", locked_out)) if v is not None}
            target.prepaid = self._prepaid(changes, target.prepaid)
            return dict(target.prepaid)

    def create_user(self, tenant_id: str, display_name: str, upn: str | None = None, *,
                    user_type: str = "Member", account_enabled: bool = True,
                    skus: Iterable[str] = (), created: datetime | None = None,
                    mail: str | None = None, user_id: str | None = None) -> str:
        if user_type not in ("Member", "Guest"):
            raise ControlError("user_type is Member or Guest")
        with self.lock:
            tenant = self.tenant(tenant_id)
            if upn is None:
                local = _slug(display_name)
                if user_type == "Guest":
                    mail = mail or f"{local}@guest.example"
                    upn = f"{mail.replace('@', '_')}#EXT#@{tenant.domain}"
                else:
                    upn = f"{local}@{tenant.domain}"
            if "@" not in upn:
                raise ControlError(f"a userPrincipalName needs a domain: {upn!r}")
            if any(u.upn.lower() == upn.lower() and u.status != "hard_deleted" for u in tenant.users.values()):
                raise ControlError(f"userPrincipalName {upn} is taken in tenant {tenant_id}")
            targets = [self._sku(tenant, s) for s in skus]
            if any(t.applies_to != "User" for t in targets):
                raise ControlError("a company-wide SKU (appliesTo Company) cannot be assigned to a user")
            sku_ids = [t.sku_id for t in targets]
            uid = user_id or new_guid()
            if uid in tenant.users:
                raise ControlError(f"user id {uid} exists")
            seq = tenant.bump()
            user = SimUser(
                id=uid, display_name=display_name, upn=upn,
                mail=mail if mail is not None else (upn if user_type == "Member" else None),
                user_type=user_type, account_enabled=bool(account_enabled),
                licenses=list(dict.fromkeys(sku_ids)),
                created=as_utc(created) if created else self.clock.now(), status_seq=seq,
            )
            tenant.users[uid] = user
            self._log_change(tenant, seq, uid, "full", before_status="absent")
            self._notify_change(tenant, user, "updated")
            return uid

    def _change(self, tenant_id: str, user_id: str, mutate) -> bool:
        """Applies `mutate(user)`, which returns the names of the properties it really changed,
        to a live user; bumps the change sequence of those properties and notifies."""
        with self.lock:
            tenant = self.tenant(tenant_id)
            user = self._user(tenant, user_id)
            if user.status != "active":
                raise ControlError(f"user {user_id} is deleted; restore it first")
            old = {prop: user.value(prop) for prop in USER_PROPERTIES}
            changed = list(mutate(user))
            if not changed:
                return False
            seq = tenant.bump()
            for prop in changed:
                user.changed[prop] = seq
            self._log_change(tenant, seq, user.id, "props", {prop: user.value(prop) for prop in changed},
                             before={prop: old[prop] for prop in changed})
            self._notify_change(tenant, user, "updated")
            return True

    def assign_license(self, tenant_id: str, user_id: str, sku: str) -> bool:
        with self.lock:
            target = self._sku(self.tenant(tenant_id), sku)
            if target.applies_to != "User":  # subscribedsku: only SKUs with appliesTo User are assignable
                raise ControlError(f"{target.part_number} applies to the company: it cannot be assigned to a user")
            sku_id = target.sku_id

            def mutate(user: SimUser) -> list[str]:
                if sku_id in user.licenses:
                    return []
                user.licenses.append(sku_id)
                return ["assignedLicenses"]
            return self._change(tenant_id, user_id, mutate)

    def remove_license(self, tenant_id: str, user_id: str, sku: str) -> bool:
        with self.lock:
            sku_id = self._sku(self.tenant(tenant_id), sku).sku_id

            def mutate(user: SimUser) -> list[str]:
                if sku_id not in user.licenses:
                    return []
                user.licenses.remove(sku_id)
                return ["assignedLicenses"]
            return self._change(tenant_id, user_id, mutate)

    def set_account_enabled(self, tenant_id: str, user_id: str, enabled: bool) -> bool:
        def mutate(user: SimUser) -> list[str]:
            if user.account_enabled == bool(enabled):
                return []
            user.account_enabled = bool(enabled)
            return ["accountEnabled"]
        return self._change(tenant_id, user_id, mutate)

    def update_user(self, tenant_id: str, user_id: str, *, display_name: str | None = None,
                    upn: str | None = None, mail: str | None = None,
                    user_type: str | None = None) -> bool:
        wanted = {"display_name": ("displayName", display_name), "upn": ("userPrincipalName", upn),
                  "mail": ("mail", mail), "user_type": ("userType", user_type)}
        if user_type is not None and user_type not in ("Member", "Guest"):
            raise ControlError("user_type is Member or Guest")

        def mutate(user: SimUser) -> list[str]:
            changed = []
            for attr, (prop, value) in wanted.items():
                if value is not None and getattr(user, attr) != value:
                    setattr(user, attr, value)
                    changed.append(prop)
            return changed
        with self.lock:
            if upn is not None:
                other = self._find_live_user(self.tenant(tenant_id), upn)
                if other is not None and other.id != user_id:
                    raise ControlError(f"userPrincipalName {upn} is taken")
            return self._change(tenant_id, user_id, mutate)

    def soft_delete_user(self, tenant_id: str, user_id: str) -> None:
        with self.lock:
            tenant = self.tenant(tenant_id)
            user = self._user(tenant, user_id)
            if user.status != "active":
                raise ControlError(f"user {user_id} is already deleted")
            user.status = "soft_deleted"
            user.deleted_at = self.clock.now()
            user.status_seq = tenant.bump()
            self._log_change(tenant, user.status_seq, user.id, "removed", "changed", before_status="active")
            self._notify_change(tenant, user, "updated")

    def restore_user(self, tenant_id: str, user_id: str) -> None:
        with self.lock:
            tenant = self.tenant(tenant_id)
            user = self._user(tenant, user_id)
            if user.status != "soft_deleted":
                raise ControlError(f"user {user_id} is not soft deleted")
            if self._find_live_user(tenant, user.upn) is not None:
                raise ControlError(f"userPrincipalName {user.upn} is taken by a live user")
            user.status = "active"
            user.deleted_at = None
            user.status_seq = tenant.bump()
            self._log_change(tenant, user.status_seq, user.id, "full", before_status="soft_deleted")
            self._notify_change(tenant, user, "updated")

    def hard_delete_user(self, tenant_id: str, user_id: str) -> None:
        with self.lock:
            tenant = self.tenant(tenant_id)
            user = self._user(tenant, user_id)
            before_status = user.status
            user.status = "hard_deleted"
            user.deleted_at = user.deleted_at or self.clock.now()
            user.status_seq = tenant.bump()
            self._log_change(tenant, user.status_seq, user.id, "removed", "deleted", before_status=before_status)
            self._notify_change(tenant, user, "deleted")

    def users_json(self, tenant_id: str, include_deleted: bool = True) -> list[dict]:
        with self.lock:
            return [u.control_json() for u in self.tenant(tenant_id).users.values()
                    if include_deleted or u.status == "active"]

    def _log_change(self, tenant: Tenant, seq: int, user_id: str, kind: str, data: Any = None, *,
                    before_status: str = "active", before: dict[str, Any] | None = None) -> None:
        """Records a change for delta queries. Replication delay (delta-query-overview: "a
        change notification ... the delta query might not return the change yet"; graph-facts.md):
        delta shows the change only `replication_delay` seconds after it, while its notification
        leaves at once."""
        tenant.changes.append(Change(seq, user_id, kind, data, before_status, dict(before or {}),
                                     time.monotonic() + self.replication_delay))

    def invalidate_delta_tokens(self, tenant_id: str, form: str = "syncStateNotFound") -> None:
        """Every delta and page token of the tenant becomes unusable, answered in `form` (one of
        EXPIRY_FORMS); tokens older than 7 days are answered that way too."""
        if form not in EXPIRY_FORMS:
            raise ControlError(f"expiry forms: {', '.join(EXPIRY_FORMS)}")
        with self.lock:
            tenant = self.tenant(tenant_id)
            tenant.delta_epoch += 1
            tenant.expiry_form = form

    def replay_next_delta(self, tenant_id: str) -> None:
        with self.lock:
            self.tenant(tenant_id).replay_next_delta = True

    def drop_next_notifications(self, tenant_id: str, count: int) -> None:
        with self.lock:
            self.tenant(tenant_id).drop_next += int(count)

    # ------------------------------------------------------------------ notifications
    def _live_subscriptions(self, tenant_id: str | None = None) -> list[Subscription]:
        now = self.clock.now()
        for sid in [s.id for s in self.subscriptions.values() if s.expiration <= now]:
            del self.subscriptions[sid]  # an expired subscription is gone, as in Graph
        return [s for s in self.subscriptions.values() if tenant_id is None or s.tenant_id == tenant_id]

    def _notify_change(self, tenant: Tenant, user: SimUser, change_type: str) -> None:
        for sub in self._live_subscriptions(tenant.id):
            if change_type not in sub.change_types:
                continue
            item = sub.item_base()
            item.update({
                "changeType": change_type,
                "resource": f"Users/{user.id}",
                "tenantId": tenant.id,
                "resourceData": {
                    "@odata.type": "#Microsoft.Graph.User",
                    "@odata.id": f"Users/{user.id}",
                    "id": user.id,
                    "organizationId": tenant.id,
                },
            })
            if tenant.drop_next > 0:
                tenant.drop_next -= 1
                self.notifier.dropped(sub.notification_url, item, "change")
            else:
                self.notifier.publish(sub.notification_url, item, "change")

    def send_lifecycle(self, subscription_id: str, event: str, *, unusual: bool = False) -> dict:
        """Sends a lifecycle notification. For /users Graph sends only reauthorizationRequired;
        `unusual=True` sends subscriptionRemoved or missed anyway, to test code that handles
        them in case they arrive."""
        if event not in LIFECYCLE_EVENTS:
            raise ControlError(f"lifecycle events: {', '.join(LIFECYCLE_EVENTS)}")
        with self.lock:
            sub = next((s for s in self._live_subscriptions() if s.id == subscription_id), None)
            if sub is None:
                raise ControlNotFound(f"no live subscription {subscription_id}")
            if event not in USER_LIFECYCLE_EVENTS and not unusual:
                raise ControlError(f"Graph sends /users subscriptions only {', '.join(USER_LIFECYCLE_EVENTS)} "
                                   "(change-notifications-lifecycle-events); pass unusual=True to send it anyway")
            if not sub.lifecycle_url:
                raise ControlError(f"subscription {subscription_id} has no lifecycleNotificationUrl")
            item = sub.item_base()
            item.update({"tenantId": sub.tenant_id, "lifecycleEvent": event})
            if event == "reauthorizationRequired":
                sub.reauthorization_required = True
            if event == "subscriptionRemoved":
                del self.subscriptions[sub.id]
            self.notifier.publish(sub.lifecycle_url, item, "lifecycle")
            return item

    # ------------------------------------------------------------------ Graph: users
    @staticmethod
    def parse_select(text: str | None) -> tuple[str, ...] | None:
        if text is None or not text.strip():
            return None
        out: list[str] = []
        for raw in text.split(","):
            name = raw.strip()
            canonical = _PROPERTY_BY_LOWER.get(name.lower())
            if canonical is None:
                raise GraphError(400, "Request_BadRequest",
                                 f"Could not find a property named '{name}' on type 'microsoft.graph.user'.")
            if canonical not in out:
                out.append(canonical)
        if "id" not in out:
            out.append("id")
        return tuple(out)

    def _new_cursor(self, cursor: Cursor) -> str:
        token = _new_token()
        self.cursors[token] = cursor
        return token

    def _delta_cursor(self, token: str, kind: str, tenant: Tenant, base: str) -> Cursor:
        cursor = self.cursors.get(token)
        if cursor is None or cursor.kind != kind or cursor.tenant_id != tenant.id:
            # an unknown token: users (identity resources) answer 400 syncStateNotFound
            self._expired(tenant, "syncStateNotFound", "the sync state behind this delta token is unknown", None, base)
        if cursor.epoch != tenant.delta_epoch:
            self._expired(tenant, tenant.expiry_form, "the sync state of this delta token was reset", cursor.select, base)
        if self.clock.now() - cursor.issued_at > DELTA_TOKEN_LIFETIME:
            self._expired(tenant, tenant.expiry_form, "the delta token is older than 7 days and has expired",
                          cursor.select, base)
        return cursor

    def _expired(self, tenant: Tenant, form: str, why: str, select: tuple[str, ...] | None, base: str) -> None:
        status, code, with_location = EXPIRY_FORMS[form]
        headers = {}
        if with_location:  # where to start over: a delta round without a token
            query = f"?$select={','.join(select)}" if select else ""
            headers["Location"] = f"{base}/users/delta(){query}"
        raise GraphError(status, code, f"{code}: {why}. Restart with a full synchronization "
                                       "(a delta request without a token).", headers)

    @staticmethod
    def _context(base: str, select: tuple[str, ...] | None) -> str:
        return f"{base}/$metadata#users({','.join(select)})" if select else f"{base}/$metadata#users"

    def users_delta(self, tenant_id: str, *, base: str, select_text: str | None = None,
                    skiptoken: str | None = None, deltatoken: str | None = None,
                    page_size: int | None = None) -> dict:
        with self.lock:
            tenant = self.tenant(tenant_id)
            now = self.clock.now()
            if skiptoken is not None:
                cursor = self._delta_cursor(skiptoken, "delta-page", tenant, base)
                return self._delta_page(tenant, cursor.items or [], cursor.offset, cursor.end_seq,
                                        cursor.select, page_size or cursor.page_size, cursor.issued_at, base)
            if deltatoken is not None and deltatoken.lower() == "latest":
                select = self.parse_select(select_text)
                token = self._new_cursor(Cursor("delta", tenant.id, select, now, tenant.delta_epoch,
                                                since_seq=tenant.seq))
                return {"@odata.context": self._context(base, select), "value": [],
                        "@odata.deltaLink": f"{base}/users/delta()?$deltatoken={token}"}
            if deltatoken is not None:
                cursor = self._delta_cursor(deltatoken, "delta", tenant, base)
                select = cursor.select
                items, end_seq = self._changes_since(tenant, cursor.since_seq, select)
                return self._delta_page(tenant, items, 0, end_seq, select,
                                        page_size or self.delta_page_size, now, base)
            select = self.parse_select(select_text)
            items, end_seq = self._replicated_users(tenant, select)
            return self._delta_page(tenant, items, 0, end_seq, select, page_size or self.delta_page_size, now, base)

    def _replicated_users(self, tenant: Tenant, select: tuple[str, ...] | None) -> tuple[list[dict], int]:
        """A round without a token: every live user as replicated so far (changes still inside
        the replication delay are undone, newest first), and the change sequence the next round
        starts after (before the first hidden change, so the next round brings it)."""
        now = time.monotonic()
        hidden = [c for c in tenant.changes if c.visible_at > now]
        status = {uid: u.status for uid, u in tenant.users.items()}
        overlay: dict[str, dict[str, Any]] = {}
        for change in reversed(hidden):
            if change.kind == "props":
                overlay.setdefault(change.user_id, {}).update(change.before)
            else:
                status[change.user_id] = change.before_status
        items = []
        for uid, user in tenant.users.items():
            if status[uid] != "active":
                continue
            entry = user.project(select)
            entry.update({prop: value for prop, value in overlay.get(uid, {}).items() if prop in entry})
            items.append(entry)
        end_seq = min(c.seq for c in hidden) - 1 if hidden else tenant.seq
        return items, end_seq

    def _delta_page(self, tenant: Tenant, items: list[dict], offset: int, end_seq: int,
                    select: tuple[str, ...] | None, size: int, round_started: datetime, base: str) -> dict:
        size = max(1, int(size))
        body: dict[str, Any] = {"@odata.context": self._context(base, select)}
        if offset + size < len(items):
            token = self._new_cursor(Cursor("delta-page", tenant.id, select, round_started,
                                            tenant.delta_epoch, items=items, offset=offset + size,
                                            end_seq=end_seq, page_size=size))
            body["@odata.nextLink"] = f"{base}/users/delta()?$skiptoken={token}"
        else:
            token = self._new_cursor(Cursor("delta", tenant.id, select, self.clock.now(),
                                            tenant.delta_epoch, since_seq=end_seq))
            body["@odata.deltaLink"] = f"{base}/users/delta()?$deltatoken={token}"
        body["value"] = items[offset:offset + size]
        return body

    def _changes_since(self, tenant: Tenant, since: int,
                       select: tuple[str, ...] | None) -> tuple[list[dict], int]:
        """The entries of an incremental round and the change sequence the next round starts
        after. As delta-query-overview says: a single entity may be contained several times in
        one response (once per change, in order), and an updated entry holds its id and the
        changed properties only; creation and restore give the whole user, removal `@removed`.
        Changes not yet replicated stay out, and the next round starts before the first of them
        (so some visible ones come again: replays happen)."""
        replay = tenant.replay_next_delta
        tenant.replay_next_delta = False
        tracked = set(select or DEFAULT_USER_SELECT)
        now = time.monotonic()
        entries: list[dict] = []
        hidden_from: int | None = None
        if replay:
            entries.extend(u.project(select) for u in tenant.users.values() if u.status == "active")
        for change in tenant.changes:
            if change.seq <= since:
                continue
            if change.visible_at > now:
                hidden_from = change.seq if hidden_from is None else min(hidden_from, change.seq)
                continue
            user = tenant.users[change.user_id]
            if change.kind == "removed":
                entries.append({"id": change.user_id, "@removed": {"reason": change.data}})
            elif change.kind == "full":
                if user.status == "active" and not replay:
                    entries.append(user.project(select))
            elif not replay:
                changed = {prop: value for prop, value in change.data.items() if prop in tracked}
                if changed:
                    entries.append({"id": change.user_id, **changed})
        end_seq = tenant.seq if hidden_from is None else hidden_from - 1
        return entries, end_seq

    def list_users(self, tenant_id: str, *, base: str, select_text: str | None = None,
                   top: str | None = None, skiptoken: str | None = None,
                   filter_text: str | None = None) -> dict:
        with self.lock:
            tenant = self.tenant(tenant_id)
            if skiptoken is not None:
                cursor = self.cursors.get(skiptoken)
                if cursor is None or cursor.kind != "users-page" or cursor.tenant_id != tenant.id:
                    raise GraphError(400, "Request_BadRequest", "The specified page token value has expired or is invalid.")
                items, offset, size, select = cursor.items or [], cursor.offset, cursor.page_size, cursor.select
            else:
                select = self.parse_select(select_text)
                size = self.users_page_size
                if top is not None:
                    if not top.isdigit() or not 1 <= int(top) <= 999:
                        raise GraphError(400, "Request_BadRequest", f"Invalid page size specified: '{top}'. Must be between 1 and 999 inclusive.")
                    size = int(top)
                match = compile_filter(filter_text)
                items = [u.project(select) for u in tenant.users.values()
                         if u.status == "active" and match(u)]
                offset = 0
            body: dict[str, Any] = {"@odata.context": self._context(base, select)}
            if offset + size < len(items):
                token = self._new_cursor(Cursor("users-page", tenant.id, select, self.clock.now(),
                                                tenant.delta_epoch, items=items, offset=offset + size,
                                                page_size=size))
                body["@odata.nextLink"] = f"{base}/users?$skiptoken={token}"
            body["value"] = items[offset:offset + size]
            return body

    def get_user(self, tenant_id: str, key: str, *, base: str, select_text: str | None = None) -> dict:
        with self.lock:
            tenant = self.tenant(tenant_id)
            select = self.parse_select(select_text)
            user = self._find_live_user(tenant, key)
            if user is None:
                raise GraphError(404, "Request_ResourceNotFound",
                                 f"Resource '{key}' does not exist or one of its queried reference-property objects are not present.")
            body = {"@odata.context": self._context(base, select) + "/$entity"}
            body.update(user.project(select))
            return body

    def subscribed_skus(self, tenant_id: str, *, base: str) -> dict:
        with self.lock:
            tenant = self.tenant(tenant_id)
            value = []
            for sku in tenant.skus.values():
                consumed = sum(1 for u in tenant.users.values()
                               if u.status == "active" and sku.sku_id in u.licenses)
                # subscribedsku resource: appliesTo, capabilityStatus, prepaidUnits
                # {enabled, suspended, warning, lockedOut}
                value.append({
                    "accountName": tenant.name, "accountId": tenant.id, "appliesTo": sku.applies_to,
                    "capabilityStatus": sku.capability_status, "consumedUnits": consumed,
                    "id": f"{tenant.id}_{sku.sku_id}", "skuId": sku.sku_id,
                    "skuPartNumber": sku.part_number, "subscriptionIds": [sku.subscription_id],
                    "prepaidUnits": dict(sku.prepaid), "servicePlans": [],
                })
            return {"@odata.context": f"{base}/$metadata#subscribedSkus", "value": value}

    # ------------------------------------------------------------------ Graph: subscriptions
    def check_new_subscription(self, tenant_id: str, body: Any) -> dict:
        """Validates a create request (everything but the handshake); returns the parameters."""
        if not isinstance(body, dict):
            raise GraphError(400, "BadRequest", "The request body must be a JSON object.")
        def text(name: str, required: bool = True) -> str | None:
            value = ci_get(body, name)
            if value is None or value == "":
                if required:
                    raise GraphError(400, "InvalidRequest", f"The '{name}' property is required.")
                return None
            if not isinstance(value, str):
                raise GraphError(400, "BadRequest", f"The '{name}' property must be a string.")
            return value
        change_text = text("changeType")
        resource = text("resource")
        notification_url = text("notificationUrl")
        lifecycle_url = text("lifecycleNotificationUrl", required=False)
        client_state = text("clientState", required=False)
        expiration_text = text("expirationDateTime")
        if ci_get(body, "includeResourceData") not in (None, False):
            raise GraphError(400, "ExtensionError",
                             "includeResourceData needs an encryption certificate; the simulator (like this app) does not use rich notifications.")
        if resource.strip("/").lower() != "users":
            raise GraphError(400, "InvalidRequest",
                             f"Resource '{resource}' is not supported by the Graph simulator (it knows /users).")
        change_types = tuple(c.strip() for c in change_text.split(",") if c.strip())
        if not change_types or any(c not in ("updated", "deleted") for c in change_types):
            raise GraphError(400, "InvalidRequest",
                             f"changeType '{change_text}' is not supported for users: use 'updated' and/or 'deleted'.")
        if client_state is not None and len(client_state) > MAX_CLIENT_STATE:
            raise GraphError(400, "InvalidRequest", "clientState must be at most 128 characters long.")
        for url in filter(None, (notification_url, lifecycle_url)):
            parts = urlsplit(url)
            if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
                raise GraphError(400, "InvalidRequest", f"The notification URL '{url}' is not a valid absolute URL.")
            # Graph requires https; the simulator also lets plain http reach this machine only
            if parts.scheme.lower() == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
                raise GraphError(400, "InvalidRequest", f"The notification URL '{url}' must use https.")
        expiration = self._check_expiration(expiration_text)
        with self.lock:
            self.tenant(tenant_id)
            if len(self._live_subscriptions(tenant_id)) >= USER_SUBSCRIPTION_QUOTA:
                raise GraphError(403, "ExtensionError",
                                 "Operation: Create; Exception: [Status Code: Forbidden; Reason: The number of subscriptions for '/users' has reached its limit of 100 for this application and tenant.]")
        return {"resource": resource, "change_types": change_types, "notification_url": notification_url,
                "lifecycle_url": lifecycle_url, "client_state": client_state, "expiration": expiration}

    def _check_expiration(self, text: str | None) -> datetime:
        try:
            expiration = parse_graph_datetime(text or "")
        except ValueError:
            raise GraphError(400, "BadRequest", f"Cannot convert '{text}' to an Edm.DateTimeOffset.") from None
        now = self.clock.now()
        if expiration <= now:
            raise GraphError(400, "ExtensionError", "Subscription expiration date must be in the future.")
        if expiration - now > timedelta(minutes=MAX_SUBSCRIPTION_MINUTES):
            raise GraphError(400, "ExtensionError",
                             f"Subscription expiration can only be {MAX_SUBSCRIPTION_MINUTES} minutes in the future.")
        return expiration

    def add_subscription(self, tenant_id: str, spec: dict, *, base: str) -> dict:
        with self.lock:
            tenant = self.tenant(tenant_id)
            if len(self._live_subscriptions(tenant_id)) >= USER_SUBSCRIPTION_QUOTA:
                raise GraphError(403, "ExtensionError", "The number of subscriptions for '/users' has reached its limit.")
            sub = Subscription(id=new_guid(), tenant_id=tenant_id, creator_id=tenant.service_principal_id,
                               application_id=self.application_id, **spec)
            self.subscriptions[sub.id] = sub
            return self._subscription_body(sub, base)

    @staticmethod
    def _subscription_body(sub: Subscription, base: str) -> dict:
        body = {"@odata.context": f"{base}/$metadata#subscriptions/$entity"}
        body.update(sub.to_json())
        return body

    def _live_subscription(self, tenant_id: str, subscription_id: str) -> Subscription:
        for sub in self._live_subscriptions(tenant_id):
            if sub.id == subscription_id:
                return sub
        raise GraphError(404, "ResourceNotFound", f"The object was not found. Subscription '{subscription_id}' does not exist or has expired.")

    def list_subscriptions(self, tenant_id: str, *, base: str) -> dict:
        with self.lock:
            return {"@odata.context": f"{base}/$metadata#subscriptions",
                    "value": [s.to_json() for s in self._live_subscriptions(tenant_id)]}

    def get_subscription(self, tenant_id: str, subscription_id: str, *, base: str) -> dict:
        with self.lock:
            return self._subscription_body(self._live_subscription(tenant_id, subscription_id), base)

    def renew_subscription(self, tenant_id: str, subscription_id: str, body: Any, *, base: str) -> dict:
        with self.lock:
            sub = self._live_subscription(tenant_id, subscription_id)
            if not isinstance(body, dict):
                raise GraphError(400, "BadRequest", "The request body must be a JSON object.")
            unknown = [k for k in body if k.lower() not in ("expirationdatetime", "@odata.type")]
            if unknown:
                raise GraphError(400, "InvalidRequest",
                                 f"The Graph simulator only updates expirationDateTime, not {', '.join(unknown)}.")
            sub.expiration = self._check_expiration(ci_get(body, "expirationDateTime"))
            return self._subscription_body(sub, base)

    def delete_subscription(self, tenant_id: str, subscription_id: str) -> None:
        with self.lock:
            sub = self._live_subscription(tenant_id, subscription_id)
            del self.subscriptions[sub.id]

    def reauthorize_subscription(self, tenant_id: str, subscription_id: str) -> None:
        with self.lock:
            self._live_subscription(tenant_id, subscription_id).reauthorization_required = False

    def subscriptions_json(self, tenant_id: str | None = None) -> list[dict]:
        with self.lock:
            out = []
            for sub in self._live_subscriptions(tenant_id):
                item = sub.to_json()
                item["tenantId"] = sub.tenant_id
                item["reauthorizationRequired"] = sub.reauthorization_required
                out.append(item)
            return out

    # ------------------------------------------------------------------ throttling
    def add_throttle(self, count: int, status: int = 429, retry_after: int = 1,
                     path_prefix: str | None = None) -> None:
        if status not in (429, 503):
            raise ControlError("throttle status is 429 or 503")
        prefix = None
        if path_prefix:
            prefix = "/" + path_prefix.strip("/")
            if prefix.lower().startswith("/v1.0"):
                prefix = prefix[5:] or "/"
        with self.lock:
            self.throttles.append({"remaining": int(count), "status": status,
                                   "retry_after": int(retry_after), "path_prefix": prefix})

    def take_throttle(self, path: str) -> dict | None:
        """`path` is relative to /v1.0 (e.g. `/users/delta()`)."""
        with self.lock:
            for rule in self.throttles:
                if rule["remaining"] <= 0:
                    continue
                prefix = rule["path_prefix"]
                if prefix and not path.lower().startswith(prefix.lower()):
                    continue
                rule["remaining"] -= 1
                self.throttles = [r for r in self.throttles if r["remaining"] > 0]
                return rule
            return None

    # ------------------------------------------------------------------ mail
    def _mailbox(self, tenant_id: str, key: str) -> tuple[Tenant, SimUser]:
        tenant = self.tenant(tenant_id)
        user = self._find_live_user(tenant, key)
        if user is None:
            raise GraphError(404, "ErrorInvalidUser", f"The requested user '{key}' is invalid.")
        return tenant, user

    def _read_message(self, message: Any, *, for_send: bool) -> dict:
        if not isinstance(message, dict):
            raise GraphError(400, "ErrorInvalidRequest", "The 'message' property is required and must be an object.")
        body = ci_get(message, "body") or {}
        content_type = str(ci_get(body, "contentType") or "text").lower()
        if content_type not in ("text", "html"):
            raise GraphError(400, "RequestBodyRead", f"The body contentType '{content_type}' is not 'text' or 'html'.")
        recipients: dict[str, list[dict]] = {}
        for key in ("toRecipients", "ccRecipients", "bccRecipients"):
            raw = ci_get(message, key) or []
            if not isinstance(raw, list):
                raise GraphError(400, "RequestBodyRead", f"'{key}' must be a collection of recipients.")
            parsed = []
            for entry in raw:
                email = ci_get(entry, "emailAddress") or {}
                address = ci_get(email, "address")
                if not isinstance(address, str) or not re.match(r"^[^@\s]+@[^@\s]+$", address):
                    raise GraphError(400, "ErrorInvalidRecipients", "At least one recipient isn't valid.")
                parsed.append({"emailAddress": {"address": address, "name": ci_get(email, "name") or address}})
            recipients[key] = parsed
        if for_send and not any(recipients.values()):
            raise GraphError(400, "ErrorInvalidRecipients",
                             "At least one recipient isn't valid., A message can't be sent because it contains no recipients.")
        attachments = [self._read_attachment(a) for a in (ci_get(message, "attachments") or [])]
        return {"subject": str(ci_get(message, "subject") or ""), "contentType": content_type,
                "content": str(ci_get(body, "content") or ""), **recipients, "attachments": attachments}

    @staticmethod
    def _read_attachment(raw: Any) -> SentAttachment:
        kind = str(ci_get(raw, "@odata.type") or "")
        if kind.lower() != "#microsoft.graph.fileattachment":
            raise GraphError(400, "RequestBodyRead",
                             f"Attachment type '{kind or '(none)'}' is not supported here: use '#microsoft.graph.fileAttachment'.")
        name = ci_get(raw, "name")
        encoded = ci_get(raw, "contentBytes")
        if not isinstance(name, str) or not name or not isinstance(encoded, str):
            raise GraphError(400, "RequestBodyRead", "A fileAttachment needs 'name' and 'contentBytes'.")
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise GraphError(400, "RequestBodyRead", f"contentBytes of '{name}' is not valid base64.") from None
        if len(data) > INLINE_ATTACHMENT_LIMIT:
            raise GraphError(413, "RequestEntityTooLarge",
                             f"The attachment '{name}' is larger than 3 MB: attach it through an upload session.")
        return SentAttachment(name=name, content_type=str(ci_get(raw, "contentType") or "application/octet-stream"),
                              data=data, is_inline=bool(ci_get(raw, "isInline") or False),
                              content_id=ci_get(raw, "contentId"))

    def _deliver(self, tenant: Tenant, user: SimUser, message: dict, save: bool, via: str) -> SentMessage:
        def addresses(key: str) -> list[str]:
            return [r["emailAddress"]["address"] for r in message.get(key, [])]
        sent = SentMessage(
            id=new_guid(), tenant_id=tenant.id, mailbox=user.upn, sent_at=self.clock.now(),
            subject=message["subject"], body_content_type=message["contentType"], body=message["content"],
            to=addresses("toRecipients"), cc=addresses("ccRecipients"), bcc=addresses("bccRecipients"),
            attachments=list(message["attachments"]), save_to_sent_items=save, via=via,
        )
        self.outbox.append(sent)
        if self.outbox_dir is not None:
            write_message_files(self.outbox_dir, len(self.outbox), sent)
        return sent

    def send_mail(self, tenant_id: str, mailbox: str, body: Any) -> SentMessage:
        if not isinstance(body, dict):
            raise GraphError(400, "BadRequest", "The request body must be a JSON object.")
        with self.lock:
            tenant, user = self._mailbox(tenant_id, mailbox)
            message = self._read_message(ci_get(body, "message"), for_send=True)
            save = ci_get(body, "saveToSentItems")
            return self._deliver(tenant, user, message, True if save is None else bool(save), "sendMail")

    def _draft_json(self, draft: Draft, user: SimUser, base: str) -> dict:
        m = draft.message
        return {
            "@odata.context": f"{base}/$metadata#users('{user.id}')/messages/$entity",
            "id": draft.id, "createdDateTime": graph_datetime(draft.created),
            "lastModifiedDateTime": graph_datetime(draft.created), "isDraft": True,
            "subject": m["subject"], "body": {"contentType": m["contentType"], "content": m["content"]},
            "hasAttachments": bool(m["attachments"]),
            "from": {"emailAddress": {"address": user.mail or user.upn, "name": user.display_name}},
            "toRecipients": m.get("toRecipients", []), "ccRecipients": m.get("ccRecipients", []),
            "bccRecipients": m.get("bccRecipients", []),
        }

    def create_draft(self, tenant_id: str, mailbox: str, body: Any, *, base: str) -> dict:
        with self.lock:
            tenant, user = self._mailbox(tenant_id, mailbox)
            draft = Draft(_new_message_id(), user.id, self._read_message(body, for_send=False), self.clock.now())
            tenant.drafts[draft.id] = draft
            return self._draft_json(draft, user, base)

    def _draft(self, tenant_id: str, mailbox: str, message_id: str) -> tuple[Tenant, SimUser, Draft]:
        tenant, user = self._mailbox(tenant_id, mailbox)
        draft = tenant.drafts.get(message_id)
        if draft is None or draft.mailbox_id != user.id:
            raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        return tenant, user, draft

    def get_draft(self, tenant_id: str, mailbox: str, message_id: str, *, base: str) -> dict:
        with self.lock:
            _, user, draft = self._draft(tenant_id, mailbox, message_id)
            return self._draft_json(draft, user, base)

    def add_draft_attachment(self, tenant_id: str, mailbox: str, message_id: str, body: Any, *, base: str) -> dict:
        with self.lock:
            _, user, draft = self._draft(tenant_id, mailbox, message_id)
            attachment = self._read_attachment(body)
            draft.message["attachments"].append(attachment)
            return {"@odata.context": f"{base}/$metadata#users('{user.id}')/messages('{draft.id}')/attachments/$entity",
                    "@odata.type": "#microsoft.graph.fileAttachment", "id": _new_message_id(),
                    "name": attachment.name, "contentType": attachment.content_type,
                    "size": len(attachment.data), "isInline": attachment.is_inline}

    def create_upload_session(self, tenant_id: str, mailbox: str, message_id: str, body: Any, *, root: str) -> dict:
        with self.lock:
            tenant, user, draft = self._draft(tenant_id, mailbox, message_id)
            item = ci_get(body, "AttachmentItem")
            if not isinstance(item, dict):
                raise GraphError(400, "ErrorInvalidRequest", "The 'AttachmentItem' parameter is required.")
            if str(ci_get(item, "attachmentType") or "file").lower() != "file":
                raise GraphError(400, "ErrorInvalidRequest", "The simulator supports attachmentType 'file' only.")
            name, size = ci_get(item, "name"), ci_get(item, "size")
            if not isinstance(name, str) or not name or not isinstance(size, int) or isinstance(size, bool):
                raise GraphError(400, "ErrorInvalidRequest", "AttachmentItem needs 'name' and an integer 'size'.")
            if size < UPLOAD_SESSION_MIN:
                raise GraphError(400, "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize",
                                 "Attachment size must be at least 3 MB for an upload session; attach smaller files with a POST to attachments.")
            if size > UPLOAD_SESSION_MAX:
                raise GraphError(400, "ErrorAttachmentSizeExceeded", "An attachment can be at most 150 MB.")
            session = UploadSession(
                id=_new_message_id(), auth_token=_new_token(), tenant_id=tenant.id, draft_id=draft.id,
                name=name, content_type=str(ci_get(item, "contentType") or "application/octet-stream"),
                is_inline=bool(ci_get(item, "isInline") or False), content_id=ci_get(item, "contentId"),
                size=size, expires=self.clock.now() + UPLOAD_SESSION_LIFETIME,
            )
            self.upload_sessions[session.id] = session
            url = (f"{root}/api/v2.0/Users('{user.id}@{tenant.id}')/Messages('{draft.id}')"
                   f"/AttachmentSessions('{session.id}')?authtoken={session.auth_token}")
            return {"@odata.context": f"{root}/v1.0/$metadata#microsoft.graph.uploadSession",
                    "uploadUrl": url, "expirationDateTime": graph_datetime(session.expires, fraction=True),
                    "nextExpectedRanges": ["0-"]}

    def _upload_session(self, session_id: str, auth_token: str | None) -> UploadSession:
        session = self.upload_sessions.get(session_id)
        if session is None or session.expires <= self.clock.now():
            self.upload_sessions.pop(session_id, None)
            raise GraphError(404, "ErrorItemNotFound", "The upload session was not found or has expired.")
        if not auth_token or not secrets.compare_digest(auth_token, session.auth_token):
            raise GraphError(401, "InvalidAuthenticationToken", "The upload URL's authtoken is missing or wrong.")
        return session

    def upload_chunk(self, session_id: str, auth_token: str | None, content_range: str | None,
                     data: bytes, *, root: str) -> tuple[int, dict, dict | None]:
        """Returns (status, headers, JSON body or None)."""
        with self.lock:
            session = self._upload_session(session_id, auth_token)
            m = re.match(r"^\s*bytes\s+(\d+)-(\d+)/(\d+)\s*$", content_range or "")
            if not m:
                raise GraphError(400, "ErrorInvalidRequest", "A Content-Range header 'bytes {start}-{end}/{total}' is required.")
            start, end, total = (int(g) for g in m.groups())
            if total != session.size:
                raise GraphError(400, "ErrorInvalidRequest",
                                 f"Content-Range total {total} differs from the session's size {session.size}.")
            if end < start or end >= total:
                raise GraphError(400, "ErrorInvalidRequest", f"Content-Range {start}-{end} is not inside 0-{total - 1}.")
            if len(data) != end - start + 1:
                raise GraphError(400, "ErrorInvalidRequest",
                                 f"The body has {len(data)} bytes but Content-Range announces {end - start + 1}.")
            if start != len(session.data):
                raise GraphError(416, "ErrorInvalidRange",
                                 f"Bytes must be uploaded in order: the next expected range starts at {len(session.data)}.")
            session.data.extend(data)
            if len(session.data) < session.size:
                return 200, {}, {"@odata.context": f"{root}/api/v2.0/$metadata#AttachmentSessions/$entity",
                                 "ExpirationDateTime": graph_datetime(session.expires, fraction=True),
                                 "nextExpectedRanges": [str(len(session.data))]}
            tenant = self.tenant(session.tenant_id)
            draft = tenant.drafts.get(session.draft_id)
            del self.upload_sessions[session.id]
            if draft is None:
                raise GraphError(404, "ErrorItemNotFound", "The message of this upload session is gone.")
            draft.message["attachments"].append(SentAttachment(
                name=session.name, content_type=session.content_type, data=bytes(session.data),
                is_inline=session.is_inline, content_id=session.content_id))
            attachment_id = _new_message_id()
            user = tenant.users[draft.mailbox_id]
            location = (f"{root}/api/v2.0/Users('{user.id}@{tenant.id}')/Messages('{draft.id}')"
                        f"/Attachments('{attachment_id}')")
            return 201, {"Location": location}, None

    def cancel_upload(self, session_id: str, auth_token: str | None) -> None:
        with self.lock:
            session = self._upload_session(session_id, auth_token)
            del self.upload_sessions[session.id]

    def send_draft(self, tenant_id: str, mailbox: str, message_id: str) -> SentMessage:
        with self.lock:
            tenant, user, draft = self._draft(tenant_id, mailbox, message_id)
            if not any(draft.message.get(k) for k in ("toRecipients", "ccRecipients", "bccRecipients")):
                raise GraphError(400, "ErrorInvalidRecipients",
                                 "At least one recipient isn't valid., A message can't be sent because it contains no recipients.")
            del tenant.drafts[draft.id]
            return self._deliver(tenant, user, draft.message, True, "draft")

    def outbox_json(self, include_bytes: bool = False, tenant_id: str | None = None) -> list[dict]:
        with self.lock:
            return [m.to_json(include_bytes) for m in self.outbox if tenant_id is None or m.tenant_id == tenant_id]

    def export_outbox(self, folder: str | os.PathLike) -> list[str]:
        with self.lock:
            messages = list(self.outbox)
        return [str(write_message_files(Path(folder), i, m)) for i, m in enumerate(messages, start=1)]


# ---------------------------------------------------------------------- filters for GET /users
_CLAUSE = re.compile(
    r"^\s*(?:(?P<prop>\w+)\s+(?P<op>eq|ne)\s+(?P<value>'(?:[^']|'')*'|true|false|null|[0-9a-fA-F-]{36})"
    r"|startswith\(\s*(?P<sprop>\w+)\s*,\s*(?P<svalue>'(?:[^']|'')*')\s*\))\s*$",
    re.I,
)


def compile_filter(text: str | None):
    """A small part of OData $filter: `prop eq|ne value` and `startswith(prop,'x')`, joined with
    `and`. Anything else is refused loudly rather than ignored."""
    if text is None or not text.strip():
        return lambda user: True
    tests = []
    for clause in re.split(r"\s+and\s+", text.strip(), flags=re.I):
        m = _CLAUSE.match(clause)
        if not m:
            raise GraphError(400, "Request_UnsupportedQuery",
                             f"The Graph simulator supports only 'prop eq value', 'prop ne value' and startswith(prop,'x') joined by 'and' in $filter, not: {clause!r}.")
        prop_name = m.group("prop") or m.group("sprop")
        prop = _PROPERTY_BY_LOWER.get(prop_name.lower())
        if prop is None:
            raise GraphError(400, "Request_BadRequest",
                             f"Could not find a property named '{prop_name}' on type 'microsoft.graph.user'.")
        raw = m.group("value") or m.group("svalue")
        if raw.startswith("'"):
            value: Any = raw[1:-1].replace("''", "'")
        elif raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        elif raw.lower() == "null":
            value = None
        else:
            value = raw
        op = (m.group("op") or "startswith").lower()
        tests.append((prop, op, value))

    def match(user: SimUser) -> bool:
        for prop, op, value in tests:
            actual = user.value(prop)
            if isinstance(actual, str) and isinstance(value, str):
                actual, value_cmp = actual.lower(), value.lower()
            else:
                value_cmp = value
            if op == "eq" and actual != value_cmp:
                return False
            if op == "ne" and actual == value_cmp:
                return False
            if op == "startswith" and not (isinstance(actual, str) and actual.startswith(value_cmp)):
                return False
        return True
    return match


def write_message_files(folder: Path, number: int, message: SentMessage) -> Path:
    """Writes one sent message as `NNNN-<subject>/message.json` (an .eml-like JSON with the
    headers and body), `body.html` or `body.txt`, and the attachments as files."""
    folder = Path(folder)
    target = folder / f"{number:04d}-{_safe_file_name(message.subject)[:40] or 'message'}"
    target.mkdir(parents=True, exist_ok=True)
    files = []
    used: set[str] = set()
    for attachment in message.attachments:
        name = _safe_file_name(attachment.name)
        stem, dot, ext = name.rpartition(".")
        counter = 1
        while name.lower() in used:
            counter += 1
            name = f"{stem}-{counter}.{ext}" if dot else f"{ext}-{counter}"
        used.add(name.lower())
        (target / name).write_bytes(attachment.data)
        files.append(name)
    body_name = "body.html" if message.body_content_type == "html" else "body.txt"
    (target / body_name).write_text(message.body, encoding="utf-8")
    record = message.to_json()
    for entry, file_name in zip(record["attachments"], files):
        entry["file"] = file_name
    record["bodyFile"] = body_name
    (target / "message.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    return target
