"""A ``Member`` without a broker: real ``Message`` objects in, a recording producer out.

For unit tests of what the loop counts: the member's batch handler runs exactly as in
production, only ``produce`` is recorded instead of sent.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message
from prometheus_client import CollectorRegistry

from consumer.alerting import AlertingCore
from consumer.generator import generate_events
from consumer.pipeline import Member
from consumer.pipeline.records import CandidateRecord, decode_candidates
from consumer.rules import Rule, builtin_rules_path, load_rules
from consumer.settings import Settings

# A 5-minute window boundary in the past; the cores' clock sits one minute into it.
START = datetime(2024, 1, 1, tzinfo=UTC)
CLOCK = (START + timedelta(minutes=1)).timestamp()
INPUT = "events"


class RecordingProducer:
    def __init__(self) -> None:
        self.records: list[tuple[str, bytes | None, bytes | None]] = []
        # As librdkafka's message.max.bytes: a larger value is refused, nothing queued.
        self.max_bytes: int | None = None

    def produce(self, topic: str, value: Any = None, key: Any = None, **_: Any) -> None:
        if self.max_bytes is not None and len(value or b"") > self.max_bytes:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
        self.records.append((topic, key, value))

    def poll(self, _timeout: float = 0) -> int:
        return 0

    def take(self, topic: str) -> list[bytes]:
        found = [v for t, _, v in self.records if t == topic]
        self.records = [r for r in self.records if r[0] != topic]
        return found


def seed_rule(max_signals: int = 100) -> Rule:
    rule = load_rules([builtin_rules_path()]).rules[0]
    return replace(rule, max_signals=max_signals)


def attacks(count: int) -> list[bytes]:
    """``count`` distinct events the seed rule matches, one window, 10 per second."""
    events = generate_events(count, match_every=1, start=START, events_per_second=10)
    return [json.dumps(e).encode() for e in events]


class Harness:
    def __init__(
        self,
        rule: Rule,
        registry: CollectorRegistry | None = None,
        *,
        also: Sequence[Rule] = (),
        **settings: Any,
    ) -> None:
        self.registry = registry or CollectorRegistry()
        settings = Settings(input_topics=(INPUT,), metrics_port=0, instance_id="unit", **settings)
        rules = [rule, *also]
        self.member = Member(settings, rules, registry=self.registry, clock=lambda: CLOCK)
        self.producer = RecordingProducer()
        self.member._producer = self.producer  # type: ignore[assignment]
        self.member._cores[0] = AlertingCore(rules, clock=lambda: CLOCK)
        self._offset = 0

    def feed(self, values: list[bytes], topic: str = INPUT) -> None:
        """One batch of records on ``topic`` through the member's batch handler."""
        messages = []
        for value in values:
            messages.append(
                Message(
                    topic=topic,
                    partition=0,
                    offset=self._offset,
                    value=value,
                    timestamp=(1, int(CLOCK * 1000)),
                )
            )
            self._offset += 1
        self.member._process_batch(messages)

    def run(self, values: list[bytes]) -> None:
        """Events through detection, then their candidates through alerting."""
        self.feed(values)
        self.feed(self.producer.take(self.member._matches), topic=self.member._matches)

    def candidates(self) -> list[CandidateRecord]:
        """The candidates written to the matches topic since last taken, in order."""
        return [c for v in self.producer.take(self.member._matches) for c in decode_candidates(v)]

    def value(self, metric: str, /, **labels: str) -> float:
        found = self.registry.get_sample_value(metric, labels)
        return 0.0 if found is None else found
