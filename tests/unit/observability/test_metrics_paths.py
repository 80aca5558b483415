"""The metrics move as documented on each path: alert, duplicate, limited, dead letter."""

from __future__ import annotations

import logging

import pytest

from consumer.observability import PREFIX

from .member_harness import INPUT, Harness, attacks, seed_rule

P = PREFIX


@pytest.fixture
def rule():
    return seed_rule(max_signals=3)


def test_alert_path(rule) -> None:
    h = Harness(rule)
    values = attacks(2)
    h.run(values)
    rid, sev = rule.rule_id, rule.severity
    assert h.value(P + "events_consumed_total", topic=INPUT) == 2
    assert h.value(P + "consumed_bytes_total", topic=INPUT) == sum(len(v) for v in values)
    assert h.value(P + "events_decoded_total", topic=INPUT) == 2
    assert h.value(P + "rule_matches_total", rule_id=rid) == 2
    assert h.value(P + "candidates_total", rule_id=rid) == 2
    assert h.value(P + "alerts_total", rule_id=rid, severity=sev) == 2
    assert h.value(P + "event_to_alert_seconds_count") == 2
    assert h.value(P + "record_to_alert_seconds_count") == 2
    assert h.value(P + "batch_duration_seconds_count") == 2  # one per batch, not per record
    assert h.value(P + "last_event_timestamp_seconds") > 0
    assert h.value(P + "last_record_timestamp_seconds") > 0
    assert len(h.producer.take(h.member.settings.alerts_topic)) == 2
    # The matches topic is ours, not input: it is not counted as consumed events.
    assert h.value(P + "events_consumed_total", topic=h.member._matches) == 0


def test_duplicate_path(rule) -> None:
    h = Harness(rule)
    value = attacks(1)
    h.run(value)
    h.run(value)  # the same event again: same identity
    rid = rule.rule_id
    assert h.value(P + "rule_matches_total", rule_id=rid) == 2
    assert h.value(P + "alerts_total", rule_id=rid, severity=rule.severity) == 1
    assert h.value(P + "candidates_dropped_total", rule_id=rid, reason="duplicate") == 1
    assert h.value(P + "candidates_dropped_total", rule_id=rid, reason="limit") == 0


def test_limited_path(rule, caplog) -> None:
    h = Harness(rule)
    with caplog.at_level(logging.WARNING):
        h.run(attacks(5))
    rid = rule.rule_id
    assert h.value(P + "alerts_total", rule_id=rid, severity=rule.severity) == 3
    assert h.value(P + "candidates_dropped_total", rule_id=rid, reason="limit") == 2
    assert h.value(P + "window_limit_reached_total", rule_id=rid) == 1  # one window, once
    assert len([r for r in caplog.records if "max_signals" in r.getMessage()]) == 1


def test_dead_letter_path_counts_every_record_and_logs_once(rule, caplog) -> None:
    h = Harness(rule)
    with caplog.at_level(logging.WARNING):
        h.feed([b"{not json", b"{nor this", b"", *attacks(1)])
    assert h.value(P + "events_consumed_total", topic=INPUT) == 4
    assert h.value(P + "events_decoded_total", topic=INPUT) == 1
    assert h.value(P + "decode_failures_total", topic=INPUT, reason="invalid_json") == 2
    assert h.value(P + "decode_failures_total", topic=INPUT, reason="empty") == 1
    assert h.value(P + "dead_letters_total", reason="invalid_json") == 2
    assert h.value(P + "dead_letters_total", reason="empty") == 1
    assert len(h.producer.take(h.member.settings.dead_letter_topic)) == 3
    lines = [r for r in caplog.records if "dead-lettered" in r.getMessage()]
    assert len(lines) == 2  # the first of each reason; the repeats wait for the summary
    assert {r.reason for r in lines} == {"invalid_json", "empty"}
    assert lines[0].topic == INPUT and lines[0].offset == 0


def test_invalid_candidate_is_dead_lettered_with_its_reason(rule) -> None:
    h = Harness(rule)
    h.feed([b"garbage"], topic=h.member._matches)
    assert h.value(P + "dead_letters_total", reason="invalid_candidate") == 1
    assert h.value(P + "events_consumed_total", topic=h.member._matches) == 0


def test_rules_and_build_are_described(rule) -> None:
    h = Harness(rule)
    labels = {
        "rule_id": rule.rule_id,
        "name": rule.name,
        "version": str(rule.version),
        "severity": rule.severity,
    }
    assert h.value(P + "rule_info", **labels) == 1
    assert h.value(P + "rules_loaded") == 1
    build = [s for m in h.registry.collect() if m.name == P + "build_info" for s in m.samples]
    assert len(build) == 1 and build[0].labels["librdkafka_version"]


def test_counters_are_not_touched_per_record(rule, monkeypatch) -> None:
    """The hot path tallies locally: one flush per batch, whatever the batch size."""
    h = Harness(rule)
    flushes: list[int] = []
    real = h.member.metrics.flush
    monkeypatch.setattr(
        h.member.metrics, "flush", lambda tally, s: (flushes.append(1), real(tally, s))
    )
    h.feed(attacks(50))
    assert len(flushes) == 1
    assert h.value(P + "events_consumed_total", topic=INPUT) == 50
