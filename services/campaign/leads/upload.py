"""Stream a ``multipart/form-data`` upload to a file, enforcing size and row limits as bytes arrive.

Nothing is buffered beyond one network chunk: the ``file`` part goes straight to disk while
its size, its line count (an upper bound of its rows) and its SHA-256 are tracked; the other
parts are small text fields. Over a limit, the partial file is deleted and a problem raised.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from multipart import MultipartError, MultipartSegment, PushMultipartParser, parse_options_header

from libs.errors import BadRequest, Invalid, PayloadTooLarge

MAX_FIELD_BYTES = 64 * 1024
MAX_PARTS = 20
HEAD_BYTES = 65536


def discard(path: Path) -> None:
    """Delete a received file if it is there."""
    path.unlink(missing_ok=True)


@dataclass
class Upload:
    """A received file and the form's text fields."""

    path: Path
    filename: str | None = None
    size: int = 0
    lines: int = 0
    sha256: str = ""
    head: bytes = b""
    fields: dict[str, str] = field(default_factory=dict)


async def receive_file(
    content_type: str | None,
    stream: AsyncIterator[bytes],
    dest: Path,
    *,
    max_bytes: int,
    max_lines: int,
    part: str = "file",
) -> Upload:
    """Write the ``part`` file of a multipart body to ``dest``; raise a problem on any limit or format error."""
    media, options = parse_options_header(content_type or "")
    boundary = options.get("boundary")
    if media != "multipart/form-data" or not boundary:
        raise Invalid(
            "Send the file as multipart/form-data.",
            errors=[{"field": part, "message": "multipart/form-data with a file part is required"}],
        )
    upload = Upload(path=dest)
    digest = hashlib.sha256()
    dest.parent.mkdir(parents=True, exist_ok=True)
    head = bytearray()
    total = 0
    seen_file = False
    try:
        async with await anyio.open_file(dest, "wb") as out:
            with PushMultipartParser(boundary, max_segment_count=MAX_PARTS, strict=False) as parser:
                segment: MultipartSegment | None = None
                text = bytearray()
                async for chunk in stream:
                    total += len(chunk)
                    if total > max_bytes + MAX_PARTS * MAX_FIELD_BYTES:
                        raise PayloadTooLarge(f"The upload is larger than {max_bytes:,} bytes.")
                    for event in parser.parse(chunk):
                        if isinstance(event, MultipartSegment):
                            segment = event
                            text.clear()
                            if segment.name == part:
                                seen_file = True
                                upload.filename = (segment.filename or "")[:255] or None
                        elif event is None:
                            if segment is not None and segment.name != part:
                                upload.fields[segment.name] = text.decode("utf-8", errors="replace")
                            segment = None
                        elif segment is not None and segment.name == part:
                            upload.size += len(event)
                            if upload.size > max_bytes:
                                raise PayloadTooLarge(f"The file is larger than {max_bytes:,} bytes.")
                            upload.lines += event.count(b"\n")
                            if upload.lines > max_lines:
                                raise Invalid(
                                    f"The file has more than {max_lines - 1:,} rows.",
                                    errors=[{"field": part, "message": "too many rows"}],
                                )
                            if len(head) < HEAD_BYTES:
                                head += event[: HEAD_BYTES - len(head)]
                            digest.update(event)
                            await out.write(event)
                        elif segment is not None:
                            text += event
                            if len(text) > MAX_FIELD_BYTES:
                                raise Invalid(f"The form field {segment.name!r} is too large.")
    except MultipartError as exc:
        discard(dest)
        # The parser's message quotes the raw bytes it refused; the answer names only the rule.
        raise BadRequest(
            "The multipart body is malformed: send multipart/form-data with a 'file' part and its boundary.",
            errors=[{"field": "body", "message": "malformed multipart/form-data"}],
        ) from exc
    except BaseException:
        discard(dest)
        raise
    if not seen_file:
        discard(dest)
        raise Invalid("No file was sent.", errors=[{"field": part, "message": "required"}])
    upload.head = bytes(head)
    upload.sha256 = digest.hexdigest()
    return upload
