"""Fixtures every test may use: real PostgreSQL and Redis, isolated per test."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from libs import runtime
from libs.db.migrate import upgrade
from libs.settings import CommonSettings, Environment
from tests.support.servers import create_database, drop_database, postgres_server, redis_server
from tests.support.tokens import TokenSigner

REDIS_TEST_DB = int(os.environ.get("SDR_TEST_REDIS_DB", "9"))


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """URL of the PostgreSQL server the suite uses."""
    # Not under pytest's basetemp: an embedded server runs as another user (pgserver, when
    # we are root) and pytest makes its own temp root private again on every start.
    folder = Path(tempfile.mkdtemp(prefix="tidewater-test-pg-"))
    try:
        with postgres_server(folder) as url:
            yield url
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def template_db(pg_server_url: str) -> Iterator[str]:
    """Name of a database migrated to head once per session; tests clone it."""
    url = create_database(pg_server_url, prefix="tw_template")
    upgrade(url)
    name = url.rsplit("/", 1)[-1].split("?", 1)[0]
    yield name
    drop_database(pg_server_url, url)


@pytest.fixture
def database_url(pg_server_url: str, template_db: str) -> Iterator[str]:
    """A fresh migrated database for this test alone."""
    url = create_database(pg_server_url, template=template_db)
    yield url
    runtime.close()  # jobs run in-process keep engines and settings in the process's runtime
    drop_database(pg_server_url, url)


@pytest.fixture(scope="session")
def redis_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of the Redis server the suite uses."""
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def redis_url(redis_server_url: str) -> Iterator[str]:
    """A flushed Redis database for this test alone."""
    url = redis_server_url.rsplit("/", 1)[0] + f"/{REDIS_TEST_DB}"
    client = Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def redis(redis_url: str) -> Iterator[Redis]:
    """A client on this test's Redis database."""
    client = Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture(scope="session")
def signer() -> TokenSigner:
    """The key tests sign access tokens with."""
    return TokenSigner()


@pytest.fixture
def settings(database_url: str, redis_url: str) -> CommonSettings:
    """Settings for this test's database and Redis."""
    return CommonSettings(env=Environment.TEST, database_url=database_url, redis_url=redis_url)


@pytest.fixture
def org_id() -> uuid.UUID:
    """A fresh organization id."""
    return uuid.uuid4()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give every test a timeout so a hung server never hangs CI."""
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(120))


ROOT = Path(__file__).resolve().parents[1]
