"""Round trips: JSON and Avro (raw and Confluent framing) give the same event dict."""

from __future__ import annotations

import io
import json
from typing import Any

import fastavro
import pytest

from consumer.codecs import (
    DecodeError,
    EncodeError,
    EventCodec,
    decode_event,
    default_codec,
    encode_event_avro,
    encode_event_json,
    nest_dotted_keys,
)

from .conftest import ID_CURRENT, ID_NEW, ID_OLD, load_vector

AUDITBEAT = (
    b'{"@timestamp":"2022-08-10T14:03:21.512Z","@metadata":{"beat":"auditbeat","type":"_doc",'
    b'"version":"8.2.3"},"event":{"kind":"event","category":["process"],"type":["start"],'
    b'"action":"process_started","module":"system","dataset":"process"},"process":{"name":'
    b'"kextunload","args":["kextunload","EndpointSecurity.kext"],"executable":"/sbin/kextunload",'
    b'"pid":4187,"parent":{"pid":4180},"entity_id":"abc"},"host":{"name":"mbp-eng-042","os":'
    b'{"type":"macos","family":"darwin"}},"user":{"name":"root"}}'
)


def test_json_round_trip(defend_event: dict[str, Any]) -> None:
    assert decode_event(encode_event_json(defend_event), format="json") == defend_event
    assert decode_event(encode_event_json(defend_event), format="auto") == defend_event


@pytest.mark.parametrize("schema_id", [ID_CURRENT, None])
def test_avro_round_trip_equals_json_form(
    codec: EventCodec, raw_codec: EventCodec, defend_event: dict[str, Any], schema_id: int | None
) -> None:
    value = codec.encode_avro(defend_event, confluent_schema_id=schema_id)
    reader = codec if schema_id is not None else raw_codec
    assert reader.decode(value, format="avro") == defend_event
    assert reader.decode(value, format="auto") == defend_event
    assert reader.decode(value) == decode_event(encode_event_json(defend_event))


def test_confluent_framing_is_magic_byte_and_big_endian_id(defend_event: dict[str, Any]) -> None:
    value = encode_event_avro(defend_event, confluent_schema_id=0x01020304)
    assert value[:5] == b"\x00\x01\x02\x03\x04"
    assert value[5:] == encode_event_avro(defend_event)


@pytest.mark.parametrize(
    "vector", ["defend_macos_exec_dotted.json", "defend_macos_exec_mixed.json"]
)
def test_dotted_and_mixed_keys_decode_faithfully(
    codec: EventCodec, defend_event: dict[str, Any], vector: str
) -> None:
    written = load_vector(vector)
    decoded = codec.decode(encode_event_json(written))
    assert decoded == written  # JSON keeps the producer's spelling
    assert "process.name" in decoded or "process.parent.pid" in decoded
    assert nest_dotted_keys(decoded) == defend_event  # and means the same document
    # Avro has one spelling: the nested one.
    assert codec.decode(codec.encode_avro(written, confluent_schema_id=ID_CURRENT)) == defend_event


def test_auditbeat_record_decodes_and_metadata_is_dropped_only_by_avro(codec: EventCodec) -> None:
    event = codec.decode(AUDITBEAT)
    assert event["@metadata"]["beat"] == "auditbeat"
    assert event["process"]["parent"] == {"pid": 4180}
    avro = codec.decode(codec.encode_avro(event, confluent_schema_id=ID_CURRENT))
    assert avro == {k: v for k, v in event.items() if k != "@metadata"}


def test_json_with_leading_whitespace_is_json(codec: EventCodec) -> None:
    assert codec.decode(b' \r\n\t{"a": 1}') == {"a": 1}


def test_scalar_for_array_field_becomes_one_element_array(codec: EventCodec) -> None:
    event = {"@timestamp": "2024-01-01T00:00:00Z", "event": {"category": "process"}}
    decoded = codec.decode(codec.encode_avro(event, confluent_schema_id=ID_CURRENT))
    assert decoded["event"] == {"category": ["process"]}


