"""The compiled Avro reader gives what fastavro and the mapping give, or refuses.

A record it reads must decode to the very event fastavro and ``avro_mapping`` give; a
record it is unsure of (corrupt, or encoded unusually) must raise one of ``NOT_READ``,
so the codec falls back to fastavro for the exact event or error.
"""

from __future__ import annotations

import contextlib
import io
import json
from itertools import count
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer.codecs import DecodeError, EventCodec, default_schema_dir, encode_event_avro
from consumer.codecs.avro_mapping import FieldPresence, compile_mapping
from consumer.codecs.avro_reader import NOT_READ, Unsure, compile_reader
from consumer.generator import generate_events

from ..paths import held_paths

_names = count()

_PRIMITIVE = st.sampled_from(
    ["null", "boolean", "int", "long", "float", "double", "bytes", "string"]
)


def _record(fields: list[Any], ecs_names: list[bool]) -> dict[str, Any]:
    n = next(_names)
    return {
        "type": "record",
        "name": f"R{n}",
        "fields": [
            {"name": f"f{i}", "type": t} | ({"ecs_name": f"f{i}.ecs"} if ecs else {})
            for i, (t, ecs) in enumerate(zip(fields, ecs_names, strict=False))
        ],
    }


def _types(depth: int) -> st.SearchStrategy[Any]:
    if depth == 0:
        return _PRIMITIVE
    inner = _types(depth - 1)
    return st.one_of(
        _PRIMITIVE,
        inner.filter(lambda t: not isinstance(t, list) and t != "null").flatmap(
            lambda t: st.sampled_from([["null", t], [t, "null"]])
        ),
        st.just(["null", "string", "long"]),
        inner.filter(lambda t: not isinstance(t, list)).map(
            lambda t: {"type": "array", "items": t}
        ),
        inner.filter(lambda t: not isinstance(t, list)).map(lambda t: {"type": "map", "values": t}),
        st.lists(inner, min_size=0, max_size=4).flatmap(
            lambda fs: st.lists(st.booleans(), min_size=len(fs), max_size=len(fs)).map(
                lambda ecs: _record(fs, ecs)
            )
        ),
    )


_SCHEMAS = st.lists(_types(3), min_size=1, max_size=6).flatmap(
    lambda fs: st.lists(st.booleans(), min_size=len(fs), max_size=len(fs)).map(
        lambda ecs: _record(fs, ecs)
    )
)


def _datum(schema: Any) -> st.SearchStrategy[Any]:
    """Values fastavro writes for ``schema`` (records as dicts keyed by Avro name)."""
    if isinstance(schema, list):
        return st.one_of(*(_datum(branch) for branch in schema))
    if isinstance(schema, dict):
        if schema["type"] == "array":
            return st.lists(_datum(schema["items"]), max_size=3)
        if schema["type"] == "map":
            return st.dictionaries(st.text(max_size=3), _datum(schema["values"]), max_size=3)
        fields = {f["name"]: _datum(f["type"]) for f in schema["fields"]}
        return st.fixed_dictionaries(fields)
    return {
        "null": st.none(),
        "boolean": st.booleans(),
        "int": st.integers(-(2**31), 2**31 - 1),
        "long": st.integers(-(2**63), 2**63 - 1),
        "float": st.floats(width=32, allow_nan=False),
        "double": st.floats(allow_nan=False),
        "bytes": st.binary(max_size=80),
        "string": st.text(max_size=80),
    }[schema]


_CASES = _SCHEMAS.flatmap(lambda s: st.tuples(st.just(s), _datum(s)))


def _write(schema: dict[str, Any], datum: Any) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), datum)
    return out.getvalue()


def _reference(schema: dict[str, Any], data: bytes) -> dict[str, Any]:
    """fastavro, then the mapping: what the codec decoded before the compiled reader."""
    buffer = io.BytesIO(data)
    record = fastavro.schemaless_reader(buffer, fastavro.parse_schema(schema), None)
    if buffer.tell() != len(data):
        raise ValueError("bytes left after the record")
    return compile_mapping(schema)[0](record) or {}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_CASES)
