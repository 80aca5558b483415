"""Candidate and dead-letter records (pure)."""

from __future__ import annotations

import pytest

from consumer.alerting import EventTime
from consumer.alerting.facts import Facts
from consumer.errors import EventError
from consumer.pipeline.clients import consumer_config, producer_config
from consumer.pipeline.records import (
    CandidateRecord,
    dead_letter_headers,
    decode_candidates,
    encode_candidates,
)
from consumer.settings import Settings


def _candidate(
    value: bytes = b'{"process":{"name":"kextunload"}}', offset: int = 42, rule: str = "rule-uuid"
) -> CandidateRecord:
    facts = Facts(
        EventTime(1_764_838_799_000, "@timestamp"),
        f"event-{offset}",
        [[{"field": "host.name", "value": "mac-1"}]],
    )
    return CandidateRecord(rule, "logs-x", 3, offset, 1_764_838_800_000, facts=facts, value=value)


def test_candidate_round_trip_keeps_facts_source_and_the_record_as_read() -> None:
    record = _candidate(b"\x00\x00\x00\x00\x01\n\x02avro bytes\n")
    assert decode_candidates(encode_candidates([record])) == [record]


def test_one_record_carries_a_rules_candidates_in_order_each_with_its_own_record() -> None:
    records = [
        _candidate(b"\x00\x00\x00\x00\x01\n\x02avro\n", 7),
        _candidate(b"{}", 8),
        _candidate(b'{"a":"\n"}' * 100, 9),
    ]
    assert decode_candidates(encode_candidates(records)) == records


def test_candidates_not_writable_together_are_not_written() -> None:
    with pytest.raises(ValueError, match="facts"):
        encode_candidates([CandidateRecord("rule-uuid", "logs-x", 3, 42, None)])
    with pytest.raises(ValueError, match="one rule"):
        encode_candidates([_candidate(), _candidate(rule="other-rule")])
    with pytest.raises(ValueError, match="at least one"):
        encode_candidates([])


def test_a_candidate_written_one_per_record_is_still_read() -> None:
    # Its header holds its fields and its record is the rest of the value: what members
    # wrote before candidates were batched, possibly still in the matches topic.
    value = (
        b'{"rule":"rule-uuid","source":{"topic":"logs-x","partition":3,"offset":42,'
        b'"timestamp_ms":1764838800000},"time":{"ms":1764838799000,"source":"@timestamp"},'
        b'"identity":"event-42","groups":[[{"field":"host.name","value":"mac-1"}]]}\n'
        b'{"process":{"name":"kextunload"}}'
    )
    assert decode_candidates(value) == [_candidate()]


def test_candidates_written_before_facts_travelled_are_still_read() -> None:
    # One JSON document with the decoded event: what members before the facts header
    # wrote, possibly still in the matches topic during an upgrade.
    value = (
        b'{"rule":"rule-uuid","event":{"process":{"name":"kextunload"}},'
        b'"source":{"topic":"logs-x","partition":3,"offset":42,"timestamp_ms":null}}'
    )
    assert decode_candidates(value) == [
        CandidateRecord(
            "rule-uuid", "logs-x", 3, 42, None, event={"process": {"name": "kextunload"}}
        )
    ]


_RECORD = b'{"process":{"name":"kextunload"}}'
_HEADER = encode_candidates([_candidate(_RECORD)]).split(b"\n")[0]


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"",
        b"[]",
        b'{"rule": 1}',
        b"\xff",
        b'{"rule": "r"}',
        b"[]\n{}",
        _HEADER + b"\n",  # no record
        _HEADER + b"\n" + _RECORD[:-1],  # shorter than its size
        _HEADER + b"\n" + _RECORD + b"{}",  # longer
        _HEADER.replace(b'"identity":"event-42"', b'"identity":7') + b"\n" + _RECORD,
        _HEADER.replace(b'"ms":1764838799000', b'"ms":"soon"') + b"\n" + _RECORD,
        _HEADER.replace(b'"groups":[', b'"groups":{"a":[', 1) + b"}\n" + _RECORD,
        _HEADER.replace(b'"time":{', b'"when":{') + b"\n" + _RECORD,
        _HEADER.replace(b'"size":33', b'"size":0') + b"\n",
        _HEADER.replace(b'"size":33', b'"size":"33"') + b"\n" + _RECORD,
        b'{"rule":"r","candidates":[]}\n',
        b'{"rule":"r","candidates":"abc"}\n{}',
    ],
)
def test_foreign_records_on_the_matches_topic_are_refused(value) -> None:
    with pytest.raises(EventError, match="not a candidate record"):
        decode_candidates(value)


def test_dead_letter_headers_keep_the_original_ones_and_say_why_and_where() -> None:
    headers = dead_letter_headers(
        [("trace", b"abc")], "invalid_json", "Expecting value", "logs-x", 2, 17, 1000
    )
    assert headers == [
        ("trace", b"abc"),
        ("x-dead-letter-reason", b"invalid_json"),
        ("x-dead-letter-error", b"Expecting value"),
        ("x-source-topic", b"logs-x"),
        ("x-source-partition", b"2"),
        ("x-source-offset", b"17"),
        ("x-source-timestamp", b"1000"),
    ]


def test_guarantee_settings_cannot_be_overridden_and_kinds_get_their_own_properties() -> None:
    settings = Settings(
        kafka_config={
            "enable.auto.commit": "true",
            "isolation.level": "read_uncommitted",
            "session.timeout.ms": "6000",
            "linger.ms": "50",
            "security.protocol": "SSL",
        }
    )
    consumer, producer = consumer_config(settings), producer_config(settings)
    assert consumer["enable.auto.commit"] is False
    assert consumer["isolation.level"] == "read_committed"
    assert consumer["session.timeout.ms"] == "6000" and "linger.ms" not in consumer
    assert producer["linger.ms"] == "50" and "session.timeout.ms" not in producer
    assert consumer["security.protocol"] == producer["security.protocol"] == "SSL"
    assert producer["transactional.id"] == f"{settings.group_id}-{settings.instance_id}"
    assert "transactional.id" not in producer_config(Settings(guarantee="at-least-once"))
