"""Fixtures of the browser tests: ``sdr dev`` on a fresh database, the built client, a folder for screenshots."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from libs.webbuild import ensure_built
from tests.conftest import REDIS_TEST_DB
from tests.support.dev import DevSystem, readyz, run_sdr_dev, wait_for
from tests.support.servers import create_database, drop_database

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def artifacts(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """Where screenshots of a failure go."""
    base = os.environ.get("SDR_TEST_ARTIFACTS")
    folder = (Path(base) if base else tmp_path / "artifacts") / re.sub(r"[^\w.-]+", "_", request.node.name)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def system_env() -> dict[str, str]:
    """Extra ``SDR_*`` variables for the system; a test module overrides this fixture to add some."""
    return {}


@pytest.fixture
def system(
    tmp_path: Path, pg_server_url: str, template_db: str, redis_server_url: str, system_env: dict[str, str]
) -> Iterator[DevSystem]:
    """``sdr dev`` on a fresh database and a flushed Redis database, green on /readyz."""
    database_url = create_database(pg_server_url, template=template_db)
    redis_url = redis_server_url.rsplit("/", 1)[0] + f"/{REDIS_TEST_DB}"
    redis = Redis.from_url(redis_url)
    redis.flushdb()
    try:
        with run_sdr_dev(
            tmp_path,
            database_url=database_url,
            redis_url=redis_url,
            extra_env={"SDR_LOG_LEVEL": "WARNING", **system_env},
        ) as running:
            wait_for(lambda: readyz(running)[0] == 200, "/readyz to be green", running, timeout=180)
            yield running
    finally:
        redis.flushdb()
        redis.close()
        drop_database(pg_server_url, database_url)


@pytest.fixture
def built() -> None:
    """The client, built from web/ when its sources changed since the last build (as ``./tidewater up`` does)."""
    ensure_built(ROOT)
    assert (ROOT / "web" / "dist" / "index.html").is_file()
