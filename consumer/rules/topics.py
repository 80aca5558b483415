"""Map a rule's Elasticsearch index patterns to Kafka topic subscriptions.

Events reach Kafka in topics named like the data streams they would be indexed into
(``logs-endpoint.events.process-default``, ``auditbeat-8.12.0``), so an index pattern is
read as a topic-name pattern:

- ``*`` matches any run of characters, every other character stands for itself
  (``logs-endpoint.events.*`` becomes ``^logs-endpoint\\.events\\..*``);
- a pattern without ``*`` names one topic exactly (``^auditbeat-8\\.12\\.0$``);
- a cross-cluster prefix (``remote:logs-*``) and exclusions (``-logs-test*``) have no
  meaning for Kafka: the prefix is dropped, exclusions are refused with a reason.

librdkafka treats a subscription that starts with ``^`` as a regular expression.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from consumer.rules.model import Rule

_KAFKA_TOPIC_CHARS = re.compile(r"^[A-Za-z0-9._*-]+$")


def topic_pattern(index_pattern: str) -> str:
    """The Kafka subscription (a ``^`` regex) for one Elasticsearch index pattern."""
    pattern = index_pattern.strip()
    if pattern.startswith("-"):
        raise ValueError(
            f"index exclusion {index_pattern!r} cannot be expressed as a topic subscription"
        )
    pattern = pattern.rsplit(":", 1)[-1]
    if not pattern or not _KAFKA_TOPIC_CHARS.match(pattern):
        raise ValueError(f"index pattern {index_pattern!r} cannot name a Kafka topic")
    # Topic names hold only letters, digits, ".", "_" and "-"; of those only "." means
    # something in a regex, and "-" stays bare so the subscription reads as documented.
    regex = pattern.replace(".", r"\.").replace("*", ".*")
    return f"^{regex}" if pattern.endswith("*") else f"^{regex}$"


def rule_topics(rules: Iterable[Rule]) -> list[str]:
    """The subscriptions for the index patterns of ``rules``, deduplicated, in order."""
    topics: dict[str, None] = {}
    for rule in rules:
        for index in rule.index:
            topics.setdefault(topic_pattern(index))
    return list(topics)
