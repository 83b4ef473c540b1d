"""The committed ``web/src/api/schema.d.ts`` is what openapi-typescript makes of the document the
gateway serves at ``/api/openapi.json``; when an API changes, ``npm run gen:api`` (in web/) updates it."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from gateway.app import create_app as create_gateway
from gateway.settings import GatewaySettings
from libs.settings import Environment
from libs.webbuild import find_toolchain
from services.auth.app import create_app as create_auth
from services.auth.settings import AuthSettings
from services.brand.app import create_app as create_brand
from services.brand.settings import BrandSettings
from services.campaign.app import create_app as create_campaign
from services.campaign.settings import CampaignSettings
from tests.web.support import web_tools

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
COMMITTED = WEB / "src" / "api" / "schema.d.ts"


def _npx() -> str:
    web_tools()
    npx = shutil.which("npx", path=os.pathsep.join([*find_toolchain().path, os.environ.get("PATH", "")]))
    if npx is None:
        pytest.skip("npx is not on PATH")
    return npx


@pytest.fixture
def served(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """``GET /api/openapi.json`` of a gateway in front of the three real services."""
    common: dict[str, Any] = {
        "env": Environment.TEST,
        "database_url": database_url,
        "redis_url": redis_url,
        "data_dir": tmp_path / "data",
    }
    apps = {
        "auth": create_auth(AuthSettings(**common)),
        "brand": create_brand(BrandSettings(**common)),
        "campaign": create_campaign(CampaignSettings(**common)),
    }
    gateway = create_gateway(GatewaySettings(**common, readiness_timeout=5.0), upstream_apps=apps)
    with TestClient[Any](gateway) as client:
        answer = client.get("/api/openapi.json")
        assert answer.status_code == 200, answer.text
        document = answer.json()
        assert set(document["x-upstreams"].values()) == {"ok"}, document["x-upstreams"]
        yield document


def _dump_script() -> Any:
    spec = importlib.util.spec_from_file_location("dump_openapi", WEB / "scripts" / "dump_openapi.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gen_api_reads_the_same_document_the_gateway_serves(served: dict[str, Any]) -> None:
    assert _dump_script().merged_document() == served


@pytest.mark.timeout(300)
def test_the_committed_api_types_match_what_the_gateway_serves(served: dict[str, Any], tmp_path: Path) -> None:
    npx = _npx()
    document = tmp_path / "openapi.json"
    document.write_text(json.dumps(served, indent=2, sort_keys=True) + "\n")
    generated = tmp_path / "schema.d.ts"
    done = subprocess.run(
        [npx, "--no-install", "openapi-typescript", str(document), "--output", str(generated)],
        cwd=WEB,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    fresh, committed = generated.read_text(), COMMITTED.read_text()
    if fresh != committed:
        import difflib

        diff = "".join(
            list(difflib.unified_diff(committed.splitlines(True), fresh.splitlines(True), "committed", "served"))[:80]
        )
        pytest.fail(f"web/src/api/schema.d.ts is out of date: run `npm run gen:api` in web/ and commit it.\n{diff}")
