"""Unit tests: pure code and in-memory fakes of the ports. They never start Azurite (the
`azurite` fixture lives in tests/integration/conftest.py); starting one here fails the test."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def no_azurite(monkeypatch: pytest.MonkeyPatch) -> None:
    from devtools.azurite import Azurite

    def refuse(self: Azurite) -> Azurite:
        raise AssertionError("a unit test tried to start Azurite: it belongs in tests/integration")

    monkeypatch.setattr(Azurite, "start", refuse)
