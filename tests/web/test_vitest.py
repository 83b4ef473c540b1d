"""The web client's unit tests (Vitest) run as part of the Python suite."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[2] / "web"


@pytest.mark.timeout(600)
def test_the_web_clients_vitest_suite_passes() -> None:
    npm = shutil.which("npm")
    if npm is None or not (WEB / "node_modules" / ".bin" / "vitest").exists():
        reason = "the web client's dependencies are not installed: run `npm ci` in web/ (or ./tidewater up)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    done = subprocess.run(
        [npm, "test", "--", "--reporter=verbose"],
        cwd=WEB,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
        env={**os.environ, "NO_COLOR": "1", "CI": "1"},
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    assert " passed" in output, output[-2000:]
    assert " failed" not in output, output[-6000:]
