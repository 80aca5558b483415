"""The cheap check of records the prefilter skips: poison always goes to the full decode."""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.codecs import DecodeError, EventCodec, default_codec, encode_event_avro
from consumer.codecs.codec import AVRO_SAMPLE
from consumer.generator import generate_events

GOOD = json.dumps(next(iter(generate_events(1, match_every=None)))).encode()


@pytest.mark.parametrize(
    "value",
    [
        GOOD,
        b"  " + GOOD + b"\n",
        json.dumps({"message": "caf\u00e9"}, ensure_ascii=False).encode(),
        encode_event_avro(json.loads(GOOD), confluent_schema_id=1, drop_unknown=True),
    ],
)
def test_well_formed_records_look_decodable(value: bytes) -> None:
    assert default_codec().looks_decodable(value)
    default_codec().decode(value)


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"",
        b"   ",
        b"\x8f\x01\xffrandom\x00bytes",
        b'{"event": {"id": "trunc',
        b'[{"event": {}}]',
        b'"just a string"',
        b'{"message": "\xff\xfe"}',
        b"\x00" + struct.pack(">I", 99) + b"\x02abc",
        b"x" * 2_000_000,
    ],
)
def test_poison_does_not_look_decodable_and_fails_the_full_decode(value) -> None:
    codec = default_codec()
    assert not codec.looks_decodable(value)
    with pytest.raises(DecodeError):
        codec.decode(value)


def test_json_only_and_avro_only_codecs_screen_their_own_format() -> None:
    avro = encode_event_avro(json.loads(GOOD), confluent_schema_id=1, drop_unknown=True)
    json_only = EventCodec.from_schema_dir(codec_dir(), format="json")
    avro_only = EventCodec.from_schema_dir(codec_dir(), format="avro")
    assert json_only.looks_decodable(GOOD) and not json_only.looks_decodable(avro)
    assert avro_only.looks_decodable(avro) and not avro_only.looks_decodable(GOOD)


def codec_dir():
    from consumer.codecs import default_schema_dir

    return default_schema_dir()


_AVRO = encode_event_avro(json.loads(GOOD), confluent_schema_id=1, drop_unknown=True)
_RECORDS = [
    GOOD,
    b"  " + GOOD + b"\n",
    json.dumps({"message": "caf\u00e9"}, ensure_ascii=False).encode(),
    _AVRO,
    b"",
    b'{"event": {"id": "trunc',
    b'{"message": "\xff\xfe"}',
    b"\x00" + struct.pack(">I", 99) + b"\x02abc",
    b"x" * 2_000_000,
]


@settings(max_examples=200, deadline=None)
@given(
    batch=st.lists(st.sampled_from(_RECORDS), min_size=1, max_size=80),
    first_position=st.sampled_from([0, 1, AVRO_SAMPLE - 5, 3 * AVRO_SAMPLE - 1]),
    fmt=st.sampled_from(["auto", "json", "avro"]),
)
def test_a_batch_needs_decoding_exactly_what_the_record_check_says(batch, first_position, fmt):
    codec = EventCodec.from_schema_dir(codec_dir(), format=fmt)
    expected = [
        i
        for i, value in enumerate(batch)
        if not codec.looks_decodable(value)
        or (value[:1] != b"{" and (first_position + i) % AVRO_SAMPLE == 0)
    ]
    assert codec.needs_decoding(batch, first_position) == expected


def test_a_batch_of_good_json_needs_no_decoding_and_avro_one_in_the_sample() -> None:
    codec = default_codec()
    assert codec.needs_decoding([GOOD] * 300, 0) == []
    assert codec.needs_decoding([_AVRO] * 300, 0) == [0]
    assert codec.needs_decoding([_AVRO] * 300, 1) == []
    assert codec.needs_decoding([_AVRO] * 300, AVRO_SAMPLE - 10) == [10]
    two_samples = [AVRO_SAMPLE - 1, 2 * AVRO_SAMPLE - 1]
    assert codec.needs_decoding([_AVRO] * 2 * AVRO_SAMPLE, 1) == two_samples
    assert codec.needs_decoding([GOOD, b"", GOOD], 1) == [1]
