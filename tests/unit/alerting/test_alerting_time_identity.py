"""Event time (parsing, precedence, nested/dotted lookup) and event identity."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from alerting_helpers import load_vector, seed_rule
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.alerting import canonical_form, event_identity, event_time, parse_timestamp
from consumer.alerting.event_time import _parse_whole, to_iso
from consumer.alerting.fields import MISSING, first_value, lookup


@pytest.mark.parametrize("case", load_vector("timestamps.json")["cases"], ids=repr)
def test_parse_timestamp_vectors(case: list[Any]) -> None:
    value, expected = case
    assert parse_timestamp(value) == expected


_REPLACEMENTS = st.sampled_from(["", " ", "  ", ":", "-", ".", "x", "1", "\u0663"])
_MUTATIONS = st.lists(st.tuples(st.integers(0, 30), _REPLACEMENTS), max_size=3)


@st.composite
def _near_rfc3339(draw: st.DrawFn) -> str:
    """A time of the shape parsed by its second (``...THH:MM:SS.fffZ``) or near it: other
    separators, fraction lengths and zones, then characters replaced or dropped."""
    moment = draw(st.datetimes(min_value=datetime(1, 1, 1)))
    text = (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        + draw(st.sampled_from("Tt "))
        + f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
        + draw(st.from_regex(r"\A([.,][0-9\u0663]{0,9})?\Z"))
        + draw(st.sampled_from(["Z", "z", "", "+02:00", " Z"]))
    )
    for at, replacement in draw(_MUTATIONS):
        text = text[:at] + replacement + text[at + 1 :]
    return text


@settings(max_examples=500)
@given(_near_rfc3339())
def test_a_time_parsed_by_its_second_is_the_time_of_the_whole_text(text: str) -> None:
    assert parse_timestamp(text) == _parse_whole(text.strip())


@pytest.mark.parametrize(
    "text", ["2026-12-04T09:00   .5Z", "2026-12-04         .5Z", "2026-12-04T09:00:00.Z"]
)
def test_a_time_that_only_looks_split_is_read_whole(text: str) -> None:
    assert parse_timestamp(text) is None


def test_to_iso_is_javascript_iso() -> None:
    assert to_iso(1660140201512) == "2022-08-10T14:03:21.512Z"
    assert to_iso(0) == "1970-01-01T00:00:00.000Z"


@pytest.mark.parametrize(
    "event",
    [
        {"event": {"ingested": "2022-08-10T14:06:00Z"}, "@timestamp": "2022-08-10T14:01:00Z"},
        {"event.ingested": "2022-08-10T14:06:00Z", "@timestamp": "2022-08-10T14:01:00Z"},
        {"event": {"ingested": ["2022-08-10T14:06:00Z"]}, "@timestamp": "2022-08-10T14:01:00Z"},
    ],
)
def test_override_read_from_nested_or_dotted(event: dict[str, Any]) -> None:
    found = event_time(seed_rule(), event, 5)
    assert found is not None
    assert (found.ms, found.source) == (
        parse_timestamp("2022-08-10T14:06:00Z"),
        "timestamp_override",
    )


def test_precedence_and_fallbacks() -> None:
    rule = seed_rule()
    ts = parse_timestamp("2022-08-10T14:01:00Z")
    assert event_time(rule, {"@timestamp": "2022-08-10T14:01:00Z"}, 5).source == "@timestamp"
    unparseable = {"event": {"ingested": "garbage"}, "@timestamp": "2022-08-10T14:01:00Z"}
    assert event_time(rule, unparseable, 5).ms == ts
    assert event_time(rule, {}, 7).ms == 7
    assert event_time(rule, {}, 7).source == "kafka"
    assert event_time(rule, {}, None) is None
    assert event_time(rule, {}, -1) is None  # Kafka's "no timestamp"
    disabled = seed_rule(timestamp_override_fallback_disabled=True)
    assert event_time(disabled, {"@timestamp": "2022-08-10T14:01:00Z"}, 7).ms == 7
    no_override = seed_rule(timestamp_override=None)
    both = {"event": {"ingested": "2022-08-10T14:06:00Z"}, "@timestamp": "2022-08-10T14:01:00Z"}
    assert event_time(no_override, both, 7).ms == ts


def test_lookup_mixes_dotted_and_nested() -> None:
    event = {"a.b": {"c": 1}, "a": {"b.c": 2, "b": {"c": [3, None, [4]]}}}
    assert lookup(event, "a.b.c") == [1, 2, 3, 4]
    assert lookup({"a": [{"b": 1}, {"b": 2}]}, "a.b") == [1, 2]
    assert lookup({"a": {"b": None}}, "a.b") == []


_KEYS = st.lists(st.sampled_from(["a", "b"]), min_size=1, max_size=3).map(".".join)
_FIELD_VALUES = st.recursive(
    st.one_of(st.none(), st.integers(0, 9), st.just([])),
    lambda inner: st.one_of(st.dictionaries(_KEYS, inner, max_size=3), st.lists(inner, max_size=2)),
    max_leaves=8,
)


@settings(max_examples=500)
@given(st.dictionaries(_KEYS, _FIELD_VALUES, max_size=4), _KEYS)
def test_first_value_finds_a_value_exactly_when_lookup_does(
    event: dict[str, Any], path: str
) -> None:
    values = lookup(event, path)
    found = first_value(event, path)
    if values:
        assert found in values
    else:
        assert found is MISSING


@pytest.mark.parametrize("group", load_vector("identity.json")["same"])
def test_same_event_has_one_identity(group: list[dict[str, Any]]) -> None:
    identities = {event_identity(ev) for ev in group}
    assert len(identities) == 1, identities


@pytest.mark.parametrize("pair", load_vector("identity.json")["different"])
def test_different_events_differ(pair: list[dict[str, Any]]) -> None:
    assert event_identity(pair[0]) != event_identity(pair[1])


def test_identity_forms() -> None:
    assert event_identity({"event": {"id": "NTI0+/="}}) == "NTI0+/="
    assert event_identity({"event": {"id": 42}}) == "42"
    hashed = event_identity({"process": {"pid": 1}})
    assert hashed.startswith("sha256-") and len(hashed) == len("sha256-") + 64
    assert canonical_form({"a.b": 1, "c": None, "d": {}, "e": [], "@metadata": {"x": 1}}) == {
        "a": {"b": 1}
    }