def test_reads_what_fastavro_and_the_mapping_read(case: tuple[dict[str, Any], Any]) -> None:
    schema, datum = case
    read = compile_reader(schema)
    assert read is not None, json.dumps(schema)
    data = _write(schema, datum)
    try:
        fast = read(data, 0)
    except Unsure as refused:
        # Arrays of items written in no bytes (nulls, empty records) longer than the
        # record are left to fastavro: the one refusal of a well-formed record.
        assert str(refused) == "count"
        return
    assert fast == _reference(schema, data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_CASES, st.data())
def test_a_corrupt_record_is_refused_or_read_as_fastavro_reads_it(
    case: tuple[dict[str, Any], Any], data: st.DataObject
) -> None:
    schema, datum = case
    record = _corrupted(_write(schema, datum), data)
    read = compile_reader(schema)
    assert read is not None
    try:
        fast = read(record, 0)
    except NOT_READ:
        return  # the codec then asks fastavro
    # By repr: a flipped byte can make a NaN, which equals nothing, itself included.
    assert repr(fast) == repr(_reference(schema, record))


def _corrupted(written: bytes, data: st.DataObject) -> bytes:
    """``written`` with one byte changed, cut short, or with bytes appended."""
    record = bytearray(written)
    edit = data.draw(st.sampled_from(["flip", "cut", "append"]))
    if edit == "flip" and record:
        at = data.draw(st.integers(0, len(record) - 1))
        record[at] = data.draw(st.integers(0, 255))
    elif edit == "cut" and record:
        record = record[: data.draw(st.integers(0, len(record) - 1))]
    else:
        record += data.draw(st.binary(min_size=1, max_size=3))
    return bytes(record)


def test_every_generated_event_reads_as_before(codec: EventCodec) -> None:
    read = compile_reader(codec.reader_schema.raw)  # type: ignore[union-attr]
    assert read is not None
    for event in generate_events(2000, match_every=50):
        record = encode_event_avro(event, confluent_schema_id=1, drop_unknown=True)
        assert read(record, 5) == _reference(codec.reader_schema.raw, record[5:])  # type: ignore[union-attr]


def test_blocks_with_a_negative_count_and_a_size() -> None:
    schema = {
        "type": "record",
        "name": "A",
        "fields": [{"name": "xs", "type": {"type": "array", "items": "long"}}],
    }
    # Two items as one block written with its byte size: count -2 (zigzag 3), size 2,
    # items 1 and -1 (zigzag 2 and 1), then the closing count 0.
    data = bytes([3, 4, 2, 1, 0])
    read = compile_reader(schema)
    assert read is not None
    assert read(data, 0) == _reference(schema, data) == {"xs": [1, -1]}


@pytest.mark.parametrize(
    ("field_type", "data"),
    [
        ("boolean", bytes([2])),  # fastavro: True
        ("long", bytes([0xFF] * 9 + [0x7F])),  # more than 64 bits
        ("long", bytes([0xFF] * 10 + [0x01])),  # more than 10 bytes
        ("long", bytes([0x80, 0x00])),  # 0, written long
        ("int", bytes([0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01])),  # past 32 bits
        ("string", bytes([1])),  # length -1
        (["null", "string"], bytes([4])),  # no third branch
        ({"type": "array", "items": "null"}, bytes([10, 0])),  # 5 nulls in 2 bytes
    ],
    ids=["boolean 2", "long past 64 bits", "long of 11 bytes", "long 0 in 2 bytes",
         "int past 32 bits", "negative length", "union tag out of range", "nulls"],
)  # fmt: skip
def test_odd_encodings_are_refused_or_read_as_fastavro_reads_them(
    field_type: Any, data: bytes
) -> None:
    schema = {"type": "record", "name": "A", "fields": [{"name": "x", "type": field_type}]}
    read = compile_reader(schema)
    assert read is not None
    try:
        fast = read(data, 0)
    except NOT_READ:
        return
    assert fast == _reference(schema, data)


