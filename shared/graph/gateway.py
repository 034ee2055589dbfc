"""Everything Prorata asks of Microsoft Graph, through msgraph-sdk, one client per tenant.

The tenant id is an explicit argument on every call; the client for a tenant signs in to that
tenant. Errors from Graph surface as GraphError with Graph's status and code.
"""
from __future__ import annotations

import json
import threading

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from shared.settings import Settings

USER_FIELDS = ["id", "displayName", "userPrincipalName", "mail", "userType", "accountEnabled",
               "assignedLicenses", "createdDateTime"]
# Attachments (attachment-createuploadsession, message-post-attachments): a file of 3 MB or more
# goes through an upload session; a smaller one rides in a JSON request, base64 (4/3 of its
# size), and Graph's 4 MB limit applies to that whole request body.
INLINE_ATTACHMENT_LIMIT = 3 * 1024 * 1024
REQUEST_BODY_LIMIT = 4 * 1024 * 1024
JSON_ALLOWANCE = 8 * 1024  # property names, recipients, subject around the encoded content
UPLOAD_CHUNK = 4 * 320 * 1024  # upload-session chunks are multiples of 320 KiB


class GraphError(RuntimeError):
    def __init__(self, status: int | None, code: str | None, message: str):
        super().__init__(f"Graph answered {status or '?'} {code or ''}: {message}".strip())
        self.status, self.code = status, code


class DeltaExpired(GraphError):
    """The stored delta link (or a page link) can no longer be used: a full sync is needed."""


# Every way Graph says "start over" (delta-query-overview; graph-facts.md): users usually answer
# 400 syncStateNotFound; a 410 Gone (with or without a Location to a fresh round), resyncRequired
# and Directory_ExpiredPageToken exist too.
DELTA_EXPIRED_CODES = frozenset({"syncStateNotFound", "resyncRequired", "Directory_ExpiredPageToken"})


@dataclass(frozen=True)
class DirectoryUser:
    """One user from a delta page: the properties present in it, or removed."""
    user_id: str
    properties: dict[str, Any]
    removed: str | None = None  # "changed" (soft deleted) or "deleted" (gone for good)


@dataclass(frozen=True)
class DeltaResult:
    users: list[DirectoryUser]
    delta_link: str


@dataclass(frozen=True)
class SkuInfo:
    sku_id: str
    part_number: str
    consumed_units: int
    enabled_units: int
    applies_to: str = "User"            # "Company": a company-wide SKU, never a user's seat
    capability_status: str = "Enabled"  # Warning / Suspended / LockedOut: the subscription is lapsing
    warning_units: int = 0              # prepaidUnits.warning, .suspended, .lockedOut
    suspended_units: int = 0
    locked_out_units: int = 0


@dataclass(frozen=True)
class Attachment:
    name: str
    content_type: str
    data: bytes


def _wrap(error: Exception) -> GraphError:
    status = getattr(error, "response_status_code", None)
    detail = getattr(error, "error", None)
    code = getattr(detail, "code", None)
    message = getattr(detail, "message", None) or str(error)
    kind = DeltaExpired if status == 410 or code in DELTA_EXPIRED_CODES else GraphError
    return kind(status, code, message)


_ssl_lock = threading.Lock()
_ssl: Any = None


def _ssl_context() -> Any:
    """The process's SSL context for Graph (httpx's defaults: certifi's CA bundle), made once;
    an ssl.SSLContext may serve any number of connections on any thread."""
    global _ssl
    with _ssl_lock:
        if _ssl is None:
            import httpx
            _ssl = httpx.create_ssl_context()
        return _ssl


