"""The web client's unit tests (Vitest) run as part of the Python suite."""

from __future__ import annotations

import subprocess

import pytest

from libs.webbuild import find_toolchain
from tests.web.support import web_tools


@pytest.mark.timeout(600)
def test_the_web_clients_vitest_suite_passes() -> None:
    web = web_tools()
    toolchain = find_toolchain()
    done = subprocess.run(
        [*toolchain.npm, "test", "--", "--reporter=verbose"],
        cwd=web,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
        env={**toolchain.env(), "NO_COLOR": "1", "CI": "1"},
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    assert " passed" in output, output[-2000:]
    assert " failed" not in output, output[-6000:]
