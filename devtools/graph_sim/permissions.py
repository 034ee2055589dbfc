"""Graph's permission model for app-only calls, as strict as each API page's permissions table.

A token of the simulator (`sim-token.{tenant_id}`) carries the application permissions (the
`roles` claim) that an admin consented to in that tenant (`GraphSimulator.grant`). Mail calls
are allowed by such a tenant-wide grant or by an Exchange "RBAC for Applications" role
assignment scoped to the one mailbox (`GraphSimulator.grant_mailbox`): "These permission grants
are independent of the unscoped grants in Microsoft Entra ID"
(https://learn.microsoft.com/graph/auth-limit-mailbox-access).

Each operation lists, from its page, the least privileged application permission first, then
the higher privileged ones that also allow it. Anything else is a 403 shaped as Graph answers it.
"""
from __future__ import annotations

from dataclasses import dataclass

DOCS = "https://learn.microsoft.com/graph/api/"


@dataclass(frozen=True)
class Operation:
    name: str                   # the doc page's name, e.g. "user-delta"
    allowed: tuple[str, ...]    # application permissions; [0] is the least privileged
    kind: str                   # "directory" | "subscription" | "mail" (decides the 403's shape)

    @property
    def doc(self) -> str:
        return DOCS + self.name

    @property
    def least_privileged(self) -> str:
        return self.allowed[0]


_USER_READ = ("User.Read.All", "Directory.Read.All", "Directory.ReadWrite.All", "User.ReadWrite.All")

OPERATIONS: dict[str, Operation] = {op.name: op for op in (
    # user-list, user-get, user-delta: Application | User.Read.All | Directory.Read.All,
    # Directory.ReadWrite.All, User.ReadWrite.All
    Operation("user-list", _USER_READ, "directory"),
    Operation("user-get", _USER_READ, "directory"),
    Operation("user-delta", _USER_READ, "directory"),
    # subscribedsku-list: Application | LicenseAssignment.Read.All | Directory.Read.All,
    # Directory.ReadWrite.All, Organization.Read.All, Organization.ReadWrite.All
    Operation("subscribedsku-list", ("LicenseAssignment.Read.All", "Directory.Read.All", "Directory.ReadWrite.All",
                                     "Organization.Read.All", "Organization.ReadWrite.All"), "directory"),
    # subscription-post-subscriptions: the permission of the resource subscribed to; for /users
    # (change-notifications-overview's table) User.Read.All. Reading, updating, reauthorizing
    # and deleting a subscription need the same permission as creating it (subscription-get,
    # subscription-update, subscription-reauthorize, subscription-delete, subscription-list).
    Operation("subscription-post-subscriptions", _USER_READ, "subscription"),
    Operation("subscription-list", _USER_READ, "subscription"),
    Operation("subscription-get", _USER_READ, "subscription"),
    Operation("subscription-update", _USER_READ, "subscription"),
    Operation("subscription-reauthorize", _USER_READ, "subscription"),
    Operation("subscription-delete", _USER_READ, "subscription"),
    # user-sendmail and message-send: Application | Mail.Send
    Operation("user-sendmail", ("Mail.Send",), "mail"),
    Operation("message-send", ("Mail.Send",), "mail"),
    # user-post-messages: Application | Mail.ReadWrite
    Operation("user-post-messages", ("Mail.ReadWrite",), "mail"),
    # message-get: Application | Mail.ReadBasic.All | Mail.Read (Mail.ReadWrite is not listed)
    Operation("message-get", ("Mail.ReadBasic.All", "Mail.Read"), "mail"),
    # message-post-attachments: Application | Mail.ReadWrite
    Operation("message-post-attachments", ("Mail.ReadWrite",), "mail"),
    # attachment-createuploadsession: Application | Calendars.ReadWrite | Mail.ReadWrite; the
    # first is for event attachments: a message's attachment needs Mail.ReadWrite
    Operation("attachment-createuploadsession", ("Mail.ReadWrite",), "mail"),
)}


def denial(operation: Operation) -> tuple[str, str]:
    """Graph's 403 (code, message) for a call the token's permissions do not allow."""
    if operation.kind == "mail":
        # Exchange answers ErrorAccessDenied (e.g. microsoftgraph/microsoft-graph-docs#10880)
        return "ErrorAccessDenied", "Access is denied. Check credentials and try again."
    if operation.kind == "subscription":
        # subscriptions wrap the resource's answer (microsoftgraph/msgraph-sdk-dotnet#365)
        verb = {"subscription-post-subscriptions": "Create", "subscription-update": "Update",
                "subscription-delete": "Delete", "subscription-reauthorize": "Reauthorize"}.get(operation.name, "Get")
        return "ExtensionError", f"Operation: {verb}; Exception: [Status Code: Forbidden; Reason: Forbidden]"
    # Microsoft Entra directory calls (e.g. microsoftgraph/nodejs-apponlytoken-rest-sample#17)
    return "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