def test_nulls_and_empty_records_are_dropped(codec: EventCodec) -> None:
    event = {"@timestamp": "t", "process": {"pid": 1, "parent": {}}, "host": None}
    decoded = codec.decode(codec.encode_avro(event, confluent_schema_id=ID_CURRENT))
    assert decoded == {"@timestamp": "t", "process": {"pid": 1}}


def test_unknown_fields_are_refused_unless_dropped(codec: EventCodec) -> None:
    event = {"@timestamp": "t", "process": {"pid": 1, "thread_count": 3}, "cloud": {"x": 1}}
    with pytest.raises(EncodeError, match=r"cloud, process\.thread_count"):
        codec.encode_avro(event)
    value = codec.encode_avro(event, drop_unknown=True, confluent_schema_id=ID_CURRENT)
    assert codec.decode(value) == {"@timestamp": "t", "process": {"pid": 1}}


@pytest.mark.parametrize(
    "event",
    [
        {"process": {"pid": 1}},  # @timestamp is required
        {"@timestamp": "t", "process": {"pid": "4187"}},  # wrong type
        {"@timestamp": "t", "process": "kextunload"},  # a value where an object belongs
        {"@timestamp": "t", "process.name": "a", "process": {"name": "b"}},  # given twice
    ],
)
def test_events_that_do_not_fit_raise_encode_error(codec: EventCodec, event: dict) -> None:
    with pytest.raises(EncodeError):
        codec.encode_avro(event)


def test_schema_id_of_another_schema_is_refused(codec: EventCodec) -> None:
    with pytest.raises(EncodeError, match="network_flow"):
        codec.encode_avro({"@timestamp": "t"}, confluent_schema_id=20)


def test_json_encoder_refuses_nan_and_non_json_values() -> None:
    with pytest.raises(EncodeError):
        encode_event_json({"a": float("nan")})
    with pytest.raises(EncodeError):
        encode_event_json({"a": object()})


def test_default_codec_is_built_once() -> None:
    assert default_codec() is default_codec()


# -- schema resolution --------------------------------------------------------------------


def _write(schema: Any, record: dict[str, Any], schema_id: int) -> bytes:
    out = io.BytesIO()
    out.write(b"\x00" + schema_id.to_bytes(4, "big"))
    fastavro.schemaless_writer(out, schema.parsed, record)
    return out.getvalue()


def test_old_writer_missing_optional_fields_decodes(
    codec: EventCodec, schemas: dict[str, Any], defend_event: dict[str, Any]
) -> None:
    event = json.loads(json.dumps(defend_event))
    del event["process"]["Ext"]
    del event["host"]["mac"]
    record = codec._from_event(event, "", [])  # the current shape...
    del record["process"]["Ext"]  # ...less what the old writer never had
    del record["host"]["mac"]
    value = _write(schemas["ecs_process_event_v0"], record, ID_OLD)
    assert codec.decode(value) == event


def test_new_writer_with_extra_fields_decodes_into_reader_shape(
    codec: EventCodec, schemas: dict[str, Any], defend_event: dict[str, Any]
) -> None:
    record = codec._from_event(defend_event, "", [])
    record["process"]["thread_count"] = 7
    record["cloud"] = {"provider": "aws"}
    value = _write(schemas["ecs_process_event_v2"], record, ID_NEW)
    assert codec.decode(value) == defend_event


def test_from_schema_dir_reads_the_bundled_schemas(defend_event: dict[str, Any]) -> None:
    from consumer.codecs import default_schema_dir

    codec = EventCodec.from_schema_dir(default_schema_dir(), raw_writer_schema="ecs_process_event")
    assert codec.decode(codec.encode_avro(defend_event)) == defend_event
    with pytest.raises(DecodeError) as info:
        codec.decode(b"\x00\x00\x00\x00\x07" + codec.encode_avro(defend_event))
    assert info.value.reason == "avro_unknown_schema"
