"""The local stand-in for Twilio: SMS and voicemail drops appended as JSON lines under the data dir."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from libs.db.base import utcnow
from services.worker.channels.outcome import SendResult

_lock = threading.Lock()


class LocalRecorder:
    """Write each would-be SMS or call to ``<data_dir>/outbox/<channel>.jsonl`` (no credentials configured)."""

    def __init__(self, data_dir: Path) -> None:
        self.directory = Path(data_dir) / "outbox"

    def path(self, channel: str) -> Path:
        """The file one channel's records go to."""
        return self.directory / f"{channel}.jsonl"

    def record(self, channel: str, message_id: str, payload: dict[str, Any]) -> SendResult:
        """Append one record (flushed and fsynced before returning) and report it sent."""
        provider_id = f"local-{message_id}"
        line = json.dumps(
            {"provider_id": provider_id, "message_id": message_id, "recorded_at": utcnow().isoformat(), **payload},
            sort_keys=True,
        )
        self.directory.mkdir(parents=True, exist_ok=True)
        with _lock, self.path(channel).open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        return SendResult.sent(provider_id)

    def read(self, channel: str) -> list[dict[str, Any]]:
        """Every record of ``channel`` so far."""
        path = self.path(channel)
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
