"""A run's progress on Azurite, as several processes finish its clients: each outcome counted
once, the run finished once every client has one, and exactly one summary, whichever process
finishes which client and in what order."""
from __future__ import annotations

import logging
import threading
import uuid
from datetime import datetime, timezone

import pytest

from shared.billing import Period
from shared.services.close.reports import EMAILED_OUTCOME, FAILED_OUTCOME, RunReports, TenantOutcome
from shared.settings import Settings
from shared.storage.account import Storage
from shared.storage.archive import InvoiceArchive
from shared.storage.invoices import InvoiceStore, RunMember, RunStore

OCTOBER = Period(2026, 10)
NOW = datetime(2026, 11, 1, 6, 0, tzinfo=timezone.utc)


class Process:
    """What one Functions worker process holds: its own storage clients and run bookkeeping."""

    def __init__(self, connection_string: str):
        storage = Storage(Settings({"AzureWebJobsStorage": connection_string}))
        self.runs = RunStore(storage)
        self.reports = RunReports(runs=self.runs, invoices=InvoiceStore(storage),
                                  archive=InvoiceArchive(storage, "invoices"), clock=lambda: NOW,
                                  exports=lambda period, run_id, documents: {})

    def finish(self, run_id: str, tenant_id: str, kind=EMAILED_OUTCOME):
        outcome = TenantOutcome(tenant_id, f"Client {tenant_id}", OCTOBER, kind, f"{tenant_id}: {kind}.",
                                reason="no contact" if kind == FAILED_OUTCOME else "")
        return self.reports.finish(run_id, outcome)


@pytest.fixture
def two(azurite):
    return Process(azurite.connection_string), Process(azurite.connection_string)


def new_run(process: Process, tenants: list[str]) -> str:
    run_id = f"run-{uuid.uuid4().hex[:10]}"
    process.runs.create(run_id, OCTOBER, "timer", NOW, [RunMember(t, f"Client {t}", str(OCTOBER)) for t in tenants])
    return run_id


def test_a_run_finishes_when_its_last_client_does_whichever_process_closed_the_others(two, caplog):
    creator, other = two
    run_id = new_run(creator, ["a", "b", "c"])
    caplog.set_level(logging.INFO, logger="prorata.close")
    assert other.finish(run_id, "b") is None          # another process first
    assert creator.finish(run_id, "a") is None        # the creator's copy does not know b finished: it asks
    summary = creator.finish(run_id, "c", FAILED_OUTCOME)
    assert summary is not None and summary["emailed"] == 2 and summary["failed"] == 1
    assert creator.reports.run_report(run_id) == summary
    assert sum("Run " + run_id in r.getMessage() for r in caplog.records) == 1  # summarised once


def test_the_creators_last_client_finishes_the_run_even_when_another_process_finished_one_after_it_started(two):
    creator, other = two
    run_id = new_run(creator, ["a", "b"])
    assert creator.finish(run_id, "a") is None
    summary = other.finish(run_id, "b")               # the last one, elsewhere: it reads the members
    assert summary is not None and summary["tenants"] == 2 and summary["emailed"] == 2


def test_a_client_finished_twice_is_counted_once_even_by_the_process_holding_the_old_copy(two):
    creator, other = two
    run_id = new_run(creator, ["a", "b"])
    assert other.finish(run_id, "a") is None
    assert creator.finish(run_id, "a", FAILED_OUTCOME) is None  # a retry: its copy is stale, nothing changes
    assert [m.get("outcome") for m in creator.runs.members(run_id) if m["tenant_id"] == "a"] == ["emailed"]
    assert creator.runs.unfinished(run_id) == frozenset({"b"})
    summary = creator.finish(run_id, "b")
    assert summary is not None and summary["emailed"] == 2 and summary["failed"] == 0


