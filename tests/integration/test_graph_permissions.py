"""Graph's permission model: the simulator refuses what a grant does not allow, as Graph does;
Prorata's calls need exactly what docs/deploy.md and the README grant, and nothing more."""
from __future__ import annotations

import asyncio
import inspect
import os
import re
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from devtools.grants import consent_client, consent_msp
from devtools.graph_sim import GraphSimulator
from devtools.graph_sim.permissions import OPERATIONS
from shared.graph.gateway import Attachment, GraphGateway
from shared.graph.permissions import (CLIENT_TENANT, CLIENT_TENANT_PERMISSIONS, GATEWAY_CALLS, INVOICE_MAILBOX,
                                      MAILBOX_PERMISSIONS)
from shared.settings import Settings
from tests.integration.graph_sim_helpers import StaticTokenCredential, WebhookReceiver

ROOT = Path(__file__).resolve().parents[2]
MAILBOX = "billing@msp.example"


@pytest.fixture(scope="module")
def sim():
    with GraphSimulator(retry_delays=(0.05,)) as running:
        yield running


def graph(sim: GraphSimulator, tenant_id: str, path: str, method: str = "GET", **kwargs) -> httpx.Response:
    return httpx.request(method, f"{sim.base_url}{path}", headers={"Authorization": f"Bearer sim-token.{tenant_id}"},
                         timeout=30, **kwargs)


def new_tenant(sim: GraphSimulator, *roles: str) -> str:
    tenant_id = str(uuid.uuid4())
    sim.add_tenant(tenant_id, "Contoso", f"{tenant_id[:8]}.example", roles=roles)
    return tenant_id


# ---------------------------------------------------------------------- the simulator's model
DIRECTORY_CALLS = [("user-list", "/users"), ("user-delta", "/users/delta"), ("subscribedsku-list", "/subscribedSkus"),
                   ("subscription-list", "/subscriptions")]


@pytest.mark.parametrize("operation,path", DIRECTORY_CALLS)
def test_a_directory_call_without_its_permission_is_refused_as_graph_does_and_the_least_privileged_one_allows_it(
        sim, operation, path):
    others = {p for op in OPERATIONS.values() for p in op.allowed if p not in OPERATIONS[operation].allowed}
    tenant_id = new_tenant(sim, *sorted(others & {"Mail.Send", "Mail.ReadWrite", "LicenseAssignment.Read.All",
                                                  "User.Read.All"}))
    refused = graph(sim, tenant_id, path)
    assert refused.status_code == 403
    expected = "ExtensionError" if operation.startswith("subscription") else "Authorization_RequestDenied"
    assert refused.json()["error"]["code"] == expected and refused.json()["error"]["message"]
    sim.grant(tenant_id, OPERATIONS[operation].least_privileged)
    assert graph(sim, tenant_id, path).status_code == 200


def test_mail_permissions_scoped_to_the_invoicing_mailbox_allow_that_mailbox_and_no_other(sim):
    tenant_id = new_tenant(sim, "User.Read.All")
    sim.create_user(tenant_id, "Billing", f"billing@{tenant_id[:8]}.example")
    sim.create_user(tenant_id, "Chief Executive", f"ceo@{tenant_id[:8]}.example")
    sim.grant_mailbox(tenant_id, f"billing@{tenant_id[:8]}.example", "Mail.Send")
    message = {"message": {"subject": "Hi", "toRecipients": [{"emailAddress": {"address": "a@b.example"}}]}}
    assert graph(sim, tenant_id, f"/users/billing@{tenant_id[:8]}.example/sendMail", "POST", json=message).status_code == 202
    refused = graph(sim, tenant_id, f"/users/ceo@{tenant_id[:8]}.example/sendMail", "POST", json=message)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "ErrorAccessDenied"
    # Mail.Send does not create drafts: that is Mail.ReadWrite (user-post-messages)
    draft = graph(sim, tenant_id, f"/users/billing@{tenant_id[:8]}.example/messages", "POST", json=message["message"])
    assert draft.status_code == 403


def test_reading_a_message_back_needs_mail_read_or_read_basic_and_mail_read_write_is_not_enough(sim):
    tenant_id = new_tenant(sim)
    sim.create_user(tenant_id, "Billing", f"billing@{tenant_id[:8]}.example")
    mailbox = f"billing@{tenant_id[:8]}.example"
    sim.grant_mailbox(tenant_id, mailbox, "Mail.ReadWrite")
    draft = graph(sim, tenant_id, f"/users/{mailbox}/messages", "POST", json={"subject": "Draft"}).json()
    assert graph(sim, tenant_id, f"/users/{mailbox}/messages/{draft['id']}").status_code == 403  # message-get
    sim.grant_mailbox(tenant_id, mailbox, "Mail.ReadBasic.All")
    assert graph(sim, tenant_id, f"/users/{mailbox}/messages/{draft['id']}").status_code == 200


def test_an_upload_range_needs_octet_stream_and_no_bearer_token(sim):
    tenant_id = new_tenant(sim)
    mailbox = f"billing@{tenant_id[:8]}.example"
    sim.create_user(tenant_id, "Billing", mailbox)
    sim.grant_mailbox(tenant_id, mailbox, "Mail.ReadWrite")
    draft = graph(sim, tenant_id, f"/users/{mailbox}/messages", "POST", json={"subject": "Draft"}).json()
    size = 3 * 1024 * 1024
    session = graph(sim, tenant_id, f"/users/{mailbox}/messages/{draft['id']}/attachments/createUploadSession", "POST",
                    json={"AttachmentItem": {"attachmentType": "file", "name": "a.pdf", "size": size}}).json()
    data = b"x" * 1024
    rng = {"Content-Range": f"bytes 0-1023/{size}"}
    assert httpx.put(session["uploadUrl"], content=data, headers=rng).status_code == 400
    with_token = httpx.put(session["uploadUrl"], content=data, headers={
        **rng, "Content-Type": "application/octet-stream", "Authorization": f"Bearer sim-token.{tenant_id}"})
    assert with_token.status_code == 401
    assert httpx.put(session["uploadUrl"], content=data,
                     headers={**rng, "Content-Type": "application/octet-stream"}).status_code == 200


