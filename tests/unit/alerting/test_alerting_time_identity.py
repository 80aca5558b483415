"""Event time (parsing, precedence, nested/dotted lookup) and event identity."""

from __future__ import annotations

from typing import Any

import pytest
from alerting_helpers import load_vector, seed_rule

from consumer.alerting import canonical_form, event_identity, event_time, parse_timestamp
from consumer.alerting.event_time import to_iso
from consumer.alerting.fields import lookup


@pytest.mark.parametrize("case", load_vector("timestamps.json")["cases"], ids=repr)
def test_parse_timestamp_vectors(case: list[Any]) -> None:
    value, expected = case
    assert parse_timestamp(value) == expected


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
