"""The consumer's Prometheus metrics: one prefix, base units, bounded labels.

Every name starts with ``detection_consumer_``. Counters end in ``_total``, durations are
``_seconds`` histograms, timestamps ``_timestamp_seconds``. Labels are bounded sets only:
``topic`` (input and our own topics), ``rule_id`` / ``severity`` / ``name`` / ``version``
(the loaded rules), ``reason``, ``result``, ``event``, ``error`` (librdkafka error names),
``partition``. Never an event value, host, user or pod name: Prometheus adds ``instance``
(and ``pod`` under Kubernetes) from the scrape target.

Counters count processing, not committed output: after an aborted transaction the
member redoes the batch, so a counter may count the same record twice while the output
topics hold it once.

The member loop does not touch these objects per record: it fills a ``BatchTally`` and
calls ``flush`` once per batch. Scrape-time values (ages, readiness, poll age) are
functions read when Prometheus scrapes.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterable
from importlib import metadata

import confluent_kafka
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from consumer.alerting import RuleCounters
from consumer.alerting.event_time import parse_timestamp
from consumer.observability.health import Health
from consumer.observability.tally import BatchTally
from consumer.rules import Rule

PREFIX = "detection_consumer_"
# Event time to alert spans milliseconds (live) to hours (a backlog being caught up).
LATENCY_BUCKETS = (
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
)  # fmt: skip
WORK_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip


def _version() -> str:
    try:
        return metadata.version("consumer")
    except metadata.PackageNotFoundError:
        return "unknown"


class Metrics:
    """All metrics of one member, registered on ``registry``."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        health: Health | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self._by_input_topic: dict[str, tuple[Counter, Counter, Counter, Counter]] = {}

        def counter(name: str, doc: str, *labels: str) -> Counter:
            return Counter(PREFIX + name, doc, labels, registry=registry)

        def gauge(name: str, doc: str, *labels: str) -> Gauge:
            return Gauge(PREFIX + name, doc, labels, registry=registry)

        def histogram(name: str, doc: str, buckets: tuple[float, ...]) -> Histogram:
            return Histogram(PREFIX + name, doc, registry=registry, buckets=buckets)

        # input
        self.events_consumed = counter("events_consumed_total", "Input records consumed.", "topic")
        self.bytes_consumed = counter(
            "consumed_bytes_total", "Bytes of input record values consumed.", "topic"
        )
        self.events_skipped = counter(
            "events_skipped_total",
            "Input records the prefilter proved no rule can match; not decoded.",
            "topic",
        )
        self.events_decoded = counter(
            "events_decoded_total", "Input records decoded into events.", "topic"
        )
        self.decode_failures = counter(
            "decode_failures_total", "Input records that could not be decoded.", "topic", "reason"
        )
        self.dead_letters = counter(
            "dead_letters_total", "Records written to the dead-letter topic.", "reason"
        )
        # detection
        self.rule_matches = counter(
            "rule_matches_total", "Input events a rule's query matched.", "rule_id"
        )
        self.candidates = counter(
            "candidates_total", "Matches the alerting core decided on.", "rule_id"
        )
        self.alerts = counter("alerts_total", "New alerts produced.", "rule_id", "severity")
        self.alert_updates = counter(
            "alert_updates_total",
            "Candidates folded into an existing suppressed alert (an update is produced).",
            "rule_id",
        )
        self.candidates_dropped = counter(
            "candidates_dropped_total",
            "Candidates dropped: reason=duplicate (already alerted) or limit (max_signals).",
            "rule_id",
            "reason",
        )
        self.windows_limited = counter(
            "window_limit_reached_total",
            "Rule windows that hit max_signals (Kibana's maximum alert limit warning).",
            "rule_id",
        )
        self.candidates_clamped = counter(
            "candidates_clamped_total",
            "Candidates re-timed: reason=late (moved to the watermark) or future "
            "(future-dated or without a time, moved to now).",
            "rule_id",
            "reason",
        )
        # timing and freshness
        self.event_to_alert = histogram(
            "event_to_alert_seconds", "Event time to alert produced.", LATENCY_BUCKETS
        )
        self.record_to_alert = histogram(
            "record_to_alert_seconds",
            "Kafka timestamp of the input record to alert produced.",
            LATENCY_BUCKETS,
        )
        self.batch_duration = histogram(
            "batch_duration_seconds", "Processing time of one consumed batch.", WORK_BUCKETS
        )
        self.commit_duration = histogram(
            "commit_duration_seconds",
            "Time to commit a transaction (or flush and commit offsets).",
            WORK_BUCKETS,
        )
        self.restore_duration = histogram(
            "state_restore_seconds",
            "Time to restore a matches partition's window state.",
            WORK_BUCKETS,
        )
        self.last_event_time = gauge(
            "last_event_timestamp_seconds", "Newest @timestamp of the processed events."
        )
        self.last_record_time = gauge(
            "last_record_timestamp_seconds", "Newest Kafka timestamp of the processed records."
        )
        self._newest_event_s = float("nan")
        self._newest_record_s = 0.0
        gauge(
            "last_event_age_seconds", "Now minus the newest processed @timestamp (at scrape)."
        ).set_function(lambda: self._clock() - self._newest_event_s)
        # the group and Kafka
        self.rebalances = counter(
            "rebalances_total", "Rebalance callbacks: event=assign, revoke or lost.", "event"
        )
        self.assigned_partitions = gauge(
            "assigned_partitions", "Partitions this member owns.", "topic"
        )
        self.transactions = counter(
            "transactions_total",
            "Commits: result=committed or aborted (at-least-once: offset commits).",
            "result",
        )
        self.delivery_errors = counter(
            "delivery_errors_total", "Records the producer failed to deliver.", "topic"
        )
        self.retries = counter(
            "retries_total",
            "Work redone: reason=queue_full (produce retried), rewind (batch redone) or "
            "new_producer (an unusable producer replaced).",
            "reason",
        )
        self.kafka_errors = counter(
            "kafka_errors_total", "Errors reported by librdkafka, by error name.", "error"
        )
        # what runs
        self.build_info = gauge(
            "build_info",
            "Versions of what runs (value 1).",
            "version",
            "python_version",
            "librdkafka_version",
            "confluent_kafka_version",
        )
        self.build_info.labels(
            _version(),
            platform.python_version(),
            confluent_kafka.libversion()[0],
            confluent_kafka.version()[0],
        ).set(1)
        self.rule_info = gauge(
            "rule_info", "Loaded rules (value 1).", "rule_id", "name", "version", "severity"
        )
        self.rules_loaded = gauge("rules_loaded", "Rules compiled and running.")
        if health is not None:
            gauge("ready", "1 when /readyz answers 200.").set_function(
                lambda: float(health.ready()[0])
            )
            gauge(
                "poll_age_seconds", "Seconds since the poll loop last went round (at scrape)."
            ).set_function(lambda: health.since_beat() or 0.0)

    def set_rules(self, rules: Iterable[Rule]) -> None:
        """Publish the loaded rules as ``rule_info`` and ``rules_loaded``."""
        count = 0
        for rule in rules:
            self.rule_info.labels(rule.rule_id, rule.name, str(rule.version), rule.severity).set(1)
            count += 1
        self.rules_loaded.set(count)

    def flush(self, tally: BatchTally, batch_seconds: float) -> None:
        """Apply one batch's counts (the member calls this once per non-empty batch)."""
        for topic, (records, size, skipped) in tally.consumed.items():
            failed = sum(n for (t, _), n in tally.decode_failures.items() if t == topic)
            consumed, size_consumed, skipped_records, decoded = self._input_counters(topic)
            consumed.inc(records)
            size_consumed.inc(size)
            skipped_records.inc(skipped)
            decoded.inc(records - skipped - failed)
        for (topic, reason), n in tally.decode_failures.items():
            self.decode_failures.labels(topic, reason).inc(n)
        for reason, n in tally.dead_letters.items():
            self.dead_letters.labels(reason).inc(n)
        for rule_id, n in tally.matches.items():
            self.rule_matches.labels(rule_id).inc(n)
        for rule_id, n in tally.windows_limited.items():
            self.windows_limited.labels(rule_id).inc(n)
        now = self._clock()
        for event_ms, record_ms in tally.alert_times:
            if event_ms is not None:
                self.event_to_alert.observe(max(0.0, now - event_ms / 1000))
            if record_ms is not None:
                self.record_to_alert.observe(max(0.0, now - record_ms / 1000))
        if tally.last_event is not None:
            event_ms = parse_timestamp(tally.last_event.get("@timestamp"))
            if event_ms is not None and not event_ms / 1000 <= self._newest_event_s:
                self._newest_event_s = event_ms / 1000
                self.last_event_time.set(self._newest_event_s)
        if tally.last_record_ms is not None and tally.last_record_ms / 1000 > self._newest_record_s:
            self._newest_record_s = tally.last_record_ms / 1000
            self.last_record_time.set(self._newest_record_s)
        self.batch_duration.observe(batch_seconds)

    def _input_counters(self, topic: str) -> tuple[Counter, Counter, Counter, Counter]:
        """The four counters every batch adds to for an input topic: a ``labels()``
        look-up hashes and locks, so each topic's are looked up once."""
        found = self._by_input_topic.get(topic)
        if found is None:
            found = self._by_input_topic[topic] = (
                self.events_consumed.labels(topic),
                self.bytes_consumed.labels(topic),
                self.events_skipped.labels(topic),
                self.events_decoded.labels(topic),
            )
        return found

    def add_rule_counters(self, rule: Rule, counters: RuleCounters) -> None:
        """Add what a core counted for ``rule`` since the last call, then zero its counters.

        The cores count per candidate in plain ints; moving them here once per batch keeps
        prometheus-client off the per-candidate path.
        """
        rule_id = rule.rule_id
        if counters.matched:
            self.candidates.labels(rule_id).inc(counters.matched)
        if counters.alerts:
            self.alerts.labels(rule_id, rule.severity).inc(counters.alerts)
        if counters.suppressed:
            self.alert_updates.labels(rule_id).inc(counters.suppressed)
        if counters.duplicates:
            self.candidates_dropped.labels(rule_id, "duplicate").inc(counters.duplicates)
        if counters.limited:
            self.candidates_dropped.labels(rule_id, "limit").inc(counters.limited)
        if counters.late:
            self.candidates_clamped.labels(rule_id, "late").inc(counters.late)
        if counters.clamped:
            self.candidates_clamped.labels(rule_id, "future").inc(counters.clamped)
        counters.matched = counters.alerts = counters.suppressed = counters.duplicates = 0
        counters.limited = counters.late = counters.clamped = 0
