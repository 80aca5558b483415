"""What the loaded rules read of an event: the fields an Avro record is read for."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from consumer.detection import fields_read
from consumer.rules import builtin_rules_path, load_rules
from consumer.rules.model import AlertSuppression

SEED = load_rules([builtin_rules_path()]).rules[0]


def test_the_seed_rule_reads_its_query_fields_and_what_alerting_needs() -> None:
    assert fields_read([SEED]) == {
        "event.category",
        "event.type",
        "process.name",
        "process.args",
        "@timestamp",
        "event.ingested",  # the seed rule's timestamp_override
        "event.id",
    }


def test_suppression_fields_and_every_rule_count() -> None:
    suppressing = replace(
        SEED,
        rule_id="other",
        query="host.os.type:macos",
        timestamp_override=None,
        alert_suppression=AlertSuppression(("user.name",), timedelta(minutes=5), "suppress"),
    )
    found = fields_read([SEED, suppressing])
    assert found is not None
    assert {"host.os.type", "user.name", "process.name", "event.ingested"} <= found


def test_a_rule_that_may_read_any_field_means_whole_events() -> None:
    assert fields_read([SEED, replace(SEED, query="process.*:kextunload")]) is None
    assert fields_read([SEED, replace(SEED, query="kextunload")]) is None
    filtered = replace(SEED, filters=({"query": {"match_phrase": {"host.name": "mac-1"}}},))
    assert fields_read([filtered]) is None
