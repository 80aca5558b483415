"""Hostile records against every decoder: no crash, no hang, bounded memory, right reason.

tests/unit/codecs/test_poison.py holds one realistic poison record per reason; here the
records are built to hurt (tens of thousands of nesting levels, 1 MiB of the most
expensive JSON, lying Avro lengths) or generated (hypothesis), and each decoder (json,
avro, auto, auto with raw Avro) must answer with an event or a ``DecodeError`` whose
reason the dead-letter header will carry. A decoded event must also survive what the
pipeline does next: JSON encoding for the matches topic and the alert.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from consumer.alerting.facts import read_facts
from consumer.codecs import DEFAULT_MAX_RECORD_BYTES, DecodeError, EventCodec, encode_event_json
from consumer.pipeline.records import CandidateRecord, decode_candidates, encode_candidates
from consumer.rules import builtin_rules_path, load_rules
from consumer.rules.model import AlertSuppression

from .conftest import MIB, measured, outcome, reason

pytestmark = pytest.mark.timeout(60)

LEVELS = 50_000
# Peak Python allocation while decoding one record, as a multiple of its size. The
# costliest JSON is a 1 MiB array of empty objects or arrays (3 bytes each, ~60 bytes
# each as Python objects): about 47x measured. The member decodes one record at a time,
# so with --max-record-bytes (1 MiB) this bounds a hostile record's cost at ~64 MiB.
MAX_EXPANSION = 64


# Suppressing on "a", the field most of these events hold, so its value is a group term.
_RULE = replace(
    load_rules([builtin_rules_path()]).rules[0],
    alert_suppression=AlertSuppression(("a",), None, "suppress"),
)


def _survives_pipeline(event: dict[str, Any]) -> None:
    """What the member does with a decoded event that matched: its facts through the
    matches topic and back, the event out as JSON (in the alert)."""
    encode_event_json(event)  # strict: no NaN, no lone surrogates
    facts = read_facts(_RULE, event, 1)
    candidate = CandidateRecord("rule", "topic", 0, 1, None, facts=facts, value=b"{}")
    [received] = decode_candidates(encode_candidates([candidate]))
    assert received.facts == facts


# -- nesting ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"[" * LEVELS, "too_deep"),
        (b"{" * LEVELS, "invalid_json"),  # a key must follow "{": fails at byte 1
        (b'{"a":' * LEVELS, "too_deep"),
        (b'{"a":' * LEVELS + b"1" + b"}" * LEVELS, "too_deep"),
        (b'{"a":' + b"[" * LEVELS + b"]" * LEVELS + b"}", "too_deep"),
        (b'{"a":[' * LEVELS + b"]}" * LEVELS, "too_deep"),
        (b" \n\t" * 1000 + b'{"a":' * LEVELS, "too_deep"),
    ],
    ids=["arrays", "braces", "objects-open", "objects", "arrays-in-object", "mixed", "ws"],
)
def test_deep_nesting_is_refused_by_every_json_path(
    all_codecs: list[tuple[EventCodec, Any]], value: bytes, expected: str
) -> None:
    for codec, fmt in all_codecs:
        if fmt == "avro":
            continue  # no header: avro_unknown_schema, covered below
        with measured() as cost:
            got = reason(codec, value, fmt)
        assert got == expected, (fmt, got)
        assert cost.seconds < 2.0
        assert cost.peak < 8 * MIB


def test_deep_nesting_under_the_recursion_limit_but_over_max_depth(auto_codec: EventCodec) -> None:
    value = b'{"a":' + b"[" * 900 + b"]" * 900 + b"}"  # below json's own recursion limit
    assert reason(auto_codec, value) == "too_deep"


# -- size: the limit, and the worst that fits under it ----------------------------------


def _fill(prefix: bytes, unit: bytes, suffix: bytes, size: int = DEFAULT_MAX_RECORD_BYTES) -> bytes:
    count = (size - len(prefix) - len(suffix)) // len(unit)
    return prefix + (unit * count).rstrip(b",") + suffix


@pytest.mark.parametrize(
    ("unit", "expected"),
    [
        (b"{},", "ok"),  # the costliest shape per byte
        (b"[],", "ok"),
        (b"0,", "ok"),
        (b"0.5,", "ok"),
        (b'"x",', "ok"),
        (b"9" * 4000 + b",", "ok"),  # big integers, under the digit limit
        (b"1e308,", "ok"),
        (b"1e400,", "invalid_json"),  # out of a double's range: would be infinity
        (b"NaN,", "invalid_json"),
        (b'"\\ud800",', "invalid_utf8"),  # lone surrogates cannot be written back out
    ],
)
def test_expensive_records_have_bounded_cost(
    auto_codec: EventCodec, unit: bytes, expected: str
) -> None:
    # A quarter of the limit: the cost per byte is what matters, and tracemalloc makes
    # allocation-heavy decoding slow; the full 1 MiB case of the worst shape is below.
    value = _fill(b'{"a":[', unit, b"]}", DEFAULT_MAX_RECORD_BYTES // 4)
    with measured() as cost:
        result = outcome(lambda: auto_codec.decode(value))
    got = "ok" if isinstance(result, dict) else result
    assert got == expected
    assert cost.peak < MAX_EXPANSION * len(value), f"peak {cost.peak / MIB:.1f} MiB"
    assert cost.seconds < 10.0  # tracemalloc slows allocation-heavy decoding ~5x
    if isinstance(result, dict):
        encode_event_json(result)


@pytest.mark.parametrize("fmt", ["json", "avro", "auto"])
@pytest.mark.parametrize(
    "value",
    [
        b'{"a":"' + b"x" * DEFAULT_MAX_RECORD_BYTES + b'"}',
        b"[" * (DEFAULT_MAX_RECORD_BYTES + 1),
        b"\x00\x00\x00\x00\x01" + b"\xff" * DEFAULT_MAX_RECORD_BYTES,
        b"\xff" * (16 * MIB),
    ],
    ids=["long-string", "deep", "avro", "16MiB"],
)
def test_too_large_is_refused_unparsed(auto_codec: EventCodec, fmt: str, value: bytes) -> None:
    with measured() as cost:
        assert reason(auto_codec, value, fmt) == "too_large"
    assert cost.peak < 64 * 1024, "nothing is parsed or copied"
    assert cost.seconds < 0.1


def test_worst_record_at_the_limit_has_bounded_memory(auto_codec: EventCodec) -> None:
    value = _fill(b'{"a":[', b"{},", b"]}")
    assert len(value) > DEFAULT_MAX_RECORD_BYTES - 10
    with measured() as cost:
        event = auto_codec.decode(value)
    assert len(event["a"]) > 340_000
    assert cost.peak < MAX_EXPANSION * DEFAULT_MAX_RECORD_BYTES, f"{cost.peak / MIB:.1f} MiB"


def test_huge_string_and_array_just_under_the_limit_decode(auto_codec: EventCodec) -> None:
    text = "é" * ((DEFAULT_MAX_RECORD_BYTES - 100) // 2)
    assert auto_codec.decode(json.dumps({"a": text}, ensure_ascii=False).encode())["a"] == text
    array = _fill(b'{"process":{"args":[', b'"-v",', b"]}}")
    assert len(auto_codec.decode(array)["process"]["args"]) > 200_000


# -- JSON values that are not what they seem --------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b'{"a": NaN}', "invalid_json"),
        (b'{"a": [1, {"b": -Infinity}]}', "invalid_json"),
        (b'{"a": Infinity}', "invalid_json"),
        (b'{"a": 1e400}', "invalid_json"),
        (b'{"a": -1E+999}', "invalid_json"),
        (b'{"a": ' + b"1" * 4301 + b"}", "invalid_json"),
        (b'{"a": -' + b"1" * 4301 + b"}", "invalid_json"),
        (b'{"a": "\\ud800"}', "invalid_utf8"),
        (b'{"\\udc00": 1}', "invalid_utf8"),
        (b'{"a": ["ok", {"b": "x\\uDBFFy"}]}', "invalid_utf8"),
        (b'{"a": "\xed\xa0\x80"}', "invalid_utf8"),  # a surrogate encoded as UTF-8 bytes
        (b'{"a": "\xc0\xaf"}', "invalid_utf8"),  # overlong encoding of "/"
        (b'{"a": "\xf4\x90\x80\x80"}', "invalid_utf8"),  # past U+10FFFF
        (b'{"a": "x"}\x00', "invalid_json"),
        (b'{"a": "x"} {"b": 1}', "invalid_json"),  # two documents in one record
        (b'{"a": "\x01"}', "invalid_json"),  # raw control character in a string
        (b"\xef\xbb\xbf{}", "unrecognised_format"),  # BOM, auto format
    ],
)
def test_values_json_cannot_carry_are_refused(
    auto_codec: EventCodec, value: bytes, expected: str
) -> None:
    assert reason(auto_codec, value) == expected
    assert reason(auto_codec, value, "json") in (expected, "invalid_json")


@pytest.mark.parametrize(
    "value",
    [
        b'{"a": 1e-400}',  # underflow is zero, not an error
        b'{"a": 1.7976931348623157e308}',
        b'{"a": ' + b"9" * 4300 + b"}",
        b'{"a": "\\ud83d\\ude00"}',  # an escaped surrogate pair is one character
        b'{"a": "\\\\ud800"}',  # an escaped backslash, then plain text
        b'{"\\u0000": "\\u0000"}',
    ],
)
def test_edge_values_json_can_carry_decode(auto_codec: EventCodec, value: bytes) -> None:
    event = auto_codec.decode(value)
    _survives_pipeline(event)


def test_duplicate_keys_last_wins(auto_codec: EventCodec) -> None:
    value = b'{"process":{"name":"kextunload"},"process":{"name":"ls"},"a":1,"a":2}'
    assert auto_codec.decode(value) == {"process": {"name": "ls"}, "a": 2}


# -- generated JSON ---------------------------------------------------------------------

_hostile_text = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["\ud800", "\udfff", "\ud83d\ude00", "\x00", "\u2028", "\\", '"', "é"]),
    st.text(st.characters(codec="utf-8"), min_size=300, max_size=1000),
)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(),  # NaN and infinities included: the writer below spells them
    _hostile_text,
)
_keys = st.one_of(st.sampled_from(["a", "process", "process.name", "@timestamp"]), _hostile_text)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.lists(st.tuples(_keys, inner), max_size=5).map(lambda pairs: ("obj", pairs))
    ),
    max_leaves=30,
)


def _write(value: Any) -> str:
    """JSON text the way a careless producer would write it: NaN, surrogates, duplicates."""
    if isinstance(value, tuple):  # ("obj", pairs): an object, duplicate keys kept
        return "{" + ",".join(f"{_write(k)}:{_write(v)}" for k, v in value[1]) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_write(v) for v in value) + "]"
    if isinstance(value, float) and not math.isfinite(value):
        return {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}[str(value)]
    return json.dumps(value)  # ensure_ascii: surrogates become \ud800 escapes


def _expected(value: Any) -> Any:
    """What a faithful decoder gives: later duplicate keys replace earlier ones, and an
    escaped surrogate pair is the one character it stands for."""
    if isinstance(value, tuple):
        return {_utf16(k): _expected(v) for k, v in value[1]}
    if isinstance(value, list):
        return [_expected(v) for v in value]
    return _utf16(value) if isinstance(value, str) else value


def _utf16(text: str) -> str:
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def _json_can_carry(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except (ValueError, OverflowError):
        return False
    return True


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_keys, _values), max_size=6))
@example([("a", float("nan"))])
@example([("a", "\ud800")])
@example([("a", 1), ("a", 2)])
def test_generated_objects_decode_faithfully_or_fail_cleanly(
    auto_codec: EventCodec, pairs: list[tuple[str, Any]]
) -> None:
    document = ("obj", pairs)
    value = _write(document).encode()
    expected = _expected(document)
    for fmt in ("json", "auto"):
        result = outcome(lambda fmt=fmt: auto_codec.decode(value, format=fmt))
        if isinstance(result, dict):
            assert result == expected
            _survives_pipeline(result)
        elif len(value) > DEFAULT_MAX_RECORD_BYTES:
            assert result == "too_large"
        elif _json_can_carry(_every_value(document)) and not any(
            isinstance(v, int) and len(str(abs(v))) > 4300 for v in _ints(expected)
        ):
            pytest.fail(f"a JSON-safe object was refused as {result}")


def _every_value(value: Any) -> Any:
    """The document with duplicate keys kept apart: a value later replaced by a duplicate
    key was still in the text, and NaN or Infinity there makes the text invalid JSON."""
    if isinstance(value, tuple):
        return [[_utf16(k), _every_value(v)] for k, v in value[1]]
    if isinstance(value, list):
        return [_every_value(v) for v in value]
    return value


def _ints(value: Any) -> list[int]:
    if isinstance(value, dict):
        return [i for v in value.values() for i in _ints(v)]
    if isinstance(value, list):
        return [i for v in value for i in _ints(v)]
    return [value] if isinstance(value, int) and not isinstance(value, bool) else []


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(_keys, _scalars), min_size=1, max_size=4),
    st.data(),
    st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80"]),
)
def test_invalid_utf8_anywhere_is_invalid_utf8(
    auto_codec: EventCodec, pairs: list[tuple[str, Any]], data: st.DataObject, bad: bytes
) -> None:
    value = _write(("obj", pairs)).encode()
    at = data.draw(st.integers(min_value=1, max_value=len(value) - 1))
    assume(len(value) + len(bad) <= DEFAULT_MAX_RECORD_BYTES)
    assert reason(auto_codec, value[:at] + bad + value[at:]) == "invalid_utf8"


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=300), st.sampled_from(["json", "avro", "auto", None]))
def test_arbitrary_bytes_every_format(
    auto_codec: EventCodec, raw_codec: EventCodec, value: bytes, fmt: Any
) -> None:
    for codec in (auto_codec, raw_codec):
        result = outcome(lambda codec=codec: codec.decode(value, format=fmt))
        if isinstance(result, dict):
            _survives_pipeline(result)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.binary(max_size=200))
def test_bytes_wrapped_around_json_braces(auto_codec: EventCodec, a: bytes, b: bytes) -> None:
    result = outcome(lambda: auto_codec.decode(b"{" + a + b"}" + b))
    if isinstance(result, dict):
        _survives_pipeline(result)


# -- Avro with lying lengths -------------------------------------------------------------


def _zigzag(n: int) -> bytes:
    """Avro's long encoding (zig-zag, then base-128 varint)."""
    z = (n << 1) ^ (n >> 63) if n >= 0 else ((-n - 1) << 1) | 1
    z &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = z & 0x7F
        z >>= 7
        if z:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


