"""Shared fixtures: the §5.2 Defend event in three spellings and codecs over the schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from consumer.codecs import EventCodec, LocalSchemaRegistry, default_schema_dir, load_schema_dir

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "codecs"

# Schema ids used in these tests (the product default maps 1 to the event schema).
ID_CURRENT, ID_OLD, ID_NEW, ID_OTHER = 1, 10, 12, 20


def load_vector(name: str) -> dict[str, Any]:
    """A JSON event from tests/vectors/codecs."""
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def defend_event() -> dict[str, Any]:
    return load_vector("defend_macos_exec.json")


@pytest.fixture(scope="session")
def schemas() -> dict[str, Any]:
    found = load_schema_dir(default_schema_dir())
    found.update(load_schema_dir(VECTORS / "schemas"))
    return found


@pytest.fixture(scope="session")
def codec(schemas: dict[str, Any]) -> EventCodec:
    """Auto format, Confluent ids for current/old/new/unrelated writers, no raw schema."""
    registry = LocalSchemaRegistry.from_names(
        schemas,
        {
            ID_CURRENT: "ecs_process_event",
            ID_OLD: "ecs_process_event_v0",
            ID_NEW: "ecs_process_event_v2",
            ID_OTHER: "network_flow",
        },
    )
    return EventCodec(reader_schema=schemas["ecs_process_event"], registry=registry)


@pytest.fixture(scope="session")
def raw_codec(schemas: dict[str, Any]) -> EventCodec:
    """Like ``codec`` plus raw (headerless) Avro written with the event schema."""
    return EventCodec(
        reader_schema=schemas["ecs_process_event"],
        registry=LocalSchemaRegistry.from_names(schemas, {ID_CURRENT: "ecs_process_event"}),
        raw_writer_schema=schemas["ecs_process_event"],
    )
