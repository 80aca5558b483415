"""``python -m consumer generate`` against a real broker (Tansu): what is sent comes back.

Each test produces to a fresh 4-partition topic through the command's own parser, reads
every record back, decodes it with the pipeline's codec and checks counts, attacks (by
the seed rule's compiled query), duplicates, keys and pacing.
"""

from __future__ import annotations

import argparse
import io
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from consumer.codecs import EventCodec, default_schema_dir
from consumer.kql import compile_query
from consumer.produce import add_generate_parser, event_key, produce_events
from consumer.rules import builtin_rules_path, load_rules

pytestmark = [pytest.mark.tansu, pytest.mark.timeout(120)]

COUNT = 3000
MATCH_EVERY = 500  # 6 attacks, 6 near misses
DUPLICATE_EVERY = 100  # 30 duplicates, every attack among them
START = "2026-12-04T09:00:00Z"


@pytest.fixture(scope="module")
def seed_query() -> Callable[[dict[str, Any]], bool]:
    (rule,) = load_rules([builtin_rules_path()]).rules
    return compile_query(rule.query)


def _generate(bootstrap: str, topic: str, *extra: str) -> tuple[int, str]:
    parser = argparse.ArgumentParser()
    add_generate_parser(parser.add_subparsers(required=True))
    args = parser.parse_args(
        [
            "generate",
            "--bootstrap-servers",
            bootstrap,
            "--topic",
            topic,
            "--count",
            str(COUNT),
            "--match-every",
            str(MATCH_EVERY),
            "--duplicate-every",
            str(DUPLICATE_EVERY),
            "--start",
            START,
            *extra,
        ]
    )
    out = io.StringIO()
    code = args.command(args, out)
    return code, out.getvalue()


def _read_all(consumer: Consumer, topic: str, expected: int, timeout: float = 30.0) -> list[Any]:
    # Assigned, not subscribed: no group join to wait for.
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    records: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(records) < expected and time.monotonic() < deadline:
        for message in consumer.consume(1000, 0.5):
            assert message.error() is None, message.error()
            records.append(message)
    # A little longer: nothing beyond the plan may arrive.
    records.extend(m for m in consumer.consume(1000, 1.0) if m.error() is None)
    return records


@pytest.mark.parametrize(
    ("fmt", "codec_options"),
    [
        ("json", {}),
        ("avro", {}),
        ("avro-raw", {"raw_writer_schema": "ecs_process_event", "format": "avro"}),
    ],
)
def test_generate_round_trip(
    fmt: str,
    codec_options: dict[str, Any],
    tansu_bootstrap: Any,
    topic_factory: Callable[..., str],
    consumer_factory: Callable[..., Consumer],
    seed_query: Callable[[dict[str, Any]], bool],
) -> None:
    topic = topic_factory(partitions=4)
    code, summary = _generate(
        tansu_bootstrap.bootstrap_servers, topic, "--rate", "0", "--format", fmt
    )
    assert code == 0, summary
    for part in (
        "events=3030",
        "distinct=3000",
        "attacks=6",
        "near_misses=6",
        "duplicates=30",
        "failed=0",
        f"format={fmt}",
    ):
        assert part in summary

    records = _read_all(consumer_factory(), topic, 3030)
    assert len(records) == 3030
    codec = EventCodec.from_schema_dir(default_schema_dir(), **codec_options)
    events = [codec.decode(m.value()) for m in records]
    ids = Counter(e["event"]["id"] for e in events)
    assert len(ids) == COUNT
    assert sum(n - 1 for n in ids.values()) == 30
    # Each attack matches the seed rule and was re-sent once: 6 ids, each seen twice.
    attacks = Counter(e["event"]["id"] for e in events if seed_query(e))
    assert len(attacks) == 6
    assert set(attacks.values()) == {2}
    # Keyed by host name; one host's records share a partition.
    assert all(m.key() == event_key(e) for m, e in zip(records, events, strict=True))
    partitions_by_host: dict[bytes, set[int]] = {}
    for m in records:
        partitions_by_host.setdefault(m.key(), set()).add(m.partition())
    assert all(len(p) == 1 for p in partitions_by_host.values())
    assert len({m.partition() for m in records}) > 1


def test_generate_paces_to_the_rate(
    tansu_bootstrap: Any, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory(partitions=1)
    events = [{"host": {"name": "h"}, "event": {"id": str(i)}} for i in range(1500)]
    stats = produce_events(tansu_bootstrap.bootstrap_servers, topic, events, rate=1000.0)
    assert (stats.records, stats.failed) == (1500, 0)
    # The token bucket lets 100 go at once (a tenth of a second), then 1000/s.
    assert stats.seconds >= 1.3
    assert stats.seconds < 10


def test_generate_creates_the_topic_when_asked(
    tansu_bootstrap: Any, consumer_factory: Callable[..., Consumer], group_id: str
) -> None:
    topic = f"created-{group_id}"
    code, summary = _generate(
        tansu_bootstrap.bootstrap_servers, topic, "--rate", "0", "--partitions", "2"
    )
    assert code == 0, summary
    consumer = consumer_factory()
    assert len(consumer.list_topics(topic, timeout=10).topics[topic].partitions) == 2
    assert len(_read_all(consumer, topic, 3030)) == 3030


def test_generate_reports_an_unreachable_broker(capsys: pytest.CaptureFixture[str]) -> None:
    # Nothing listens on port 1: every record fails after a short message timeout.
    stats = produce_events(
        "127.0.0.1:1",
        "nowhere",
        [{"host": {"name": "h"}}] * 3,
        config={"message.timeout.ms": 500},
        flush_timeout=10,
    )
    assert (stats.records, stats.failed) == (3, 3)
    assert stats.errors
