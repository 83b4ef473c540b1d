"""What the browser tests share: Debian's Chromium, the page timeout, screenshots of a failed step."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAGE_TIMEOUT_MS = 30_000


def chromium_or_skip() -> Path:
    """Debian's Chromium; without it, skip (fail under CI, where it must be installed)."""
    if CHROMIUM.exists():
        return CHROMIUM
    reason = f"{CHROMIUM} is not installed (apt-get install chromium); the browser test needs it"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


class Evidence:
    """Screenshots of every open page when a step fails, and the step's name in the error."""

    def __init__(self, folder: Path, pages: list[Any]) -> None:
        self.folder = folder
        self.pages = pages

    def step(self, name: str, action: Callable[[], None], hint: str = "") -> None:
        try:
            action()
        except BaseException as exc:
            shots = []
            for index, page in enumerate(self.pages):
                path = self.folder / f"{name}-{index}.png"
                try:
                    page.screenshot(path=str(path), full_page=True)
                    shots.append(f"{path} ({page.url})")
                except Exception as shot_error:  # the browser may be gone; say so, keep the real error
                    shots.append(f"{path}: no screenshot ({shot_error!r})")
            print(f"\nscreenshots of the failed step {name!r}:\n  " + "\n  ".join(shots))
            raise AssertionError(f"browser step {name!r} failed{hint}: {exc}\nscreenshots: {shots}") from exc


def fits(page: Any) -> bool:
    """Whether the page has no sideways scroll at its current width."""
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"))
