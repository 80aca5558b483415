"""Avro schemas: loaded and parsed once, and the registry that maps schema ids to them.

A ``SchemaRegistry`` answers "which writer schema has id N?" for the Confluent wire
format (byte 0, then the schema id as 4 bytes big-endian, then the Avro body). The one
implementation today is ``LocalSchemaRegistry``: the ``.avsc`` files of a directory plus
a configured id mapping, so no network is needed. A client of Confluent's Schema
Registry would be a second implementation of the same protocol (fetch on a miss, cache).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import fastavro
from fastavro.schema import to_parsing_canonical_form

from consumer.codecs.errors import SchemaError

CONFLUENT_MAGIC = 0
CONFLUENT_HEADER_BYTES = 5
DEFAULT_EVENT_SCHEMA = "ecs_process_event"
# The id our own producers (generator, demo) use for the event schema when no
# registry assigns one; a deployment reading a real registry's ids maps them itself.
DEFAULT_SCHEMA_IDS: Mapping[int, str] = {1: DEFAULT_EVENT_SCHEMA}


@dataclass(frozen=True, eq=False)
class AvroSchema:
    """One schema, parsed once; ``canonical`` is its Parsing Canonical Form."""

    name: str
    raw: dict[str, Any] = field(repr=False)
    parsed: Any = field(repr=False)
    canonical: str = field(repr=False)

    @classmethod
    def from_dict(cls, name: str, raw: dict[str, Any]) -> AvroSchema:
        """Parse and compile ``raw`` (a schema as JSON data); ``SchemaError`` if unusable."""
        try:
            parsed = fastavro.parse_schema(raw)
            canonical = to_parsing_canonical_form(raw)
        except Exception as exc:  # fastavro raises several types for a bad schema
            raise SchemaError(f"schema {name}: {exc}") from None
        return cls(name, raw, parsed, canonical)

    @classmethod
    def from_file(cls, path: Path) -> AvroSchema:
        """Load ``path`` (an ``.avsc`` file); the schema's name is the file's stem."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SchemaError(f"{path}: {exc}") from None
        return cls.from_dict(path.stem, raw)


def load_schema_dir(directory: str | Path) -> dict[str, AvroSchema]:
    """Every ``*.avsc`` file of ``directory``, by file stem."""
    root = Path(directory)
    if not root.is_dir():
        raise SchemaError(f"Avro schema directory {root} does not exist")
    return {p.stem: AvroSchema.from_file(p) for p in sorted(root.glob("*.avsc"))}


class SchemaRegistry(Protocol):
    """Writer schemas by Confluent schema id."""

    def lookup(self, schema_id: int) -> AvroSchema | None:
        """The writer schema with ``schema_id``, or None if it is not known."""
        ...

    def known(self) -> list[AvroSchema]:
        """Every writer schema it can return."""
        ...


class LocalSchemaRegistry:
    """A fixed id -> schema mapping, built at start-up from local files."""

    def __init__(self, schemas: Mapping[int, AvroSchema]) -> None:
        self._schemas = dict(schemas)

    @classmethod
    def from_names(
        cls, schemas: Mapping[str, AvroSchema], ids: Mapping[int, str]
    ) -> LocalSchemaRegistry:
        """Map each id in ``ids`` to the schema of that name; a missing name is an error."""
        resolved: dict[int, AvroSchema] = {}
        for schema_id, name in ids.items():
            if not 0 <= schema_id < 2**32:
                raise SchemaError(f"schema id {schema_id} does not fit in 4 bytes")
            if name not in schemas:
                known = ", ".join(sorted(schemas)) or "none"
                raise SchemaError(f"schema id {schema_id} names {name!r}; known: {known}")
            resolved[schema_id] = schemas[name]
        return cls(resolved)

    def lookup(self, schema_id: int) -> AvroSchema | None:
        """The writer schema with ``schema_id``, or None if it is not known."""
        return self._schemas.get(schema_id)

    def known(self) -> list[AvroSchema]:
        """Every writer schema it can return."""
        return list(self._schemas.values())

    def ids_of(self, schema: AvroSchema) -> list[int]:
        """The ids mapped to a schema with the same canonical form as ``schema``."""
        return [i for i, s in self._schemas.items() if s.canonical == schema.canonical]


def confluent_header(schema_id: int) -> bytes:
    """The 5-byte Confluent wire-format prefix for ``schema_id``."""
    return bytes([CONFLUENT_MAGIC]) + schema_id.to_bytes(4, "big")
