"""The event codec: record bytes in, ECS event dict out (and back, for our producers).

How a record's format is told apart (``format="auto"``), in this order:

1. empty (``b""`` or a tombstone) -> ``empty``; longer than ``max_record_bytes``
   -> ``too_large``, before any parsing.
2. byte 0 followed by at least 4 more bytes -> Confluent wire format: the 4 bytes are a
   big-endian schema id; a known id is decoded as Avro, an unknown one is
   ``avro_unknown_schema``.
3. first non-whitespace byte ``{`` -> JSON. ``[`` also goes to JSON, so a JSON array is
   reported as ``not_an_object`` rather than as an unknown format.
4. a raw writer schema is configured -> schemaless Avro with that schema.
5. otherwise ``unrecognised_format`` (``empty`` if only whitespace).

The rule is unambiguous for our schema: its first field, ``timestamp``, is a required
string, so a raw record starts with that string's length (never 0 unless it is empty,
never ``{`` or ``[``, which would be negative lengths). A raw writer schema whose first
field can encode as byte 0 (an optional field, say) should be read with ``format="avro"``
and no id mapping.

``format="avro"`` uses rules 2 and 4 only (a record without a header and no raw writer
schema is ``avro_unknown_schema``); ``format="json"`` uses rule 3's decoder for all.

Avro is read with schema resolution: the writer schema is the record's (by id, or the
configured raw one), the reader schema is the event schema, so a writer with an extra
field or without an optional one still decodes into the reader's shape. A record whose
writer schema is the reader schema (no resolution) is read by code compiled for that
schema (``avro_reader``), which leaves any record it is unsure of to fastavro.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

import fastavro
from fastavro.validation import validate

from consumer.batch import RecordBatch
from consumer.codecs.avro_mapping import FieldPresence, compile_mapping
from consumer.codecs.avro_reader import NOT_READ, ReadEvent, compile_reader
from consumer.codecs.ecs import nest_dotted_keys
from consumer.codecs.errors import DecodeError, EncodeError, SchemaError
from consumer.codecs.json_codec import DEFAULT_MAX_DEPTH, decode_json, encode_event_json
from consumer.codecs.schemas import (
    CONFLUENT_HEADER_BYTES,
    CONFLUENT_MAGIC,
    DEFAULT_EVENT_SCHEMA,
    DEFAULT_SCHEMA_IDS,
    AvroSchema,
    LocalSchemaRegistry,
    SchemaRegistry,
    confluent_header,
    load_schema_dir,
)

Format = Literal["json", "avro", "auto"]
FORMATS: tuple[Format, ...] = ("json", "avro", "auto")
DEFAULT_MAX_RECORD_BYTES = 1024 * 1024
# One Avro record in this many (by its position in the member's input) is decoded even
# when no rule can match it. A decode costs ~60 us (~2 KB events): one in 64 was 0.9 us
# a record, more than the rest of the skip path; one in 4096 is ~15 ns.
AVRO_SAMPLE = 4096
# Compiled readers of some fields kept at once (one per field set asked for).
_PARTIAL_READERS = 64

_JSON_START = re.compile(rb"[ \t\r\n]*[{\[]")
_NON_JSON_TYPE = re.compile(r'"(?:float|double|bytes|fixed)"')


_OPEN_BRACE, _CLOSE_BRACE = ord("{"), ord("}")
# A JSON object with leading whitespace (the fast path above takes the common case).
_JSON_OBJECT_PADDED = re.compile(rb"\A\s*\{.*\}\s*\Z", re.DOTALL)


def _valid_utf8(value: bytes) -> bool:
    if value.isascii():
        return True
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class EventCodec:
    """Decodes and encodes events; build it once, then call it for every record.

    Construction does no I/O: ``from_schema_dir`` reads the schema files.
    """

    def __init__(
        self,
        *,
        format: Format = "auto",
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        max_depth: int = DEFAULT_MAX_DEPTH,
        reader_schema: AvroSchema | None = None,
        registry: SchemaRegistry | None = None,
        raw_writer_schema: AvroSchema | None = None,
    ) -> None:
        if format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
        if (registry is not None or raw_writer_schema is not None) and reader_schema is None:
            raise ValueError("Avro decoding needs a reader schema")
        self.format: Format = format
        self.max_record_bytes = max_record_bytes
        self.max_depth = max_depth
        self.reader_schema = reader_schema
        self.registry = registry
        self.raw_writer_schema = raw_writer_schema
        # Compiled once here: the per-record path only calls these closures.
        self._to_event, self._from_event = (
            compile_mapping(reader_schema.raw) if reader_schema is not None else (None, None)
        )
        # Records of the reader schema itself are read by code compiled for it (see
        # avro_reader: ~2x faster than fastavro and the mapping, with the same result).
        self._read_event = compile_reader(reader_schema.raw) if reader_schema is not None else None
        # Readers of some fields only, by field set (see decode), compiled when first asked.
        self._partial_readers: dict[frozenset[str], ReadEvent | None] = {}
        # Avro floats may hold NaN or infinity, and bytes are no JSON value: candidates and
        # alerts are JSON, so such an event is refused here rather than failing the member
        # when it matches. Only a reader schema with such types pays for the check.
        self._check_json = reader_schema is not None and bool(
            _NON_JSON_TYPE.search(json.dumps(reader_schema.raw))
        )

    @classmethod
    def from_schema_dir(
        cls,
        schema_dir: str | Path,
        *,
        schema_ids: Mapping[int, str] = DEFAULT_SCHEMA_IDS,
        reader_schema: str = DEFAULT_EVENT_SCHEMA,
        raw_writer_schema: str | None = None,
        format: Format = "auto",
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        max_depth: int = DEFAULT_MAX_DEPTH,
    ) -> EventCodec:
        """Build a codec from the ``.avsc`` files in ``schema_dir`` (by file stem).

        ``schema_ids`` maps Confluent schema ids to file stems; ``reader_schema`` is the
        event shape decoded into; ``raw_writer_schema`` names the schema of records
        without a Confluent header (None: such records are not read as Avro).
        """
        schemas = load_schema_dir(schema_dir)
        for name in (reader_schema, raw_writer_schema):
            if name is not None and name not in schemas:
                raise SchemaError(f"no schema {name!r} in {schema_dir}")
        return cls(
            format=format,
            max_record_bytes=max_record_bytes,
            max_depth=max_depth,
            reader_schema=schemas[reader_schema],
            registry=LocalSchemaRegistry.from_names(schemas, schema_ids),
            raw_writer_schema=schemas[raw_writer_schema] if raw_writer_schema else None,
        )

    def can_read_in_part(self, fields: frozenset[str]) -> bool:
        """Whether ``decode(..., fields=fields)`` reads Avro records of the reader schema
        in part (the schema may not allow it); its reader is compiled now, not on the
        first record."""
        return self.reader_schema is not None and self._reader_of(fields) is not None

    def _reader_of(self, fields: frozenset[str]) -> ReadEvent | None:
        """The compiled reader of ``fields`` (None: the schema does not allow it). A
        member asks for one field set; should callers ask for many, the cache starts
        over rather than grow."""
        if fields not in self._partial_readers:
            if len(self._partial_readers) >= _PARTIAL_READERS:
                self._partial_readers.clear()
            assert self.reader_schema is not None  # only asked for Avro records
            self._partial_readers[fields] = compile_reader(self.reader_schema.raw, fields)
        return self._partial_readers[fields]

    # -- decoding ---------------------------------------------------------------------
    def decode(
        self,
        value: bytes | None,
        *,
        format: Format | None = None,
        fields: frozenset[str] | None = None,
    ) -> dict[str, Any]:
        """Decode one record value into an ECS event dict, or raise ``DecodeError``.

        ``fields`` (dotted ECS paths): an Avro record of the reader schema is read for
        those fields (whole, with their sub-fields) and the objects holding them only;
        the rest of it is skipped, not decoded or checked. Anything else, and every
        record when ``fields`` is None, is decoded whole."""
        fmt = format or self.format
        if not value:
            raise DecodeError("empty", "record has no value")
        if len(value) > self.max_record_bytes:
            raise DecodeError(
                "too_large", f"{len(value)} bytes, more than the {self.max_record_bytes} allowed"
            )
        if fmt == "json":
            return decode_json(value, max_depth=self.max_depth)
        if fmt == "avro":
            return self._decode_avro(value, fields)
        if fmt != "auto":
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        if value[0] == CONFLUENT_MAGIC and len(value) >= CONFLUENT_HEADER_BYTES:
            return self._decode_avro(value, fields)
        if _JSON_START.match(value):
            return decode_json(value, max_depth=self.max_depth)
        if self.raw_writer_schema is not None:
            return self._decode_avro(value, fields)
        if not value.strip():
            raise DecodeError("empty", "record holds only whitespace")
        raise DecodeError(
            "unrecognised_format",
            f"starts with byte 0x{value[0]:02x}: not JSON, no Confluent header, "
            "and no raw Avro writer schema is configured",
        )

    def looks_decodable(self, value: bytes | None) -> bool:
        """A cheap check of a record the prefilter skips, so it is not decoded.

        True when the record has the outer shape of one ``decode`` accepts: within the
        size limit and, for JSON, a ``{...}`` object in valid UTF-8; for Avro, a Confluent
        header with a known schema id (or a raw writer schema is configured). This
        catches what producers usually send wrong (truncated, non-object or binary JSON,
        bad encodings, unknown schemas) without parsing. False means: decode it fully,
        so that it reaches the dead-letter topic with the decoder's exact reason.
        """
        if not value or len(value) > self.max_record_bytes:
            return False
        fmt = self.format
        first = value[0]
        if first == _OPEN_BRACE and fmt != "avro":
            # The common case, decided without a regex or a copy.
            closed = value[-1] == _CLOSE_BRACE or value.rstrip()[-1:] == b"}"
            return closed and _valid_utf8(value)
        if first == CONFLUENT_MAGIC and fmt != "json" and len(value) >= CONFLUENT_HEADER_BYTES:
            schema_id = int.from_bytes(value[1:CONFLUENT_HEADER_BYTES], "big")
            return self.registry is not None and self.registry.lookup(schema_id) is not None
        if fmt != "avro" and _JSON_START.match(value):
            return _JSON_OBJECT_PADDED.match(value) is not None and _valid_utf8(value)
        return fmt != "json" and self.raw_writer_schema is not None

    def avro_fields(self) -> Callable[[str], bool] | None:
        """Whether an event decoded from Avro can hold a field (dotted ECS path): only
        the reader schema's fields reach an event, whatever the writer's. None when
        this codec reads no Avro."""
        if self.format == "json" or self.reader_schema is None:
            return None
        return FieldPresence(self.reader_schema.raw)

    def stores_strings_verbatim(self) -> bool:
        """Whether every string of a decoded event is in its record's bytes as UTF-8.

        True for JSON (escapes aside: see ``consumer.prefilter``) and for Avro strings;
        false when an Avro writer schema this codec reads has an enum, whose symbols are
        stored as indexes. A prefilter that looks for strings in the bytes relies on it.
        """
        if self.format == "json":
            return True
        writers = list(self.registry.known()) if self.registry is not None else []
        if self.raw_writer_schema is not None:
            writers.append(self.raw_writer_schema)
        return not any('"enum"' in writer.canonical for writer in writers)

    def needs_decoding(
        self, records: RecordBatch | Sequence[bytes], first_position: int
    ) -> list[int]:
        """Indexes of the records of a batch to decode even when no rule can match them.

        Those that fail ``looks_decodable``, so they reach the dead-letter topic with the
        decoder's reason; and, as no cheap check sees inside an Avro body, the Avro
        records whose position is a multiple of ``AVRO_SAMPLE``: a producer writing the
        wrong schema shows in the dead letters within that many records. A record's
        position is ``first_position`` plus its index: the caller counts the records it
        has read. Batch-wide checks decide the common batches (all JSON objects in ASCII,
        or all under known Confluent headers) without a call per record.
        """
        batch = records if isinstance(records, RecordBatch) else RecordBatch(records)
        values = batch.values
        if not values:
            return []
        if self.format != "avro" and self._all_json_objects(batch):
            return []
        if self.format != "json" and self._all_known_avro(batch):
            return list(range(-first_position % AVRO_SAMPLE, len(values), AVRO_SAMPLE))
        looks_decodable = self.looks_decodable
        return [
            i
            for i, value in enumerate(values)
            if not looks_decodable(value)
            or (value[0] != _OPEN_BRACE and not (first_position + i) % AVRO_SAMPLE)
        ]

    def _all_json_objects(self, batch: RecordBatch) -> bool:
        """Every record a JSON object's shape in ASCII."""
        return (
            batch.opens_json
            and batch.closes_json
            and batch.longest_at_most(self.max_record_bytes)
            and batch.ascii
        )

    def _all_known_avro(self, batch: RecordBatch) -> bool:
        """Every record under a Confluent header whose schema id the registry knows, and
        none too long."""
        if self.registry is None or not batch.all_open_with(CONFLUENT_MAGIC):
            return False
        if not batch.longest_at_most(self.max_record_bytes):
            return False
        headers = batch.heads(CONFLUENT_HEADER_BYTES)
        lookup = self.registry.lookup
        return all(
            len(header) == CONFLUENT_HEADER_BYTES
            and lookup(int.from_bytes(header[1:], "big")) is not None
            for header in headers
        )

    def _decode_avro(self, value: bytes, fields: frozenset[str] | None = None) -> dict[str, Any]:
        reader = self.reader_schema
        if value[0] == CONFLUENT_MAGIC and len(value) >= CONFLUENT_HEADER_BYTES:
            schema_id = int.from_bytes(value[1:CONFLUENT_HEADER_BYTES], "big")
            writer = self.registry.lookup(schema_id) if self.registry is not None else None
            if writer is None:
                raise DecodeError("avro_unknown_schema", f"schema id {schema_id} is not known")
            offset = CONFLUENT_HEADER_BYTES
        elif self.raw_writer_schema is not None:
            writer, offset = self.raw_writer_schema, 0
        else:
            raise DecodeError(
                "avro_unknown_schema",
                "no Confluent header and no raw Avro writer schema is configured",
            )
        assert reader is not None  # the constructor guarantees it when Avro is configured
        # Same canonical form: no resolution needed, and the compiled reader applies.
        same = writer.canonical == reader.canonical
        read = (self._reader_of(fields) if fields is not None else None) or self._read_event
        event = self._read_compiled(read, value, offset) if same else None
        if event is None:
            event = self._read_with_fastavro(value, offset, writer, None if same else reader)
        if self._check_json:
            try:
                json.dumps(event, allow_nan=False)
            except (ValueError, TypeError) as exc:
                detail = f"a value JSON cannot carry (NaN, infinity or bytes): {exc}"[:200]
                raise DecodeError("avro_invalid", detail) from None
        return event

    @staticmethod
    def _read_compiled(read: ReadEvent | None, value: bytes, offset: int) -> dict[str, Any] | None:
        """The event by a reader compiled for the reader schema; None when there is no
        such reader or it is unsure of the record (fastavro then gives the event or error)."""
        if read is None:
            return None
        try:
            return read(value, offset)
        except NOT_READ:
            return None

    def _read_with_fastavro(
        self, value: bytes, offset: int, writer: AvroSchema, reader: AvroSchema | None
    ) -> dict[str, Any]:
        buffer = io.BytesIO(value)
        buffer.seek(offset)
        resolve_to = reader.parsed if reader is not None else None
        try:
            record = fastavro.schemaless_reader(buffer, writer.parsed, resolve_to)
        except Exception as exc:  # fastavro raises many types on bad input; all mean this
            raise DecodeError("avro_invalid", f"{type(exc).__name__}: {exc}"[:200]) from None
        if buffer.tell() != len(value):
            extra = len(value) - buffer.tell()
            raise DecodeError("avro_invalid", f"{extra} bytes left after the record")
        return self._to_event(record) or {}  # type: ignore[misc,no-any-return]

    # -- encoding ---------------------------------------------------------------------
    def encode_json(self, event: dict[str, Any]) -> bytes:
        """Encode ``event`` as compact UTF-8 JSON."""
        return encode_event_json(event)

    def encode_avro(
        self,
        event: dict[str, Any],
        *,
        confluent_schema_id: int | None = None,
        drop_unknown: bool = False,
    ) -> bytes:
        """Encode ``event`` with the reader (event) schema, raw or with a Confluent header.

        Fields the schema lacks raise ``EncodeError`` naming them, unless
        ``drop_unknown``; ``@metadata`` (Beats' never-indexed envelope) is always dropped.
        A ``confluent_schema_id`` that the registry maps to another schema is refused.
        """
        schema = self.reader_schema
        if schema is None:
            raise EncodeError("no Avro event schema is configured")
        if confluent_schema_id is not None:
            self._check_schema_id(confluent_schema_id, schema)
        try:
            nested = nest_dotted_keys(event)
        except ValueError as exc:
            raise EncodeError(str(exc)) from None
        nested.pop("@metadata", None)
        unknown: list[str] = []
        record = self._from_event(nested, "", unknown)  # type: ignore[misc]
        if unknown and not drop_unknown:
            raise EncodeError(f"fields not in schema {schema.name}: {', '.join(sorted(unknown))}")
        out = io.BytesIO()
        if confluent_schema_id is not None:
            out.write(confluent_header(confluent_schema_id))
        try:
            fastavro.schemaless_writer(out, schema.parsed, record)
        except Exception:
            # Validating every record costs more than writing it; validate only to say
            # what is wrong with one that failed.
            try:
                validate(record, schema.parsed, raise_errors=True)
            except Exception as exc:  # ValidationError, and TypeError on odd values
                raise EncodeError(f"event does not fit schema {schema.name}: {exc}") from None
            raise
        return out.getvalue()

    def _check_schema_id(self, schema_id: int, schema: AvroSchema) -> None:
        if not 0 <= schema_id < 2**32:
            raise EncodeError(f"schema id {schema_id} does not fit in 4 bytes")
        known = self.registry.lookup(schema_id) if self.registry is not None else None
        if known is not None and known.canonical != schema.canonical:
            raise EncodeError(f"schema id {schema_id} is {known.name}, not {schema.name}")


def default_schema_dir() -> Path:
    """The bundled ``schemas/`` folder: inside the package when installed, else the repo's."""
    packaged = Path(str(files("consumer"))) / "schemas"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "schemas"


@cache
def default_codec() -> EventCodec:
    """A codec over the bundled schemas with the default id mapping; built on first use."""
    return EventCodec.from_schema_dir(default_schema_dir())


def decode_event(
    value: bytes | None, *, format: Format = "auto", codec: EventCodec | None = None
) -> dict[str, Any]:
    """Decode one record value into an ECS event dict, or raise ``DecodeError``.

    ``codec`` defaults to ``default_codec()``; the pipeline passes the one it built from
    its settings.
    """
    return (codec or default_codec()).decode(value, format=format)


def encode_event_avro(
    event: dict[str, Any],
    *,
    confluent_schema_id: int | None = None,
    drop_unknown: bool = False,
    codec: EventCodec | None = None,
) -> bytes:
    """Encode ``event`` as Avro with the event schema; see ``EventCodec.encode_avro``."""
    return (codec or default_codec()).encode_avro(
        event, confluent_schema_id=confluent_schema_id, drop_unknown=drop_unknown
    )