@pytest.mark.parametrize(
    "field_type",
    [
        {"type": "enum", "name": "E", "symbols": ["A", "B"]},
        {"type": "fixed", "name": "F", "size": 4},
        {"type": "long", "logicalType": "timestamp-millis"},
        [
            "null",
            {"type": "map", "values": "string"},
            {"type": "record", "name": "B", "fields": []},
        ],
    ],
    ids=["enum", "fixed", "logical type", "record and map in one union"],
)
def test_schemas_it_does_not_cover_get_no_reader(field_type: Any) -> None:
    schema = {"type": "record", "name": "A", "fields": [{"name": "x", "type": field_type}]}
    assert compile_reader(schema) is None


def test_the_codec_reads_its_own_schema_without_fastavro(
    codec: EventCodec, defend_event: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    record = encode_event_avro(defend_event, confluent_schema_id=1, drop_unknown=True)
    expected = codec.decode(record)

    def refuse(*_: Any) -> None:
        raise AssertionError("fastavro was asked")

    monkeypatch.setattr(fastavro, "schemaless_reader", refuse)
    assert codec.decode(record) == expected


def test_a_truncated_record_still_fails_as_fastavro_says(
    codec: EventCodec, defend_event: dict[str, Any]
) -> None:
    record = encode_event_avro(defend_event, confluent_schema_id=1, drop_unknown=True)
    with pytest.raises(DecodeError) as failure:
        codec.decode(record[:-3])
    assert failure.value.reason == "avro_invalid"
    assert "EOFError" in failure.value.detail or "Error" in failure.value.detail


def test_names_in_the_schema_never_become_code() -> None:
    name = "A\nraise SystemExit('injected')"
    schema = {"type": "record", "name": name, "fields": [{"name": "x", "type": "long"}]}
    read = compile_reader(schema)
    assert read is not None
    assert read(bytes([4]), 0) == {"x": 2}


def test_a_schema_that_is_no_record_gets_no_reader() -> None:
    assert compile_reader({"type": "array", "items": "long"}) is None  # type: ignore[arg-type]


# -- reading some fields only -------------------------------------------------------------


def _paths(schema: Any, prefix: str = "") -> list[str]:
    """Every field's dotted ECS path, through records and optional records, and a path
    under each (which a query may name where the schema has no such field)."""
    if isinstance(schema, list) and len(schema) == 2 and "null" in schema:
        schema = schema[1 - schema.index("null")]
    if not (isinstance(schema, dict) and schema.get("type") == "record"):
        return []
    paths = []
    for field in schema["fields"]:
        path = f"{prefix}{field.get('ecs_name', field['name'])}"
        paths += [path, f"{path}.x", *_paths(field["type"], f"{path}.")]
    return paths


def _fields(schema: dict[str, Any], data: st.DataObject) -> frozenset[str]:
    """Some of the schema's paths, or of none of its fields, to read."""
    return frozenset(data.draw(st.lists(st.sampled_from([*_paths(schema), "nowhere"]), max_size=6)))


def _restricted(
    schema: dict[str, Any], event: dict[str, Any], fields: frozenset[str] | set[str], at: str = ""
) -> dict[str, Any]:
    """``event`` with only ``fields``, whole, and what holds them: records read in part,
    anything else whole."""
    out = {}
    for field in schema["fields"]:
        key = field.get("ecs_name", field["name"])
        path, value = f"{at}{key}", event.get(key)
        if value is None:
            continue
        if path in fields:
            out[key] = value
        elif any(f.startswith(path + ".") for f in fields):
            kind = field["type"]
            if isinstance(kind, list) and len(kind) == 2 and "null" in kind:
                kind = kind[1 - kind.index("null")]
            if isinstance(kind, dict) and kind.get("type") == "record":
                value = _restricted(kind, value, fields, f"{path}.") or None
            if value is not None:  # a record read in part with nothing left is absent
                out[key] = value
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_CASES, st.data())
def test_reading_some_fields_gives_those_fields_as_the_whole_read(
    case: tuple[dict[str, Any], Any], data: st.DataObject
) -> None:
    schema, datum = case
    fields = _fields(schema, data)
    whole, part = compile_reader(schema), compile_reader(schema, fields)
    assert whole is not None and part is not None
    record = _write(schema, datum)
    try:
        event = whole(record, 0)
    except Unsure:
        return  # items of no bytes past the record's length (see above)
    assert part(record, 0) == _restricted(schema, event, fields)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_CASES, st.data())
