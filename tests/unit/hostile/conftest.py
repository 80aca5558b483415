"""Shared helpers for the hostile-input tests: codecs, and bounds on time and memory.

Bounds are generous (a slow CI machine, tracemalloc's own overhead) but finite: what
they rule out is a hang, a crash or memory that grows with what an attacker sends.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from consumer.codecs import (
    DECODE_REASONS,
    DecodeError,
    EventCodec,
    default_codec,
    default_schema_dir,
)

MIB = 1024 * 1024


@dataclass
class Cost:
    """What one call cost: wall time in seconds and peak traced allocation in bytes."""

    seconds: float = 0.0
    peak: int = 0


@contextmanager
def measured() -> Iterator[Cost]:
    """Time and peak Python allocation of the block (tracemalloc, started fresh)."""
    cost = Cost()
    tracemalloc.start()
    tracemalloc.reset_peak()
    start = time.perf_counter()
    try:
        yield cost
    finally:
        cost.seconds = time.perf_counter() - start
        cost.peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()


def outcome(decode: Callable[[], dict[str, Any]]) -> str | dict[str, Any]:
    """The decoded event, or the DecodeError reason; anything else fails the test."""
    try:
        event = decode()
    except DecodeError as exc:
        assert exc.reason in DECODE_REASONS
        assert str(exc).startswith(f"{exc.reason}: ")
        assert len(str(exc)) < 2000, "error text is bounded (it becomes a Kafka header)"
        return exc.reason
    assert isinstance(event, dict)
    return event


def reason(codec: EventCodec, value: bytes | None, fmt: Any = None) -> str:
    """The DecodeError reason ``codec`` gives ``value``; fails if it decodes."""
    result = outcome(lambda: codec.decode(value, format=fmt))
    assert isinstance(result, str), f"decoded, expected an error: {str(result)[:200]}"
    return result


@pytest.fixture(scope="session")
def auto_codec() -> EventCodec:
    """The product's default codec: auto format, schema id 1, 1 MiB, depth 512."""
    return default_codec()


@pytest.fixture(scope="session")
def raw_codec() -> EventCodec:
    """Auto format that also reads headerless Avro with the event schema."""
    return EventCodec.from_schema_dir(default_schema_dir(), raw_writer_schema="ecs_process_event")


@pytest.fixture(scope="session")
def all_codecs(auto_codec: EventCodec, raw_codec: EventCodec) -> list[tuple[EventCodec, Any]]:
    """Every (codec, format) a record can meet: json, avro, auto, and auto with raw Avro."""
    return [(auto_codec, "json"), (auto_codec, "avro"), (auto_codec, "auto"), (raw_codec, None)]