class GraphGateway:
    def __init__(self, settings: Settings, credential_factory: Callable[[str], Any] | None = None):
        from shared.graph.credentials import credential_for

        self._settings = settings
        self._credential_factory = credential_factory or (lambda tenant: credential_for(settings, tenant))
        self._clients: dict[str, Any] = {}

    def client(self, tenant_id: str) -> Any:
        if tenant_id not in self._clients:
            import httpx
            from kiota_authentication_azure.azure_identity_authentication_provider import (
                AzureIdentityAuthenticationProvider,
            )
            from kiota_http.kiota_client_factory import DEFAULT_CONNECTION_TIMEOUT, DEFAULT_REQUEST_TIMEOUT
            from msgraph import GraphRequestAdapter, GraphServiceClient
            from msgraph.graph_request_adapter import options
            from msgraph_core import GraphClientFactory

            # As GraphServiceClient(credentials, scopes) builds it, but on the process's one SSL
            # context: building one (the CA bundle) is nearly all of a client's cost, and an
            # httpx client (its connections) belongs to one event loop, so each loop has its own.
            http = httpx.AsyncClient(timeout=httpx.Timeout(DEFAULT_REQUEST_TIMEOUT, connect=DEFAULT_CONNECTION_TIMEOUT),
                                     http2=True, verify=_ssl_context())
            http = GraphClientFactory.create_with_default_middleware(client=http, options=options)
            auth = AzureIdentityAuthenticationProvider(self._credential_factory(tenant_id),
                                                       scopes=["https://graph.microsoft.com/.default"])
            client = GraphServiceClient(request_adapter=GraphRequestAdapter(auth, client=http))
            client.request_adapter.base_url = self._settings.require("GRAPH_BASE_URL").rstrip("/")
            self._clients[tenant_id] = client
        return self._clients[tenant_id]

    async def _call(self, awaitable: Any) -> Any:
        from kiota_abstractions.api_error import APIError

        try:
            return await awaitable
        except APIError as error:
            raise _wrap(error) from None

    # --- users -------------------------------------------------------------------------------
    async def delta(self, tenant_id: str, delta_link: str | None) -> DeltaResult:
        """All pages of a delta query: from scratch without a link, else the changes since it.

        The pages go through msgraph-sdk's request builders and middleware (auth, retries on 429
        and 503 with Retry-After, redirects) but are read as plain JSON: kiota's model
        deserialisation costs about a millisecond per user and 40 MB on first use, and the sync
        needs only a few properties of each user."""
        from kiota_abstractions.base_request_configuration import RequestConfiguration
        from msgraph.generated.models.o_data_errors.o_data_error import ODataError
        from msgraph.generated.users.delta.delta_request_builder import DeltaRequestBuilder

        client = self.client(tenant_id)
        errors = {"XXX": ODataError}
        if delta_link:
            info = client.users.delta.with_url(delta_link).to_get_request_information()
        else:
            query = DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters(select=USER_FIELDS)
            info = client.users.delta.to_get_request_information(RequestConfiguration(query_parameters=query))
        users: list[DirectoryUser] = []
        while True:
            page = json.loads(await self._call(client.request_adapter.send_primitive_async(info, "bytes", errors)))
            users.extend(_directory_user(entry) for entry in page.get("value") or [])
            if page.get("@odata.nextLink"):
                info = client.users.delta.with_url(page["@odata.nextLink"]).to_get_request_information()
                continue
            if not page.get("@odata.deltaLink"):
                raise GraphError(None, None, "delta query ended without a deltaLink")
            return DeltaResult(users=users, delta_link=page["@odata.deltaLink"])

    async def subscribed_skus(self, tenant_id: str) -> list[SkuInfo]:
        result = await self._call(self.client(tenant_id).subscribed_skus.get())
        def units(sku: Any, name: str) -> int:
            return int(getattr(sku.prepaid_units, name, None) or 0) if sku.prepaid_units else 0

        return [SkuInfo(sku_id=str(sku.sku_id), part_number=sku.sku_part_number or str(sku.sku_id),
                        consumed_units=sku.consumed_units or 0, enabled_units=units(sku, "enabled"),
                        applies_to=sku.applies_to or "User", capability_status=sku.capability_status or "Enabled",
                        warning_units=units(sku, "warning"), suspended_units=units(sku, "suspended"),
                        locked_out_units=units(sku, "locked_out"))
                for sku in result.value or []]

    # --- subscriptions -----------------------------------------------------------------------
    async def create_subscription(self, tenant_id: str, *, notification_url: str, lifecycle_url: str,
                                  expires_at: datetime, client_state: str) -> tuple[str, datetime]:
        from msgraph.generated.models.subscription import Subscription

        body = Subscription(change_type="updated,deleted", resource="/users", notification_url=notification_url,
                            lifecycle_notification_url=lifecycle_url, expiration_date_time=expires_at,
                            client_state=client_state)
        created = await self._call(self.client(tenant_id).subscriptions.post(body))
        return created.id, created.expiration_date_time or expires_at

    async def renew_subscription(self, tenant_id: str, subscription_id: str, expires_at: datetime) -> datetime:
        from msgraph.generated.models.subscription import Subscription

        updated = await self._call(self.client(tenant_id).subscriptions.by_subscription_id(subscription_id)
                                   .patch(Subscription(expiration_date_time=expires_at)))
        return updated.expiration_date_time or expires_at

    async def reauthorize_subscription(self, tenant_id: str, subscription_id: str) -> None:
        await self._call(self.client(tenant_id).subscriptions.by_subscription_id(subscription_id).reauthorize.post())

    async def delete_subscription(self, tenant_id: str, subscription_id: str) -> None:
        await self._call(self.client(tenant_id).subscriptions.by_subscription_id(subscription_id).delete())

    # --- mail --------------------------------------------------------------------------------
    async def create_draft(self, tenant_id: str, mailbox: str, *, subject: str, html: str, to: list[str],
                           cc: list[str], bcc: list[str], attachments: list[Attachment]) -> str:
        """Creates the message as a draft in the mailbox (attachments included, large ones through
        an upload session) and returns its id; send_draft sends it. Two steps, so that a retry
        can tell a message that was sent from one that was not."""
        from msgraph.generated.models.body_type import BodyType
        from msgraph.generated.models.email_address import EmailAddress
        from msgraph.generated.models.file_attachment import FileAttachment
        from msgraph.generated.models.item_body import ItemBody
        from msgraph.generated.models.message import Message
        from msgraph.generated.models.o_data_errors.o_data_error import ODataError
        from msgraph.generated.models.recipient import Recipient

        def recipients(addresses: list[str]) -> list[Recipient]:
            return [Recipient(email_address=EmailAddress(address=a)) for a in addresses]

        inline, separate, sessions = plan_attachments(len(json.dumps(html)) + len(json.dumps(subject)), attachments)
        message = Message(subject=subject, body=ItemBody(content_type=BodyType.Html, content=html),
                          to_recipients=recipients(to), cc_recipients=recipients(cc), bcc_recipients=recipients(bcc),
                          attachments=[FileAttachment(odata_type="#microsoft.graph.fileAttachment", name=a.name,
                                                      content_type=a.content_type, content_bytes=a.data)
                                       for a in inline])
        client = self.client(tenant_id)
        messages = client.users.by_user_id(mailbox).messages
        # The answer is read as plain JSON, as the delta's pages are: only the draft's id is
        # needed, and kiota's Message deserialisation costs about 10 ms of CPU per message.
        answer = await self._call(client.request_adapter.send_primitive_async(
            _expanded(client, messages.to_post_request_information(message)), "bytes", {"XXX": ODataError}))
        draft_id = str(json.loads(answer)["id"])
        for attachment in separate:  # each in a request of its own, under 4 MB encoded
            await self._call(messages.by_message_id(draft_id).attachments.post(FileAttachment(
                odata_type="#microsoft.graph.fileAttachment", name=attachment.name,
                content_type=attachment.content_type, content_bytes=attachment.data)))
        for attachment in sessions:
            await self._upload_attachment(tenant_id, mailbox, draft_id, attachment)
        return draft_id

    async def _upload_attachment(self, tenant_id: str, mailbox: str, message_id: str, attachment: Attachment) -> None:
        import httpx
        from msgraph.generated.models.attachment_item import AttachmentItem
        from msgraph.generated.models.attachment_type import AttachmentType
        from msgraph.generated.users.item.messages.item.attachments.create_upload_session.create_upload_session_post_request_body import (  # noqa: E501
            CreateUploadSessionPostRequestBody,
        )

        body = CreateUploadSessionPostRequestBody(attachment_item=AttachmentItem(
            attachment_type=AttachmentType.File, name=attachment.name, size=len(attachment.data),
            content_type=attachment.content_type))
        session = await self._call(self.client(tenant_id).users.by_user_id(mailbox).messages
                                   .by_message_id(message_id).attachments.create_upload_session.post(body))
        total = len(attachment.data)
        async with httpx.AsyncClient(timeout=60) as http:  # the upload URL carries its own authorisation
            for start in range(0, total, UPLOAD_CHUNK):
                chunk = attachment.data[start:start + UPLOAD_CHUNK]
                # attachment-createuploadsession: no Authorization header on the upload URL;
                # Content-Type application/octet-stream and Content-Range are required
                response = await http.put(session.upload_url, content=chunk, headers={
                    "Content-Range": f"bytes {start}-{start + len(chunk) - 1}/{total}",
                    "Content-Type": "application/octet-stream", "Content-Length": str(len(chunk))})
                if response.status_code not in (200, 201):
                    raise GraphError(response.status_code, None, f"attachment upload failed: {response.text[:200]}")

    async def send_draft(self, tenant_id: str, mailbox: str, message_id: str) -> None:
        from msgraph.generated.models.o_data_errors.o_data_error import ODataError

        client = self.client(tenant_id)
        send = client.users.by_user_id(mailbox).messages.by_message_id(message_id).send
        await self._call(client.request_adapter.send_no_response_content_async(
            _expanded(client, send.to_post_request_information()), {"XXX": ODataError}))


