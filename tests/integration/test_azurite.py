"""The Azurite launcher: in-memory emulator on free ports, and ensure_azurite's decisions."""
from __future__ import annotations

import socket

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

import devtools.azurite as azurite_module
from devtools.azurite import Azurite, AzuriteError, ensure_azurite, free_ports, is_development_storage, port_answers


def test_the_session_azurite_serves_blobs_queues_and_tables(azurite, storage_connection_string):
    assert f"QueueEndpoint=http://127.0.0.1:{azurite.queue_port}/devstoreaccount1" in storage_connection_string
    BlobServiceClient.from_connection_string(storage_connection_string).create_container("probe")
    QueueServiceClient.from_connection_string(storage_connection_string).create_queue("probe")
    TableServiceClient.from_connection_string(storage_connection_string).create_table("probe")


def test_development_storage_is_recognised_in_its_usual_spellings():
    for setting in (None, "", "UseDevelopmentStorage=true", "usedevelopmentstorage=true;", " UseDevelopmentStorage = true "):
        assert is_development_storage(setting)
    assert not is_development_storage("DefaultEndpointsProtocol=https;AccountName=x;AccountKey=eA==")


def test_ensure_azurite_leaves_a_real_connection_string_alone():
    real = "DefaultEndpointsProtocol=https;AccountName=prorata;AccountKey=eA==;EndpointSuffix=core.windows.net"
    assert ensure_azurite(real) == (real, None)


def test_ensure_azurite_reuses_an_emulator_already_listening(azurite, monkeypatch):
    monkeypatch.setattr(azurite_module, "DEFAULT_PORTS", azurite.ports)
    assert ensure_azurite("UseDevelopmentStorage=true") == (azurite.connection_string, None)


def test_ensure_azurite_starts_one_when_none_listens_and_stop_frees_its_ports(monkeypatch):
    ports = tuple(free_ports(3))
    monkeypatch.setattr(azurite_module, "DEFAULT_PORTS", ports)
    connection, started = ensure_azurite(None)
    try:
        assert started is not None and started.ports == ports
        assert connection == started.connection_string
    finally:
        started.stop()
    assert not any(port_answers(p) for p in ports)


def test_azurite_on_a_taken_port_fails_with_azurites_reason():
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        blob, queue, table = squatter.getsockname()[1], *free_ports(2)
        with pytest.raises(AzuriteError, match="EADDRINUSE|in use"):
            Azurite(blob, queue, table, start_timeout=10).start()
