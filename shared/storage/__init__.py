"""The storage layer: every Table, Queue and Blob adapter of Prorata, behind the ports of
shared/ports.py. Nothing outside this package touches an entity dict or a blob client.

- account.py: the clients, from AzureWebJobsStorage (connection string or identity-based URIs)
- records.py: typed records read from tables (with their ETag), values, `Conflict`
- tables.py: the table helpers (get-or-none, create-or-get, the one ETag-guarded merge)
- tenants.py, subscriptions.py: the `tenants` and `subscriptions` tables
- ledger.py, ledger_entities.py: the lifecycle ledger (table `ledger`)
- invoices.py: the close's invoice records and runs (tables `invoices`, `runs`)
- numbering.py: the gap-free invoice counter (table `counters`)
- archive.py: invoice PDFs and reports in Blob Storage
- sync_gate.py: one delta at a time per tenant (table `tenants`, partition `sync-lock`)
- queues.py: messages onto Storage queues
"""
from shared.storage.account import DEV_CONNECTION_STRING, DEV_STORAGE, Storage

__all__ = ["DEV_CONNECTION_STRING", "DEV_STORAGE", "Storage"]
