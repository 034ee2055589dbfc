"""Every Microsoft Graph operation Prorata calls, and the application permission each needs.

One entry per GraphGateway method: the operations it sends (named as their pages under
https://learn.microsoft.com/graph/api/) with the least privileged application permission each
page lists. The deploy guide (docs/deploy.md) grants exactly the union of these, split by where
the grant lives:

- CLIENT_TENANT: consented by each client tenant's admin (and the MSP's own) to the
  multi-tenant app: directory reads, user delta and change-notification subscriptions;
- INVOICE_MAILBOX: in the MSP tenant only, with Exchange RBAC for Applications scoped to
  INVOICE_MAILBOX (never in the app registration, or every client's consent would grant mail
  access to its whole tenant).

The mail path needs Mail.ReadWrite (a draft, its attachments, the upload session) besides
Mail.Send because sending a draft is what makes the email exactly-once: a retry that sends the
recorded draft again gets 404 once it was sent (Exchange moves it out of Drafts under a new id),
whereas sendMail (Mail.Send alone) leaves nothing a retry could check.
"""
from __future__ import annotations

from dataclasses import dataclass

CLIENT_TENANT = "client tenant"
INVOICE_MAILBOX = "invoicing mailbox"


@dataclass(frozen=True)
class GraphCall:
    operation: str   # the Graph API page, e.g. "user-delta"
    permission: str  # the least privileged application permission that page lists
    where: str       # CLIENT_TENANT or INVOICE_MAILBOX


_DELTA = GraphCall("user-delta", "User.Read.All", CLIENT_TENANT)
_SKUS = GraphCall("subscribedsku-list", "LicenseAssignment.Read.All", CLIENT_TENANT)

GATEWAY_CALLS: dict[str, tuple[GraphCall, ...]] = {
    "delta": (_DELTA,),
    "subscribed_skus": (_SKUS,),
    "create_subscription": (GraphCall("subscription-post-subscriptions", "User.Read.All", CLIENT_TENANT),),
    "renew_subscription": (GraphCall("subscription-update", "User.Read.All", CLIENT_TENANT),),
    "reauthorize_subscription": (GraphCall("subscription-reauthorize", "User.Read.All", CLIENT_TENANT),),
    "delete_subscription": (GraphCall("subscription-delete", "User.Read.All", CLIENT_TENANT),),
    "create_draft": (GraphCall("user-post-messages", "Mail.ReadWrite", INVOICE_MAILBOX),
                     GraphCall("message-post-attachments", "Mail.ReadWrite", INVOICE_MAILBOX),
                     GraphCall("attachment-createuploadsession", "Mail.ReadWrite", INVOICE_MAILBOX)),
    "send_draft": (GraphCall("message-send", "Mail.Send", INVOICE_MAILBOX),),
}


def permissions_for(where: str) -> tuple[str, ...]:
    return tuple(sorted({call.permission for calls in GATEWAY_CALLS.values() for call in calls
                         if call.where == where}))


CLIENT_TENANT_PERMISSIONS = permissions_for(CLIENT_TENANT)      # User.Read.All, LicenseAssignment.Read.All
MAILBOX_PERMISSIONS = permissions_for(INVOICE_MAILBOX)          # Mail.ReadWrite, Mail.Send