def _expanded(client: Any, info: Any) -> Any:
    """The request with its URL expanded once: kiota expands a request's URL template again at
    every read of `url` (three per request, a third of a request's CPU for a message id). Its
    parameters are copied first: they are its request builder's own, which setting `url` clears."""
    info.path_parameters = {**info.path_parameters, "baseurl": client.request_adapter.base_url}
    info.query_parameters = dict(info.query_parameters)
    info.url = info.url
    return info


def encoded_size(size: int) -> int:
    """Bytes of `size` bytes once base64-encoded."""
    return 4 * ((size + 2) // 3)


def plan_attachments(text_size: int, attachments: list[Attachment]) -> tuple[list[Attachment], list[Attachment],
                                                                               list[Attachment]]:
    """(inline in the draft, posted one by one, through upload sessions): 3 MB and more need an
    upload session; the rest go inline while the draft's JSON body stays under 4 MB, smallest
    first, and the others are posted alone to the draft's attachments."""
    sessions = [a for a in attachments if len(a.data) >= INLINE_ATTACHMENT_LIMIT]
    inline: list[Attachment] = []
    separate: list[Attachment] = []
    body = text_size + JSON_ALLOWANCE
    for attachment in sorted((a for a in attachments if len(a.data) < INLINE_ATTACHMENT_LIMIT),
                             key=lambda a: len(a.data)):
        size = encoded_size(len(attachment.data)) + len(json.dumps(attachment.name)) + 128
        if body + size <= REQUEST_BODY_LIMIT:
            inline.append(attachment)
            body += size
        else:
            separate.append(attachment)
    return inline, separate, sessions


def _directory_user(entry: dict[str, Any]) -> DirectoryUser:
    """One user of a delta page (Graph's JSON): the properties present, or how it was removed."""
    removed = entry.get("@removed")
    properties: dict[str, Any] = {}
    for name in ("displayName", "userPrincipalName", "userType", "accountEnabled"):
        if entry.get(name) is not None:
            properties[name] = entry[name]
    if entry.get("assignedLicenses") is not None:
        properties["assignedLicenses"] = [str(lic["skuId"]) for lic in entry["assignedLicenses"] if lic.get("skuId")]
    if entry.get("createdDateTime"):
        created = datetime.fromisoformat(entry["createdDateTime"].replace("Z", "+00:00"))
        properties["createdDateTime"] = created if created.tzinfo else created.replace(tzinfo=timezone.utc)
    reason = removed.get("reason") if isinstance(removed, dict) else None
    return DirectoryUser(user_id=str(entry["id"]), properties=properties, removed=reason)
