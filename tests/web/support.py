"""The web client's dependencies for the tests that run its tools (installed once, as the build does)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from libs.webbuild import WebBuildError, ensure_installed

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"


def web_tools() -> Path:
    """``web/`` with ``node_modules`` matching the lockfile; skip without Node.js (fail under CI)."""
    try:
        ensure_installed(ROOT)
    except WebBuildError as exc:
        if os.environ.get("CI") or (WEB / "node_modules").is_dir():
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    return WEB