def test_clients_still_being_closed_in_this_process_leave_the_question_to_the_last_of_them(two):
    creator, _ = two
    run_id = new_run(creator, ["a", "b", "c"])
    asked = []
    unfinished = creator.runs.unfinished
    creator.runs.unfinished = lambda run: asked.append(run) or unfinished(run)  # type: ignore[method-assign]
    with creator.reports.closing_here(run_id, ["a", "b", "c"]):
        assert creator.finish(run_id, "a") is None
        assert creator.finish(run_id, "b") is None
        summary = creator.finish(run_id, "c")
    assert summary is not None and summary["emailed"] == 3
    assert asked == []  # each knew from its own writes where the run stood


def test_many_finishers_in_two_processes_at_once_give_one_summary_with_every_client(two, caplog):
    creator, other = two
    tenants = [f"t{n:02d}" for n in range(16)]
    run_id = new_run(creator, tenants)
    caplog.set_level(logging.INFO, logger="prorata.close")
    summaries = []

    def finish(process, tenant_id):
        result = process.finish(run_id, tenant_id)
        if result is not None:
            summaries.append(result)

    threads = [threading.Thread(target=finish, args=(creator if n % 2 else other, t)) for n, t in enumerate(tenants)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert summaries and all(s == summaries[0] for s in summaries)
    assert summaries[0]["emailed"] == 16 and summaries[0]["tenants"] == 16
    assert creator.runs.unfinished(run_id) == frozenset()
    assert sum("Run " + run_id in r.getMessage() for r in caplog.records) == 1


def test_a_client_closed_from_its_queue_message_is_counted_with_the_etag_the_message_carried(two):
    creator, worker = two
    run_id = new_run(creator, ["a", "b"])
    etags = {t: creator.runs.member_etag(run_id, t) for t in ("a", "b")}
    assert all(etags.values())
    outcome = TenantOutcome("a", "Client a", OCTOBER, EMAILED_OUTCOME, "a: emailed.")
    assert worker.reports.finish(run_id, outcome, etags["a"]) is None
    retried = TenantOutcome("a", "Client a", OCTOBER, FAILED_OUTCOME, "a: failed.", reason="late retry")
    assert worker.reports.finish(run_id, retried, etags["a"]) is None  # the ETag is spent: counted once
    summary = worker.reports.finish(run_id, TenantOutcome("b", "Client b", OCTOBER, EMAILED_OUTCOME, "b."), etags["b"])
    assert summary is not None and summary["emailed"] == 2 and summary["failed"] == 0


def test_a_close_message_carries_its_members_etag_and_reads_back_without_it_from_older_messages():
    from shared.messages import CloseRequest

    request = CloseRequest("t", "2026-10", "run-1", 'W/"datetime\'2026-11-01T06%3A00%3A00Z\'"')
    assert CloseRequest.from_json(request.to_json()) == request
    assert CloseRequest.from_json({"tenant_id": "t", "period": "2026-10", "run_id": "run-1"}).member_etag is None


def test_a_member_write_that_fails_midway_is_not_taken_for_a_finished_client(two, monkeypatch):
    from azure.core.exceptions import ServiceRequestError

    import shared.storage.invoices as store

    creator, _ = two
    run_id = new_run(creator, ["a", "b"])
    written = store.merge_if_unchanged

    def broken(table, entity, etag, **options):
        if entity["RowKey"] == "tenant|a":
            raise ServiceRequestError("connection reset")
        return written(table, entity, etag, **options)

    monkeypatch.setattr(store, "merge_if_unchanged", broken)
    assert creator.finish(run_id, "a") is None        # logged: the outcome is not recorded
    monkeypatch.setattr(store, "merge_if_unchanged", written)
    assert creator.finish(run_id, "b") is None        # a is still going: no summary without it
    assert creator.runs.unfinished(run_id) == frozenset({"a"})
    summary = creator.finish(run_id, "a")             # its retry finishes the run
    assert summary is not None and summary["tenants"] == 2 and summary["emailed"] == 2
