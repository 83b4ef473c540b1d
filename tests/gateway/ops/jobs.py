"""Job functions the ops tests enqueue and run with a real RQ worker (ids in, small values out)."""

from __future__ import annotations

import time


def succeed(message_ids: list[str]) -> int:
    """Finish at once."""
    return len(message_ids)


def fail(message_ids: list[str]) -> None:
    """Fail with an exception naming the ids (and, in the XSS test, whatever text it is given)."""
    raise RuntimeError(f"could not send {', '.join(message_ids)}")


def linger(message_ids: list[str], seconds: float = 0.2) -> int:
    """Take a moment, so the duration histogram sees a non-zero run."""
    time.sleep(seconds)
    return len(message_ids)
