"""Shared fixtures. Integration tests run against a real Azurite: one per test process (so each
pytest-xdist worker has its own), in memory, on free ports."""
from __future__ import annotations

import pytest

from devtools.azurite import Azurite


@pytest.fixture(scope="session")
def azurite():
    """A running Azurite for this test process; `.connection_string`, `.queue_port`, ..."""
    with Azurite() as running:
        yield running


@pytest.fixture(scope="session")
def storage_connection_string(azurite) -> str:
    """The explicit devstoreaccount1 connection string of the session's Azurite."""
    return azurite.connection_string
