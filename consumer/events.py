"""Read ECS events from NDJSON files (plain or gzip), one line at a time.

A file is read as a stream, so memory does not grow with its size. A line that is not a
JSON object is reported with its number and skipped: one bad line never ends a replay.
"""

from __future__ import annotations

import gzip
import io
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from consumer.codecs import DecodeError, decode_json

_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class EventLine:
    """One event read from a file, with its 1-based line number."""

    line: int
    event: dict[str, Any]


@dataclass(frozen=True)
class BadLine:
    """A line that could not be read as an event, and why."""

    line: int
    reason: str


def open_event_file(path: str | Path) -> IO[str]:
    """Open ``path`` (``-`` for standard input) as text; gzip is told by its magic bytes.

    Undecodable bytes become U+FFFD rather than ending the read: the line they are on
    still parses or is reported as bad on its own.
    """
    raw: io.BufferedReader = (
        sys.stdin.buffer if str(path) == "-" else Path(path).open("rb")  # noqa: SIM115
    )
    if raw.peek(2)[:2] == _GZIP_MAGIC:
        return io.TextIOWrapper(gzip.GzipFile(fileobj=raw), encoding="utf-8", errors="replace")
    return io.TextIOWrapper(raw, encoding="utf-8", errors="replace")


def read_events(stream: IO[str]) -> Iterator[EventLine | BadLine]:
    """Yield each non-blank line of ``stream`` as an ``EventLine`` or a ``BadLine``."""
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            # The stream's decoder, so a file is read by the same rules as a topic: no NaN,
            # infinity, lone surrogates or 4,300-digit numbers reach the rules or the output.
            event = decode_json(line.encode("utf-8", "surrogatepass"))
        except DecodeError as exc:
            yield BadLine(number, str(exc))
            continue
        yield EventLine(number, event)
