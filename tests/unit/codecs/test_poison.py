"""Every DecodeError reason, each from a realistic poison record; nothing else escapes."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.codecs import DECODE_REASONS, DecodeError, EventCodec, encode_event_json

from .conftest import ID_CURRENT, ID_OTHER

DEEP = b'{"a":' * 10_000 + b"1" + b"}" * 10_000


def _reason(codec: EventCodec, value: bytes | None, fmt: Any = None) -> str:
    with pytest.raises(DecodeError) as info:
        codec.decode(value, format=fmt)
    assert info.value.reason in DECODE_REASONS
    assert str(info.value).startswith(info.value.reason + ": ")
    return info.value.reason


def _network_flow(codec: EventCodec) -> bytes:
    """A valid Avro record of an unrelated schema, framed with the event schema's id."""
    import io

    import fastavro

    from consumer.codecs import load_schema_dir

    from .conftest import VECTORS

    flow = load_schema_dir(VECTORS / "schemas")["network_flow"]
    out = io.BytesIO()
    fastavro.schemaless_writer(out, flow.parsed, {"bytes": 1500, "packets": 3, "proto": "tcp"})
    return out.getvalue()


@pytest.mark.parametrize(
    ("value", "fmt", "reason"),
    [
        (None, None, "empty"),  # a tombstone
        (b"", "json", "empty"),
        (b" \n", "json", "empty"),
        (b" \n", None, "empty"),
        (b'{"@timestamp": "2022-08-10T14:03', None, "invalid_json"),  # truncated
        (b'{"a": NaN}', None, "invalid_json"),
        (b'{"a": -Infinity}', "json", "invalid_json"),
        (b'{"a": ' + b"9" * 5000 + b"}", None, "invalid_json"),  # past int digit limit
        (b"\xef\xbb\xbf{}", "json", "invalid_json"),  # a byte-order mark
        (b'[{"a": 1}]', None, "not_an_object"),  # a batch by mistake
        (b'"just a string"', "json", "not_an_object"),
        (b"42", "json", "not_an_object"),
        (b'{"user": {"name": "ro\xffot"}}', None, "invalid_utf8"),
        ('{"a": "\u00e9"}'.encode("latin-1"), "json", "invalid_utf8"),
        (b'{"a": "x"}'.decode().encode("utf-16"), "json", "invalid_utf8"),
        (DEEP, None, "too_deep"),
        (b'{"a":' * 600 + b"1" + b"}" * 600, "json", "too_deep"),  # below Python's limit
        (b"\x00\x00\x00\x30\x39" + b"\x02hi", None, "avro_unknown_schema"),  # id 12345
        (b"hello world", None, "unrecognised_format"),
        (b"\x89PNG\r\n\x1a\n", None, "unrecognised_format"),
        (b"\x30" + b"2022", "avro", "avro_unknown_schema"),  # raw, none configured
        (b"\x00\x00\x00", "avro", "avro_unknown_schema"),  # too short for a header
    ],
)
def test_poison_records(codec: EventCodec, value: bytes | None, fmt: Any, reason: str) -> None:
    assert _reason(codec, value, fmt) == reason


def test_depth_limit_is_exact(codec: EventCodec) -> None:
    at_limit = b'{"a":' * 511 + b"[1]" + b"}" * 511  # 512 containers
    assert codec.decode(at_limit, format="json")["a"]
    assert _reason(codec, b'{"a":' * 512 + b"[1]" + b"}" * 512, "json") == "too_deep"


def test_many_shallow_containers_are_fine(codec: EventCodec) -> None:
    wide = encode_event_json({"a": [{"b": i} for i in range(2000)]})
    assert len(codec.decode(wide)["a"]) == 2000


def test_too_large_is_checked_before_parsing() -> None:
    small = EventCodec(max_record_bytes=100)
    assert _reason(small, b"{" * 101) == "too_large"  # would be invalid_json if parsed
    assert _reason(EventCodec(), b'{"a":"' + b"x" * (1 << 20) + b'"}') == "too_large"


def test_avro_poison(codec: EventCodec, defend_event: dict[str, Any]) -> None:
    good = codec.encode_avro(defend_event, confluent_schema_id=ID_CURRENT)
    assert _reason(codec, good[:-10]) == "avro_invalid"  # truncated
    assert _reason(codec, good + b"\x00") == "avro_invalid"  # trailing bytes
    # The first field is a string; claim it is 2**62 bytes long.
    lying = good[:5] + b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01" + good[6:]
    assert _reason(codec, lying) == "avro_invalid"
    negative = good[:5] + b"\x03" + good[6:]  # length -2
    assert _reason(codec, negative) == "avro_invalid"
    # A record of another schema framed with our id; and one framed with its own id.
    assert _reason(codec, b"\x00" + ID_CURRENT.to_bytes(4, "big") + _network_flow(codec)) == (
        "avro_invalid"
    )
    flow_value = b"\x00" + ID_OTHER.to_bytes(4, "big") + _network_flow(codec)
    assert _reason(codec, flow_value) == "avro_invalid"  # writer cannot resolve to reader


def test_raw_avro_poison(raw_codec: EventCodec) -> None:
    assert _reason(raw_codec, b"\x30garbage") == "avro_invalid"
    assert _reason(raw_codec, b"\x7f") == "avro_invalid"  # a negative string length


@settings(max_examples=400, deadline=200)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_decode_or_raise_decode_error(value: bytes) -> None:
    from consumer.codecs import default_codec

    for codec in (default_codec(), _RAW):
        try:
            event = codec.decode(value)
        except DecodeError as exc:
            assert exc.reason in DECODE_REASONS
        else:
            assert isinstance(event, dict)


@settings(max_examples=200, deadline=200)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_after_a_known_header(value: bytes) -> None:
    from consumer.codecs import default_codec

    try:
        assert isinstance(default_codec().decode(b"\x00\x00\x00\x00\x01" + value), dict)
    except DecodeError as exc:
        assert exc.reason == "avro_invalid"


def _raw_codec() -> EventCodec:
    from consumer.codecs import default_schema_dir

    return EventCodec.from_schema_dir(default_schema_dir(), raw_writer_schema="ecs_process_event")


_RAW = _raw_codec()