def test_reading_some_fields_of_a_corrupt_record_ends_in_an_event_or_a_refusal(
    case: tuple[dict[str, Any], Any], data: st.DataObject
) -> None:
    # The bytes it skips are not checked, so it may read a record the whole read refuses;
    # it must still end, with an event or one of NOT_READ (the codec then asks fastavro).
    schema, datum = case
    record = _corrupted(_write(schema, datum), data)
    part = compile_reader(schema, _fields(schema, data))
    assert part is not None
    with contextlib.suppress(NOT_READ):
        assert isinstance(part(record, 0), dict)


def test_the_seed_rule_fields_of_generated_events_read_as_the_whole_read(
    codec: EventCodec,
) -> None:
    schema = codec.reader_schema.raw  # type: ignore[union-attr]
    fields = {"event.category", "event.type", "process.name", "process.args", "event.id"}
    whole, part = compile_reader(schema), compile_reader(schema, frozenset(fields))
    assert whole is not None and part is not None
    for event in generate_events(500, match_every=10):
        record = encode_event_avro(event, confluent_schema_id=1, drop_unknown=True)
        read = part(record, 5)
        assert read == _restricted(schema, whole(record, 5), fields)
        assert set(read) == {"event", "process"} and "host" not in read
        assert codec.decode(record, fields=frozenset(fields)) == read
        assert codec.decode(record) == whole(record, 5)


def test_a_record_read_in_part_is_not_walked_past_its_last_field_read(
    codec: EventCodec,
) -> None:
    schema = codec.reader_schema.raw  # type: ignore[union-attr]
    whole, part = compile_reader(schema), compile_reader(schema, frozenset({"process.args"}))
    assert whole is not None and part is not None
    [event] = generate_events(1, match_every=1)
    record = encode_event_avro(event, confluent_schema_id=1, drop_unknown=True)
    read = {"process": {"args": event["process"]["args"]}}
    assert part(record, 5) == read
    # Broken only after process.args (the rest of process, the event's last field):
    # the whole read refuses them, the read in part never gets there.
    for broken in (record[:-1], record + b"\x00"):
        with pytest.raises(NOT_READ):
            whole(broken, 5)
        assert part(broken, 5) == read


@pytest.mark.timeout(10)
@pytest.mark.parametrize("items", ["double", "boolean", "null", {"type": "map", "values": "float"}])
def test_a_corrupt_count_of_skipped_items_is_refused_not_looped_over(items: Any) -> None:
    # Skipping a double or a boolean reads no byte: a count of 2**62 must not be walked.
    schema = {
        "type": "record",
        "name": "A",
        "fields": [
            {"name": "xs", "type": {"type": "array", "items": items}},
            {"name": "after", "type": "long"},  # read: the items are skipped, not ignored
        ],
    }
    part = compile_reader(schema, frozenset(["after"]))
    assert part is not None
    huge = (2**62) << 1  # zigzag
    varint = bytearray()
    while huge > 127:
        varint.append(huge & 0x7F | 0x80)
        huge >>= 7
    varint.append(huge)
    with pytest.raises(NOT_READ):
        part(bytes(varint) + bytes(16), 0)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_CASES)
def test_every_field_a_decoded_event_holds_is_one_the_schema_has_a_place_for(
    case: tuple[dict[str, Any], Any],
) -> None:
    schema, datum = case
    present = FieldPresence(schema)
    event = _reference(schema, _write(schema, datum))
    assert all(present(path) for path in held_paths(event))
    assert not present("no.such.field")


def test_the_process_event_schema_has_no_place_for_other_events_fields() -> None:
    present = EventCodec.from_schema_dir(default_schema_dir()).avro_fields()
    assert present is not None
    assert present("@timestamp") and present("process.parent.name") and present("process")
    assert present("labels.any.key")  # a map: any key
    assert not present("url.path") and not present("timestamp")  # timestamp is @timestamp
