"""What the table adapters hand out: typed records read with their ETag, never raw entities.

A `Record` holds a row's properties and the ETag that the next write must match; every change
goes through `shared.storage.tables.merge_if_unchanged` (412/409: `Conflict`). `InvoiceRecord`
names the properties of the close's invoice rows (see invoices.py for the layout).
"""
from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping, Self

from shared.billing.observations import parse_instant

TableValue = str | int | float | bool | bytes | datetime | None
"""A property value as Table Storage stores it."""

_CHUNK = 60_000  # bytes per binary property (Table Storage allows 64 KiB)
_MAX_CHUNKS = 15  # an entity holds at most 1 MiB


class Conflict(Exception):
    """The row changed since it was read (HTTP 412), or was created meanwhile (409)."""


@dataclass
class Record:
    """A table row as read: its properties and the ETag the next write must match."""
    values: dict[str, Any]
    etag: str

    @classmethod
    def of(cls, entity: Any) -> "Record":
        """From an entity as the SDK returns it (its ETag in `metadata`)."""
        return cls(dict(entity), entity.metadata["etag"])

    def get(self, name: str, default: Any = None) -> Any:
        value = self.values.get(name)
        return default if value is None or value == "" else value

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def time(self, name: str) -> datetime | None:
        value = self.get(name)
        return parse_instant(value, name) if value else None

    @property
    def partition_key(self) -> str:
        return str(self.values["PartitionKey"])

    @property
    def row_key(self) -> str:
        return str(self.values["RowKey"])

    def merged(self, changes: Mapping[str, TableValue], etag: str) -> Self:
        """The record as it is after `changes` were merged into it (new ETag `etag`)."""
        return type(self)({**self.values, **changes}, etag)


class InvoiceRecord(Record):
    """One client's month in table `invoices` (PartitionKey tenant id, RowKey YYYY-MM)."""

    @property
    def tenant_id(self) -> str:
        return self.partition_key

    @property
    def period(self) -> str:
        return self.row_key

    @property
    def step(self) -> str:
        return str(self.get("step", ""))

    @property
    def status(self) -> str:
        return str(self.get("status", ""))

    @property
    def number(self) -> str:
        return str(self.get("number", ""))

    @property
    def run_id(self) -> str:
        return str(self.get("run_id", ""))

    @property
    def client_name(self) -> str:
        return str(self.get("client_name") or self.tenant_id)

    @property
    def lease_owner(self) -> str:
        return str(self.get("lease_owner", ""))

    @property
    def contacts(self) -> list[str]:
        return [str(c) for c in json.loads(self.get("contacts", "[]"))]


@dataclass
class RunMember:
    tenant_id: str
    name: str
    period: str


@dataclass(frozen=True)
class RunProgress:
    """What finishing a tenant did to its run."""
    header: Record | None  # the run's header as read or created here (None: not read)
    counted: bool  # this call recorded the outcome (False: it was recorded before)
    # The run's tenants not finished yet when this one was, as this process knows them (it
    # created the run and wrote every outcome since); None: not known here (RunStore.unfinished).
    unfinished: frozenset[str] | None = None
    # Every member row of the run as written, when this call finished the run's last member and
    # this process wrote them all (else None: RunStore.members reads them).
    members: tuple[Record, ...] | None = None


@dataclass(frozen=True)
class StoredBlob:
    name: str
    size: int
    sha256: str
    created: bool  # False: it was there already (an earlier attempt stored it)


def pack_json(data: Any, prefix: str, what: str) -> dict[str, TableValue]:
    """Row properties holding `data` as gzip-compressed JSON in binary chunks (`{prefix}_00`, ...,
    and `{prefix}_chunks`): a string property holds only 32K characters."""
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    packed = gzip.compress(payload, compresslevel=6, mtime=0)
    chunks = [packed[i:i + _CHUNK] for i in range(0, len(packed), _CHUNK)] or [b""]
    if len(chunks) > _MAX_CHUNKS:
        raise ValueError(f"{what} is too large to store in one table row ({len(packed)} bytes compressed)")
    properties: dict[str, TableValue] = {f"{prefix}_{n:02d}": chunk for n, chunk in enumerate(chunks)}
    properties[f"{prefix}_chunks"] = len(chunks)
    return properties


def unpack_json(row: Record, prefix: str) -> Any:
    """What pack_json stored in the row, or None if it holds none."""
    count = int(row.get(f"{prefix}_chunks", 0))
    if not count:
        return None
    packed = b"".join(bytes(row.values[f"{prefix}_{n:02d}"]) for n in range(count))
    return json.loads(gzip.decompress(packed).decode("utf-8"))
