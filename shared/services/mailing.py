"""Invoice email, sent at most once, through Microsoft Graph drafts.

Sending is two steps so that a retry can tell a sent message from an unsent one:

1. create a draft in INVOICE_MAILBOX (in the MSP's own tenant, MSP_TENANT_ID) with the PDF
   attached (over 3 MB through an upload session), and record the draft's id;
2. send the draft. Exchange moves a sent message out of Drafts (to Sent Items, under a new id),
   so afterwards the draft's id answers 404.

On a retry the recorded draft is sent again: if it was sent already (the attempt died before
recording it), its id is gone and Graph answers 404, so it is recorded as sent and nothing is
sent twice. No read-back is needed, so the mailbox needs only Mail.ReadWrite and Mail.Send
(shared/graph/permissions.py). A crash between creating a draft and recording its id leaves an
unsent draft in the mailbox's Drafts folder (never sent); the retry makes a new one.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from shared.graph.gateway import Attachment, GraphError
from shared.ports import GraphPort
from shared.settings import Settings

log = logging.getLogger("prorata.close")


@dataclass(frozen=True)
class MailSettings:
    msp_tenant_id: str
    mailbox: str
    cc: tuple[str, ...]
    bcc: tuple[str, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> "MailSettings":
        return cls(msp_tenant_id=settings.require("MSP_TENANT_ID"), mailbox=settings.require("INVOICE_MAILBOX"),
                   cc=tuple(settings.csv("INVOICE_CC")), bcc=tuple(settings.csv("INVOICE_BCC")))


class InvoiceMailer:
    def __init__(self, graph: GraphPort, mail: MailSettings):
        self._graph, self.mail = graph, mail

    @property
    def mailbox(self) -> str:
        return self.mail.mailbox

    async def create_draft(self, *, subject: str, html: str, to: list[str], pdf_name: str, pdf: bytes) -> str:
        return await self._graph.create_draft(
            self.mail.msp_tenant_id, self.mail.mailbox, subject=subject, html=html, to=list(to),
            cc=list(self.mail.cc), bcc=list(self.mail.bcc),
            attachments=[Attachment(name=pdf_name, content_type="application/pdf", data=pdf)])

    async def send_once(self, draft_id: str) -> str:
        """Sends the draft unless it was sent already. Returns "sent" or "sent before"."""
        try:
            await self._graph.send_draft(self.mail.msp_tenant_id, self.mail.mailbox, draft_id)
        except GraphError as error:
            if error.status == 404:  # sent already (by an attempt that died, or another runner)
                return "sent before"
            raise
        return "sent"
