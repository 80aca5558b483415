"""Endless streams of distinct events from a small pool, for the benches that need
millions of records: each pool event is encoded once; each record is a copy with its
own ``event.id`` and event time written over the pool event's (same length), so the
alerting core sees distinct events in time order. Costs ~2 us a record.
"""

from __future__ import annotations

import base64
import functools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from consumer.codecs import encode_event_json
from consumer.generator import generate_events

START = datetime(2026, 12, 4, tzinfo=UTC)


@dataclass(frozen=True)
class Template:
    """One pool event, encoded, with the strings each copy of it replaces."""

    value: bytes
    timestamp: bytes  # every occurrence: @timestamp, event.created, process.start
    event_id: bytes
    millis: bool  # Auditbeat renders milliseconds, Defend 100 ns ticks


def templates(pool: int, match_every: int) -> list[Template]:
    """``pool`` distinct events, one in ``match_every`` an attack, encoded once."""
    out = []
    for event in generate_events(pool, match_every=match_every, seed=11):
        timestamp, event_id = event["@timestamp"], event["event"]["id"]
        millis = len(timestamp) == len("2026-12-04T09:00:00.000Z")
        value = encode_event_json(event)
        out.append(Template(value, timestamp.encode(), event_id.encode(), millis))
    return out


@functools.lru_cache(maxsize=4)
def _second(epoch_second: int) -> str:
    return (START + timedelta(seconds=epoch_second)).strftime("%Y-%m-%dT%H:%M:%S")


def _timestamp(index: int, events_per_second: int, millis: bool) -> bytes:
    """Event ``index``'s time in the agent's own format (same length as the pool's)."""
    second, rest = divmod(index, events_per_second)
    ticks = rest * 10_000_000 // events_per_second  # 100 ns, as Defend writes them
    fraction = f"{ticks // 10_000:03d}" if millis else f"{ticks:07d}"
    return f"{_second(second)}.{fraction}Z".encode()


def _event_id(index: int, template: Template) -> bytes:
    """A unique id shaped like the template's: a UUID (Auditbeat) or 16 bytes in base64."""
    if len(template.event_id) == 36:
        return str(uuid.UUID(int=(0xBE7C << 112) | index)).encode()
    return base64.b64encode(b"mem-" + index.to_bytes(12, "big"))


def records(count: int, pool: list[Template], events_per_second: int) -> Iterator[bytes]:
    """``count`` records cycling through ``pool``, each with its own id and time."""
    for i in range(count):
        template = pool[i % len(pool)]
        new_time = _timestamp(i, events_per_second, template.millis)
        yield template.value.replace(template.timestamp, new_time).replace(
            template.event_id, _event_id(i, template)
        )