HEADER = b"\x00\x00\x00\x00\x01"  # Confluent framing, schema id 1 (the event schema)
TIMESTAMP = b"2024-01-01T00:00:00Z"


def _record(after_timestamp: bytes) -> bytes:
    """The event schema's fields in order: timestamp (string), then ``after_timestamp``.

    The second field is ``message`` (union null|string), the third ``tags`` (union
    null|array<string>), the fourth ``labels`` (union null|map<string>).
    """
    return _zigzag(len(TIMESTAMP)) + TIMESTAMP + after_timestamp


LYING = {
    "string-2^62": _zigzag(2**62) + b"x" * 100,
    "string-negative": _zigzag(-5) + b"x" * 100,
    "string-max": _zigzag(2**63 - 1),
    "message-2^62": _record(b"\x02" + _zigzag(2**62) + b"abc"),
    "union-index-99": _record(_zigzag(99)),
    "union-index-negative": _record(_zigzag(-1)),
    "array-count-2^62": _record(b"\x00\x02" + _zigzag(2**62) + b"\x02a" * 10),
    "array-negative-count-huge-size": _record(
        b"\x00\x02" + _zigzag(-(2**62)) + _zigzag(2**62) + b"\x02a"
    ),
    "array-blocks-forever": _record(b"\x00\x02" + (_zigzag(1) + b"\x02a") * 50_000),
    "map-count-2^62": _record(b"\x00\x00\x02" + _zigzag(2**62) + b"\x02k\x02v"),
    "varint-endless": b"\xff" * 100_000,
    "varint-overlong": _zigzag(len(TIMESTAMP))[:-1] + b"\x80" * 20 + b"\x00",
    "truncated": _record(b"\x02\x10abc"),
}


