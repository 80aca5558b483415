"""Index patterns become Kafka topic subscriptions."""

from __future__ import annotations

import re

import pytest

from consumer.rules import builtin_rules_path, load_rules, rule_topics, topic_pattern


@pytest.mark.parametrize(
    ("index", "subscription", "matches", "misses"),
    [
        (
            "logs-endpoint.events.*",
            r"^logs-endpoint\.events\..*",
            ["logs-endpoint.events.process-default", "logs-endpoint.events.file-prod"],
            ["logs-endpoint-events.process", "xlogs-endpoint.events.process"],
        ),
        ("auditbeat-*", r"^auditbeat-.*", ["auditbeat-8.12.0", "auditbeat-"], ["auditbeat"]),
        ("auditbeat-8.12.0", r"^auditbeat-8\.12\.0$", ["auditbeat-8.12.0"], ["auditbeat-8.12.01"]),
        ("remote:logs-*", r"^logs-.*", ["logs-x"], ["remote:logs-x"]),
        ("logs-*-default", r"^logs-.*-default$", ["logs-a-b-default"], ["logs-a-default-x"]),
    ],
)
def test_index_pattern_to_topic_regex(
    index: str, subscription: str, matches: list[str], misses: list[str]
) -> None:
    assert topic_pattern(index) == subscription
    compiled = re.compile(subscription)
    assert all(compiled.match(topic) for topic in matches)
    assert not any(compiled.match(topic) for topic in misses)


@pytest.mark.parametrize("index", ["-logs-test*", "logs with space", ""])
def test_patterns_kafka_cannot_express_are_refused(index: str) -> None:
    with pytest.raises(ValueError, match="cannot"):
        topic_pattern(index)


def test_seed_rule_topics() -> None:
    rules = load_rules([builtin_rules_path()]).rules
    assert rule_topics(rules) == [r"^auditbeat-.*", r"^logs-endpoint\.events\..*"]
