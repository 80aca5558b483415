"""``python -m consumer generate``: produce realistic ECS process events to a Kafka topic.

What is sent (the *plan*, pure and deterministic for a given ``--start``):

- ``count`` distinct events from :func:`consumer.generator.generate_events`. Event ``i`` is
  a kextunload attack (it matches the seed rule) when ``i % match_every == match_every - 1``
  and a near miss (looks alike, must not match) when ``i % match_every == match_every // 2``;
  every other event is benign.
- Duplicates on top: event ``i`` with ``i % duplicate_every == duplicate_every - 1`` is sent
  a second time, byte for byte (same ``event.id``), ``DUPLICATE_LAG`` events later, the way
  a shipper's retry redelivers a record. When ``duplicate_every`` divides ``match_every``
  every attack is among them, which is what shows dedup at work (the defaults do this).

How it is sent: keyed by ``host.name`` (so one host's events keep their order within a
partition, as Beats' Kafka output does with that key), as compact JSON, Avro with the
Confluent header (schema id 1) or raw Avro, paced by a token bucket to ``rate`` records per
second (``0``: as fast as the producer goes). Event ``i``'s ``@timestamp`` is
``start + i / rate``, so at the target rate event time keeps up with the wall clock; a
duplicate carries its original's time. ``start`` defaults to now: a pipeline treats events
far ahead of its clock as future-dated.

:func:`produce_events` is the Kafka part, shared with the demo and the benchmarks; the
plan (:class:`EventPlan`, :func:`with_duplicates`, :func:`slot_kind`) and the pacing
(:class:`TokenBucket`) are pure and tested without a broker.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TextIO, TypeVar

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from consumer.codecs import encode_event_avro, encode_event_json
from consumer.generator import generate_events

__all__ = [
    "CONFLUENT_SCHEMA_ID",
    "DEFAULT_TOPIC",
    "DUPLICATE_LAG",
    "FORMATS",
    "EventPlan",
    "PlanCounts",
    "PlanSpec",
    "ProduceStats",
    "TokenBucket",
    "add_generate_parser",
    "encoder_for",
    "ensure_topic",
    "event_key",
    "produce_events",
    "slot_kind",
    "with_duplicates",
]

_log = logging.getLogger(__name__)

ProduceFormat = Literal["json", "avro", "avro-raw"]
FORMATS: tuple[ProduceFormat, ...] = ("json", "avro", "avro-raw")
DEFAULT_TOPIC = "logs-endpoint.events.process-default"
#: The id the pipeline's default ``--avro-schema-ids`` maps to the event schema.
CONFLUENT_SCHEMA_ID = 1
#: How many distinct events later a duplicate is re-sent.
DUPLICATE_LAG = 7
#: Event time spacing when ``rate`` is 0 (no target rate to follow).
UNPACED_EVENTS_PER_SECOND = 1000.0

# Ours, in one place; a caller's ``config`` is laid over them.
PRODUCER_DEFAULTS: Mapping[str, Any] = {
    "linger.ms": 10,
    "compression.type": "lz4",
    "enable.idempotence": True,  # a retried batch must not become an unplanned duplicate
    "acks": "all",
    "queue.buffering.max.messages": 100_000,
}

T = TypeVar("T")
Kind = Literal["attack", "near_miss", "benign"]


# --------------------------------------------------------------------------- the plan (pure)


def slot_kind(index: int, match_every: int | None) -> Kind:
    """What ``generate_events(..., match_every=match_every)`` puts at ``index``.

    Mirrors the generator's documented schedule: an attack at ``match_every - 1`` of every
    ``match_every`` events, a near miss at ``match_every // 2`` (only when that differs).
    """
    if not match_every:
        return "benign"
    position = index % match_every
    if position == match_every - 1:
        return "attack"
    if match_every >= 2 and position == match_every // 2:
        return "near_miss"
    return "benign"


def with_duplicates(
    items: Iterable[T], every: int | None, lag: int = DUPLICATE_LAG
) -> Iterator[tuple[int, T, bool]]:
    """Yield ``(index, item, is_duplicate)``: every item once, in order, plus re-sends.

    Item ``i`` with ``i % every == every - 1`` is yielded again right after item
    ``i + lag``; re-sends still pending when ``items`` ends follow the last item, so every
    scheduled duplicate is sent. ``every`` None or 0: no duplicates. Holds at most
    ``lag // every + 1`` items back, whatever the stream's length.
    """
    if every is not None and every < 0:
        raise ValueError("every must be None or at least 0")
    if lag < 0:
        raise ValueError("lag must not be negative")
    pending: deque[tuple[int, int, T]] = deque()  # (due after index, index, item)
    for index, item in enumerate(items):
        yield index, item, False
        if every and index % every == every - 1:
            pending.append((index + lag, index, item))
        while pending and pending[0][0] <= index:
            _, original, held = pending.popleft()
            yield original, held, True
    for _, original, held in pending:
        yield original, held, True


@dataclass(frozen=True, slots=True)
class PlanSpec:
    """What to generate: distinct count, mix, duplicates and event-time spacing."""

    count: int
    seed: int = 0
    match_every: int | None = 2500
    duplicate_every: int | None = 500
    start: datetime | None = None
    events_per_second: float = UNPACED_EVENTS_PER_SECOND
    duplicate_lag: int = DUPLICATE_LAG

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ValueError("count must not be negative")
        for name in ("match_every", "duplicate_every"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must not be negative (0 or None: off)")


@dataclass(slots=True)
class PlanCounts:
    """What a plan has handed out so far; ``events`` includes the duplicates."""

    events: int = 0
    distinct: int = 0
    attacks: int = 0
    near_misses: int = 0
    duplicates: int = 0
    attack_duplicates: int = 0


class EventPlan:
    """The events to send for a :class:`PlanSpec`, counting them as they are taken.

    Iterate it once (lazily: a million events never sit in memory); ``counts`` then says
    how many attacks, near misses and duplicates went out, also when the consumer of the
    iterator stopped early.
    """

    def __init__(self, spec: PlanSpec) -> None:
        self.spec = spec
        self.counts = PlanCounts()

    @property
    def expected_attacks(self) -> int:
        """Distinct attacks in the whole plan: the alerts a correct pipeline emits."""
        every = self.spec.match_every
        return self.spec.count // every if every else 0

    @property
    def expected_records(self) -> int:
        """Records in the whole plan, duplicates included."""
        every = self.spec.duplicate_every
        return self.spec.count + (self.spec.count // every if every else 0)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        spec = self.spec
        events = generate_events(
            spec.count,
            seed=spec.seed,
            match_every=spec.match_every or None,
            start=spec.start if spec.start is not None else datetime.now(UTC),
            events_per_second=spec.events_per_second,
        )
        for index, event, duplicate in with_duplicates(
            events, spec.duplicate_every, spec.duplicate_lag
        ):
            self._count(slot_kind(index, spec.match_every), duplicate)
            yield event

    def _count(self, kind: Kind, duplicate: bool) -> None:
        counts = self.counts
        counts.events += 1
        if duplicate:
            counts.duplicates += 1
            counts.attack_duplicates += kind == "attack"
            return
        counts.distinct += 1
        counts.attacks += kind == "attack"
        counts.near_misses += kind == "near_miss"


# --------------------------------------------------------------------------- pacing (pure)


class TokenBucket:
    """Token-bucket pacing at ``rate`` records per second with bursts up to ``burst``.

    ``take(now)`` spends one token and returns how long the caller must wait before
    sending. The bucket may go into debt, so a caller that skips a very short wait is made
    to wait longer next time: over any span ``t`` at most ``burst + rate * t`` records go
    out, and the long-run rate is ``rate`` however coarse the sleeps are. ``rate <= 0``
    never waits. Time is passed in, so tests drive a fake clock.
    """

    def __init__(self, rate: float, now: float, burst: float | None = None) -> None:
        self.rate = rate
        # A tenth of a second's worth by default: smooth enough for a consumer to see a
        # steady stream, large enough that sleeps are not per record at high rates.
        self.capacity = burst if burst is not None else max(1.0, rate / 10)
        self.tokens = self.capacity
        self.stamp = now

    def take(self, now: float, tokens: float = 1.0) -> float:
        """Spend ``tokens`` at time ``now``; seconds to wait before sending (0: go now)."""
        if self.rate <= 0:
            return 0.0
        elapsed = max(0.0, now - self.stamp)
        self.stamp = max(self.stamp, now)
        self.tokens = min(self.capacity, self.tokens + elapsed * self.rate) - tokens
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


# --------------------------------------------------------------------------- Kafka


def event_key(event: Mapping[str, Any]) -> bytes | None:
    """The record key: ``host.name`` (nested or as a dotted key), UTF-8; None if absent."""
    host = event.get("host")
    name = host.get("name") if isinstance(host, Mapping) else event.get("host.name")
    return name.encode() if isinstance(name, str) and name else None


def encoder_for(fmt: ProduceFormat) -> Callable[[dict[str, Any]], bytes]:
    """The value encoder for ``fmt``.

    Avro drops fields the event schema lacks (Auditbeat's ``service``, ``user.group``...):
    an Avro producer can only write what its schema holds, and the rule's fields are in it.
    """
    if fmt == "json":
        return encode_event_json
    if fmt == "avro":
        return lambda event: encode_event_avro(
            event, confluent_schema_id=CONFLUENT_SCHEMA_ID, drop_unknown=True
        )
    if fmt == "avro-raw":
        return lambda event: encode_event_avro(event, drop_unknown=True)
    raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")


@dataclass(slots=True)
class ProduceStats:
    """What :func:`produce_events` did: records and bytes handed over, failures, time."""

    records: int = 0
    bytes: int = 0
    failed: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)  # the first few, for the report

    @property
    def delivered(self) -> int:
        return self.records - self.failed

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


_MAX_KEPT_ERRORS = 5
_MIN_SLEEP = 0.002  # shorter waits are left to the bucket's debt: sleep() is not that precise


def produce_events(
    bootstrap_servers: str,
    topic: str,
    events: Iterable[dict[str, Any]],
    *,
    format: ProduceFormat = "json",
    rate: float = 0.0,
    config: Mapping[str, Any] | None = None,
    stop: threading.Event | None = None,
    flush_timeout: float = 30.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> ProduceStats:
    """Send ``events`` to ``topic``, keyed by host name, paced to ``rate`` records/s.

    Returns once every record is delivered or failed (``flush_timeout`` bounds the wait;
    records still queued then count as failed). A set ``stop`` ends sending early; what
    was sent is still flushed. ``config`` holds librdkafka properties over our defaults.
    """
    encode = encoder_for(format)
    stats = ProduceStats()
    producer = Producer(
        {
            **PRODUCER_DEFAULTS,
            **(config or {}),
            "bootstrap.servers": bootstrap_servers,
            "logger": _log,
        }
    )

    def delivered(err: KafkaError | None, _msg: object) -> None:
        if err is not None:
            stats.failed += 1
            if len(stats.errors) < _MAX_KEPT_ERRORS:
                stats.errors.append(str(err))

    started = clock()
    bucket = TokenBucket(rate, started)
    for event in events:
        if stop is not None and stop.is_set():
            break
        wait = bucket.take(clock())
        if wait >= _MIN_SLEEP:
            sleep(wait)
        value = encode(event)
        _produce(producer, topic, value, event_key(event), delivered)
        stats.records += 1
        stats.bytes += len(value)
    # Flush first, then add: the delivery callbacks run inside flush() and count failures.
    unflushed = producer.flush(flush_timeout)
    stats.failed += unflushed
    stats.seconds = clock() - started
    return stats


def _produce(
    producer: Producer,
    topic: str,
    value: bytes,
    key: bytes | None,
    on_delivery: Callable[[KafkaError | None, object], None],
) -> None:
    while True:
        try:
            producer.produce(topic, value, key=key, on_delivery=on_delivery)
        except BufferError:  # local queue full: let librdkafka drain it, then retry
            producer.poll(0.1)
            continue
        producer.poll(0)  # serve delivery callbacks as we go
        return


def ensure_topic(
    bootstrap_servers: str, topic: str, partitions: int, *, timeout: float = 30.0
) -> bool:
    """Create ``topic`` with ``partitions`` if it is missing and wait until each is led.

    Returns True if it was created here. An existing topic is left as it is, whatever
    its partition count.
    """
    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "logger": _log})
    created = True
    future = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=-1)],
        operation_timeout=timeout,
    )[topic]
    try:
        future.result(timeout=timeout)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise
        created = False
    _wait_for_leaders(admin, topic, timeout)
    return created


def _wait_for_leaders(admin: AdminClient, topic: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        found = admin.list_topics(topic=topic, timeout=5).topics.get(topic)
        if (
            found is not None
            and found.error is None
            and found.partitions
            and all(p.leader >= 0 and p.error is None for p in found.partitions.values())
        ):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topic {topic} has no leader for every partition after {timeout}s")
        time.sleep(0.05)


# --------------------------------------------------------------------------- command line


def add_generate_parser(subparsers: Any) -> None:
    """Add the ``generate`` command to ``subparsers`` (from ``add_subparsers``).

    Its ``command`` default takes the parsed namespace and returns the exit code.
    """
    parser = subparsers.add_parser(
        "generate",
        help="produce realistic ECS process events (attacks, near misses, duplicates) to Kafka",
        description=__doc__.split("\n\n")[0].split(": ", 1)[-1],
    )
    parser.add_argument(
        "--bootstrap-servers",
        metavar="HOST:PORT",
        help="Kafka brokers [env KAFKA_BOOTSTRAP_SERVERS; default localhost:9092]",
    )
    parser.add_argument("--topic", default=DEFAULT_TOPIC, help=f"default {DEFAULT_TOPIC}")
    parser.add_argument(
        "--rate",
        type=_non_negative(float),
        default=1000.0,
        metavar="PER_SECOND",
        help="records per second, duplicates included; 0: as fast as possible (default 1000)",
    )
    parser.add_argument(
        "--count",
        type=_non_negative(int),
        default=10_000,
        help="distinct events; duplicates come on top (default 10000)",
    )
    parser.add_argument("--format", choices=FORMATS, default="json", help="default json")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    parser.add_argument(
        "--match-every",
        type=_non_negative(int),
        default=2500,
        metavar="N",
        help="one kextunload attack and one near miss per N events; 0: none (default 2500)",
    )
    parser.add_argument(
        "--duplicate-every",
        type=_non_negative(int),
        default=500,
        metavar="N",
        help="re-send every N-th event with the same event.id; 0: none (default 500)",
    )
    parser.add_argument(
        "--start",
        type=_iso_time,
        metavar="ISO",
        help="@timestamp of the first event, e.g. 2026-12-04T09:00:00Z (default: now)",
    )
    parser.add_argument(
        "--partitions",
        type=_non_negative(int),
        default=0,
        metavar="N",
        help="create the topic with N partitions if it is missing (default 0: do not create)",
    )
    parser.set_defaults(command=run_generate)


def run_generate(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """The ``generate`` command: produce the plan, print one summary line; exit code."""
    out = out or sys.stdout
    bootstrap = args.bootstrap_servers or os.environ.get(
        "KAFKA_BOOTSTRAP_SERVERS", "localhost:9092"
    )
    plan = EventPlan(
        PlanSpec(
            count=args.count,
            seed=args.seed,
            match_every=args.match_every or None,
            duplicate_every=args.duplicate_every or None,
            start=args.start,
            events_per_second=args.rate or UNPACED_EVENTS_PER_SECOND,
        )
    )
    try:
        if args.partitions:
            ensure_topic(bootstrap, args.topic, args.partitions)
        stats = produce_events(bootstrap, args.topic, plan, format=args.format, rate=args.rate)
    except (KafkaException, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(summary_line(plan.counts, stats, args.topic, args.format), file=out, flush=True)
    for error in stats.errors:
        print(f"error: delivery failed: {error}", file=sys.stderr)
    return 1 if stats.failed else 0


def summary_line(counts: PlanCounts, stats: ProduceStats, topic: str, fmt: str) -> str:
    """``generate``'s one line: key=value pairs, easy to read and to grep."""
    return (
        f"generate: events={counts.events} distinct={counts.distinct} attacks={counts.attacks}"
        f" near_misses={counts.near_misses} duplicates={counts.duplicates}"
        f" failed={stats.failed} bytes={stats.bytes} seconds={stats.seconds:.2f}"
        f" rate={stats.rate:.0f}/s topic={topic} format={fmt}"
    )


def _non_negative(kind: Callable[[str], T]) -> Callable[[str], T]:
    def parse(text: str) -> T:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value < 0:  # type: ignore[operator]
            raise argparse.ArgumentTypeError(f"{text} is negative")
        return value

    return parse


def _iso_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from None
    # A time without an offset is taken as UTC: agents write UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
