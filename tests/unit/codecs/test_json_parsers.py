"""The JSON codec parses with orjson where it gives what the stdlib gives, else with
the stdlib: a record decodes to the same event, or fails with the same reason, as the
stdlib-only decoder did."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.alerting import EventTime
from consumer.alerting.facts import Facts
from consumer.codecs import DecodeError, decode_json
from consumer.codecs.json_codec import _strict_parse, dumps, loads
from consumer.pipeline.records import CandidateRecord, decode_candidates, encode_candidates

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
# Written the ways producers write JSON, plus the odd ones only the stdlib reads.
_TEXTS = st.one_of(
    _VALUES.map(lambda v: json.dumps({"v": v})),
    _VALUES.map(lambda v: json.dumps({"v": v}, ensure_ascii=False, indent=1)),
    _VALUES.map(lambda v: json.dumps(v, ensure_ascii=False)),
    st.sampled_from(
        [
            '{"a": NaN}',
            '{"a": 1e400}',
            '{"a": "\\ud800"}',
            '{"a": "\\ud83d\\ude00"}',
            '{"a": 1, "a": 2}',
            '\ufeff{"a": 1}',
            "  ",
            '{"a": 9223372036854775808}',
            '{"a": -9223372036854775809}',
            '{"a": "1234567890123456789012"}',
            '{"a": [' * 600 + "]" * 600 + "}",
        ]
    ),
)


def _outcome(decode: Any, value: bytes) -> Any:
    try:
        return ("event", decode(value))
    except DecodeError as exc:
        return ("refused", exc.reason, str(exc))


def _stdlib_decode(value: bytes) -> Any:
    event = _strict_parse(value)
    if not isinstance(event, dict):
        raise DecodeError("not_an_object", "")
    return event


@settings(max_examples=400, deadline=None)
@given(_TEXTS, st.sampled_from(["utf-8", "utf-16"]))
def test_a_record_decodes_as_the_stdlib_decodes_it(text: str, encoding: str) -> None:
    value = text.encode(encoding, "surrogatepass")
    ours = _outcome(lambda v: decode_json(v, max_depth=10_000), value)
    stdlib = _outcome(_stdlib_decode, value)
    assert ours[:2] == stdlib[:2]
    assert repr(ours[:2]) == repr(stdlib[:2])  # an int stays an int, 1.0 a float


def test_integers_past_64_bits_stay_exact() -> None:
    big = 123456789012345678901234567890
    assert decode_json(b'{"n": %d}' % big) == {"n": big}
    assert loads(b"[-9223372036854775809]") == [-9223372036854775809]
    assert dumps({"n": big}) == b'{"n":%d}' % big


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b'{"a": NaN}', "invalid_json"),
        (b'{"a": 1e400}', "invalid_json"),
        (b'{"a": "\\udc00"}', "invalid_utf8"),
        (b'{"a": "\xff"}', "invalid_utf8"),
        (b"   ", "empty"),
        (b"[1]", "not_an_object"),
    ],
)
def test_what_orjson_refuses_gets_the_stdlib_reason(value: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_json(value)
    assert caught.value.reason == reason


@given(_VALUES, st.text(), st.binary(min_size=1))
def test_a_candidate_comes_back_as_it_was_written(term: Any, identity: str, value: bytes) -> None:
    # Group values are the event's own (any JSON value, integers past 64 bits included);
    # an identity is any text, newlines included; the record's value is any bytes.
    facts = Facts(EventTime(-1, "@timestamp"), identity, [[{"field": "f", "value": term}]])
    record = CandidateRecord("rule", "t", 1, 2, None, facts=facts, value=value)
    assert repr(decode_candidates(encode_candidates([record]))) == repr([record])
