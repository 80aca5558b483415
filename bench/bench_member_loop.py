"""Throughput of the member's per-record loop alone, without a broker.

Run: ``.venv/bin/python bench/bench_member_loop.py [--match-every 100] [--format avro]``.

A before/after check for changes to the hot path (bench/bench_pipeline.py measures the
whole consumer against the raw client). Real ``confluent_kafka.Message`` objects go
through the member's batch handler with a producer that only counts; one event in
``--match-every`` matches the seed rule, and the candidates produced are fed back as
matches records (the alerting path). A bare loop over the same messages reading each
value is printed as the floor.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from typing import Any

from confluent_kafka import Message

from consumer.alerting import AlertingCore
from consumer.codecs import encode_event_avro, encode_event_json
from consumer.generator import generate_events
from consumer.pipeline import Member
from consumer.pipeline.records import decode_candidates
from consumer.rules import builtin_rules_path, load_rules
from consumer.settings import Settings

BATCH = 500


class _CountingProducer:
    def __init__(self) -> None:
        self.records: list[tuple[str, bytes | None, bytes | None]] = []

    def produce(self, topic: str, value: Any = None, key: Any = None, **_: Any) -> None:
        self.records.append((topic, key, value))

    def poll(self, _timeout: float = 0) -> int:
        return 0


def _messages(topic: str, values: list[bytes], now_ms: int) -> list[Message]:
    return [
        Message(topic=topic, partition=0, offset=i, value=v, key=None, timestamp=(1, now_ms))
        for i, v in enumerate(values)
    ]


def _handle(member: Member, messages: list[Message]) -> None:
    for start in range(0, len(messages), BATCH):
        member._process_batch(messages[start : start + BATCH])


def _bare(messages: list[Message]) -> float:
    started = time.perf_counter()
    size = 0
    for start in range(0, len(messages), BATCH):
        for message in messages[start : start + BATCH]:
            if message.error() is None:
                size += len(message.value())
    return len(messages) / (time.perf_counter() - started)


def _encoder(fmt: str) -> Any:
    if fmt == "avro":
        return lambda e: encode_event_avro(e, confluent_schema_id=1, drop_unknown=True)
    return encode_event_json


def run(
    count: int, match_every: int, rule_paths: list[str], fmt: str
) -> tuple[float, float, float]:
    rules = load_rules(rule_paths or [builtin_rules_path()]).rules
    settings = Settings(input_topics=("events",), metrics_port=0, instance_id="bench")
    member = Member(settings, rules)
    producer = _CountingProducer()
    member._producer = producer  # type: ignore[assignment]
    member._cores[0] = AlertingCore(rules)
    now_ms = int(time.time() * 1000)
    encode = _encoder(fmt)
    values = [encode(e) for e in generate_events(count, match_every=match_every)]
    events = _messages("events", values, now_ms)
    bare_rate = _bare(events)
    started = time.perf_counter()
    _handle(member, events)
    event_rate = count / (time.perf_counter() - started)
    records = [v for t, _k, v in producer.records if t == member._matches]
    candidates = sum(len(decode_candidates(v)) for v in records)  # a batch's, per rule
    matches = _messages(member._matches, records, now_ms)
    started = time.perf_counter()
    _handle(member, matches)
    candidate_rate = candidates / (time.perf_counter() - started)
    return bare_rate, event_rate, candidate_rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--match-every", type=int, default=100)
    parser.add_argument(
        "--format", choices=("json", "avro"), default="json",
        help="record encoding; avro: Confluent framing, schema id 1",
    )  # fmt: skip
    parser.add_argument(
        "--rules",
        action="append",
        default=[],
        help="rule files or directories (default: the built-in rule); e.g. a local copy of "
        "elastic/detection-rules' rules/ to measure Elastic's whole prebuilt set",
    )
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the limit warnings of the flood are expected
    runs = [run(args.count, args.match_every, args.rules, args.format) for _ in range(args.repeat)]
    bare, events, candidates = (statistics.median(r[i] for r in runs) for i in range(3))
    rules = len(load_rules(args.rules or [builtin_rules_path()]).rules)
    print(
        f"{args.count} {args.format} records, {rules} rule(s), "
        f"1 seed match in {args.match_every}, "
        f"median of {args.repeat}"
    )
    print(f"bare loop:  {bare:,.0f}/s")
    print(f"events:     {events:,.0f}/s ({events / bare:.3f} of the bare loop)")
    print(f"candidates: {candidates:,.0f}/s")


if __name__ == "__main__":
    main()
