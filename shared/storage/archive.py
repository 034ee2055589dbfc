"""Invoice PDFs and run CSVs in Blob Storage (container INVOICE_CONTAINER).

Layout: `{period}/{tenant_id}/{invoice number}.pdf` for each invoice and
`{period}/invoice-lines-{run_id}.csv` and `{period}/reconciliation-{run_id}.csv` for each run.

An invoice PDF is written once: the first stored rendering of a number is the invoice, and a
retry that rendered it again keeps the stored one (If-None-Match: *). The email attaches the
stored blob, so the archived PDF is byte for byte the one the client received. A run's CSV is
rewritten whenever the run finishes again (it is derived data).
"""
from __future__ import annotations

import hashlib
import re
from typing import Any

from shared.storage.records import StoredBlob


def pdf_path(period: str, tenant_id: str, number: str) -> str:
    return f"{period}/{tenant_id}/{number}.pdf"


def csv_path(period: str, run_id: str) -> str:
    return f"{period}/invoice-lines-{run_id}.csv"


_PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def findings_path(period: str, run_id: str) -> str:
    """The license reconciliation's CSV of a run (the MSP's own report)."""
    if not isinstance(period, str) or not _PERIOD.match(period):
        raise ValueError(f"period must be YYYY-MM, got {period!r}")
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id):
        raise ValueError(f"run id must be letters, digits, '.', '_' or '-', got {run_id!r}")
    return f"{period}/reconciliation-{run_id}.csv"


class InvoiceArchive:
    def __init__(self, storage: Any, container: str):
        self._storage, self.container_name = storage, container

    @property
    def _container(self) -> Any:
        return self._storage.container(self.container_name)

    def put_once(self, name: str, data: bytes, content_type: str = "application/pdf") -> StoredBlob:
        """Stores the blob unless it exists; returns what is stored under the name."""
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob import ContentSettings

        try:
            self._container.upload_blob(name, data, overwrite=False,
                                        content_settings=ContentSettings(content_type=content_type))
            return StoredBlob(name, len(data), hashlib.sha256(data).hexdigest(), True)
        except ResourceExistsError:
            stored = self.get(name)
            return StoredBlob(name, len(stored), hashlib.sha256(stored).hexdigest(), False)

    def put(self, name: str, data: bytes, content_type: str) -> None:
        from azure.storage.blob import ContentSettings

        self._container.upload_blob(name, data, overwrite=True, content_settings=ContentSettings(content_type=content_type))

    def get(self, name: str) -> bytes:
        return self._container.download_blob(name).readall()