# ---------------------------------------------------------------------- Prorata's calls
def test_every_graph_call_prorata_makes_is_listed_with_the_least_privileged_permission_of_its_doc_page():
    methods = {name for name, member in inspect.getmembers(GraphGateway, inspect.iscoroutinefunction)
               if not name.startswith("_")}
    assert methods == set(GATEWAY_CALLS), "every public GraphGateway call is in shared/graph/permissions.py"
    for calls in GATEWAY_CALLS.values():
        for call in calls:
            assert call.permission == OPERATIONS[call.operation].least_privileged, call
    assert CLIENT_TENANT_PERMISSIONS == ("LicenseAssignment.Read.All", "User.Read.All")
    assert MAILBOX_PERMISSIONS == ("Mail.ReadWrite", "Mail.Send")


def test_the_deploy_guide_and_the_readme_grant_exactly_what_the_calls_need():
    deploy = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    loop = re.search(r"^for p in ([^;]+); do$", deploy, re.M)
    assert loop is not None and set(loop.group(1).split()) == set(CLIENT_TENANT_PERMISSIONS)
    roles = re.findall(r'New-ManagementRoleAssignment .*-Role "Application ([\w.]+)"', deploy)
    assert sorted(roles) == sorted(MAILBOX_PERMISSIONS)
    consent = re.search(r"This grants (.+) in that tenant only", deploy)
    assert consent is not None and set(re.findall(r"[A-Z]\w+(?:\.\w+)+", consent.group(1))) == set(CLIENT_TENANT_PERMISSIONS)

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    step = readme[readme.index("1. **Register one multi-tenant app**"):readme.index("2. **Deploy**")]
    named = set(re.findall(r"`([A-Z]\w+(?:\.\w+)+)`", step))
    assert named == set(CLIENT_TENANT_PERMISSIONS) | set(MAILBOX_PERMISSIONS)


def test_prorata_runs_every_graph_call_with_exactly_the_granted_permissions_and_sends_only_those_operations(sim):
    first = len(sim.requests)
    client = new_tenant(sim)
    consent_client(sim, client)
    sim.add_sku(client, "SPB", prepaid=3)
    sim.create_user(client, "Ann Lee", skus=["SPB"])
    msp = new_tenant(sim)
    sim.create_user(msp, "Billing", MAILBOX)
    sim.create_user(msp, "Chief Executive", "ceo@msp.example")
    consent_msp(sim, msp, MAILBOX)
    gateway = GraphGateway(Settings({"GRAPH_BASE_URL": sim.base_url}),
                           credential_factory=lambda tenant: StaticTokenCredential(f"sim-token.{tenant}"))
    hook = WebhookReceiver()
    pdf = Attachment("small.pdf", "application/pdf", os.urandom(2000))
    near = Attachment("near-3mb.pdf", "application/pdf", os.urandom(3 * 1024 * 1024 - 4096))
    large = Attachment("large.pdf", "application/pdf", os.urandom(3 * 1024 * 1024 + 10))

    async def every_call() -> dict[str, list[str]]:
        seen: dict[str, list[str]] = {}

        async def step(name, awaitable):
            before = len(sim.requests)
            result = await awaitable
            seen.setdefault(name, []).extend(op for r in sim.requests[before:] for op in r["operations"])
            return result

        result = await step("delta", gateway.delta(client, None))
        await step("delta", gateway.delta(client, result.delta_link))
        await step("subscribed_skus", gateway.subscribed_skus(client))
        expires = sim.now() + timedelta(days=2)
        sub_id, _ = await step("create_subscription", gateway.create_subscription(
            client, notification_url=hook.url, lifecycle_url=hook.lifecycle_url, expires_at=expires, client_state="s"))
        await step("renew_subscription", gateway.renew_subscription(client, sub_id, expires + timedelta(days=1)))
        await step("reauthorize_subscription", gateway.reauthorize_subscription(client, sub_id))
        await step("delete_subscription", gateway.delete_subscription(client, sub_id))
        draft = await step("create_draft", gateway.create_draft(
            msp, MAILBOX, subject="Invoice", html="<p>Hello</p>" * 2000, to=["a@b.example"], cc=[], bcc=[],
            attachments=[pdf, near, large]))
        await step("send_draft", gateway.send_draft(msp, MAILBOX, draft))
        return seen

    try:
        seen = asyncio.run(every_call())
    finally:
        hook.close()
    failed = [r for r in sim.requests[first:] if r["status"] >= 400]
    assert failed == []
    for method, operations in seen.items():
        assert set(operations) <= {c.operation for c in GATEWAY_CALLS[method]}, (method, operations)
    assert set(seen["create_draft"]) == {"user-post-messages", "message-post-attachments",
                                         "attachment-createuploadsession"}
    sent = sim.outbox_json(tenant_id=msp)
    assert [sorted(a["name"] for a in m["attachments"]) for m in sent] == [["large.pdf", "near-3mb.pdf", "small.pdf"]]
    assert {CLIENT_TENANT, INVOICE_MAILBOX} == {c.where for calls in GATEWAY_CALLS.values() for c in calls}