@pytest.mark.parametrize("body", list(LYING.values()), ids=list(LYING))
def test_avro_with_lying_lengths_is_avro_invalid(
    auto_codec: EventCodec, raw_codec: EventCodec, body: bytes
) -> None:
    for codec, value in ((auto_codec, HEADER + body), (raw_codec, body)):
        if value[:1] == b"\x00" and codec is raw_codec:
            continue  # a raw body starting with 0 reads as a Confluent header
        with measured() as cost:
            got = reason(codec, value)
        assert got == "avro_invalid"
        assert cost.seconds < 2.0
        assert cost.peak < 16 * MIB, f"peak {cost.peak / MIB:.1f} MiB for {len(value)} bytes"


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_mutated_avro_decodes_or_is_avro_invalid(
    auto_codec: EventCodec, raw_codec: EventCodec, defend_avro: bytes, data: st.DataObject
) -> None:
    body = bytearray(defend_avro)
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        at = data.draw(st.integers(min_value=0, max_value=len(body)))
        action = data.draw(st.sampled_from(["flip", "insert", "delete", "varint"]))
        if action == "flip" and at < len(body):
            body[at] = data.draw(st.integers(0, 255))
        elif action == "insert":
            body[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        elif action == "delete":
            del body[at : at + data.draw(st.integers(1, 8))]
        else:
            body[at:at] = _zigzag(data.draw(st.integers(-(2**63), 2**63 - 1)))
    confluent = outcome(lambda: auto_codec.decode(HEADER + bytes(body)))
    assert isinstance(confluent, dict) or confluent == "avro_invalid"
    if isinstance(confluent, dict):
        _survives_pipeline(confluent)
    if body and body[0] != 0:
        raw = outcome(lambda: raw_codec.decode(bytes(body)))
        assert isinstance(raw, dict) or raw in (
            "avro_invalid",
            "invalid_json",
            "too_deep",
            "invalid_utf8",
            "not_an_object",
            "empty",
        )


@pytest.fixture(scope="module")
def defend_avro(auto_codec: EventCodec) -> bytes:
    """A full Elastic Defend event as raw Avro (no header)."""
    vector = Path(__file__).resolve().parents[2] / "vectors" / "codecs" / "defend_macos_exec.json"
    event = json.loads(vector.read_text(encoding="utf-8"))
    return auto_codec.encode_avro(event, drop_unknown=True)


def test_avro_nan_and_bytes_are_refused_when_the_schema_allows_them() -> None:
    """A deployment's own reader schema with a double or bytes field: JSON cannot carry
    NaN, infinity or bytes, so the event is refused at decoding, not when it matches."""
    import io

    import fastavro

    from consumer.codecs import AvroSchema, LocalSchemaRegistry

    raw = {
        "type": "record",
        "name": "E",
        "fields": [
            {"name": "score", "type": ["null", "double"], "default": None},
            {"name": "blob", "type": ["null", "bytes"], "default": None},
        ],
    }
    schema = AvroSchema.from_dict("e", raw)
    codec = EventCodec(reader_schema=schema, registry=LocalSchemaRegistry({7: schema}))

    def framed(record: dict[str, Any]) -> bytes:
        out = io.BytesIO()
        fastavro.schemaless_writer(out, schema.parsed, record)
        return b"\x00\x00\x00\x00\x07" + out.getvalue()

    assert codec.decode(framed({"score": 1.5, "blob": None})) == {"score": 1.5}
    for bad in ({"score": float("nan")}, {"score": float("-inf")}, {"blob": b"\x00"}):
        assert reason(codec, framed({"score": None, "blob": None} | bad)) == "avro_invalid"


def test_decode_error_text_is_bounded_for_a_huge_record(auto_codec: EventCodec) -> None:
    """The error text becomes a Kafka header: it must not echo the record."""
    value = HEADER + _record(b"\x02" + _zigzag(900_000) + b"x" * 900_000)[:-10]
    with pytest.raises(DecodeError) as info:
        auto_codec.decode(value)
    assert len(str(info.value)) < 300


@pytest.mark.parametrize("shape", ["labels-map", "tags-array"])
def test_avro_record_at_the_limit_has_bounded_memory(auto_codec: EventCodec, shape: str) -> None:
    """The costliest Avro per byte: a map or an array of many distinct short strings."""
    # The event with only a timestamp: every other field null, one byte each.
    minimal = auto_codec.encode_avro({"@timestamp": TIMESTAMP.decode()}, confluent_schema_id=1)
    rest = minimal[len(HEADER + _record(b"")) + 3 :]  # after message, tags and labels
    budget = DEFAULT_MAX_RECORD_BYTES - len(HEADER + _record(b"")) - len(rest) - 32
    if shape == "labels-map":  # message null, tags null, labels a map of unique keys
        entries = []
        size = 0
        while size < budget - 16:
            key = f"{len(entries):x}".encode()
            entry = _zigzag(len(key)) + key + b"\x00"  # the key, then an empty value
            entries.append(entry)
            size += len(entry)
        body = b"\x00\x00\x02" + _zigzag(len(entries)) + b"".join(entries) + b"\x00"
    else:  # message null, tags an array of distinct three-character strings, labels null
        items = [f"{i:06x}"[-3:].encode() for i in range(budget // 4 - 8)]
        body = b"\x00\x02" + _zigzag(len(items)) + b"".join(b"\x06" + x for x in items)
        body += b"\x00\x00"
    value = HEADER + _record(body + rest)
    assert len(value) <= DEFAULT_MAX_RECORD_BYTES
    with measured() as cost:
        event = auto_codec.decode(value)
    assert len(event["labels"] if shape == "labels-map" else event["tags"]) > 100_000
    assert cost.peak < MAX_EXPANSION * len(value), f"{cost.peak / MIB:.1f} MiB"
    assert cost.seconds < 10.0
