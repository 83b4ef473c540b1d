"""Fixtures of the worker tests: the loopback provider server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.providers import ProviderServer, provider_server


@pytest.fixture
def providers() -> Iterator[ProviderServer]:
    """A loopback Twilio + OpenAI server for this test."""
    with provider_server() as server:
        yield server
