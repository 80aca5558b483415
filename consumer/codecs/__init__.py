"""Codecs: Kafka record bytes <-> ECS event dicts (JSON as Beats/Agent write it, Avro).

Pure: no Kafka here. Build an ``EventCodec`` once (schemas are parsed once) and call
``decode`` per record; every failure is a ``DecodeError`` with a stable ``reason``.
"""

from consumer.codecs.codec import (
    DEFAULT_MAX_RECORD_BYTES,
    FORMATS,
    EventCodec,
    Format,
    decode_event,
    default_codec,
    default_schema_dir,
    encode_event_avro,
)
from consumer.codecs.ecs import nest_dotted_keys
from consumer.codecs.errors import DECODE_REASONS, DecodeError, EncodeError, SchemaError
from consumer.codecs.json_codec import DEFAULT_MAX_DEPTH, decode_json, encode_event_json
from consumer.codecs.schemas import (
    DEFAULT_EVENT_SCHEMA,
    DEFAULT_SCHEMA_IDS,
    AvroSchema,
    LocalSchemaRegistry,
    SchemaRegistry,
    confluent_header,
    load_schema_dir,
)

__all__ = [
    "DECODE_REASONS",
    "DEFAULT_EVENT_SCHEMA",
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_RECORD_BYTES",
    "DEFAULT_SCHEMA_IDS",
    "FORMATS",
    "AvroSchema",
    "DecodeError",
    "EncodeError",
    "EventCodec",
    "Format",
    "LocalSchemaRegistry",
    "SchemaError",
    "SchemaRegistry",
    "confluent_header",
    "decode_event",
    "decode_json",
    "default_codec",
    "default_schema_dir",
    "encode_event_avro",
    "encode_event_json",
    "load_schema_dir",
    "nest_dotted_keys",
]
