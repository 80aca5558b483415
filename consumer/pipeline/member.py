"""One member of the consumer group: events in, alerts out, exactly once.

The member subscribes to the input topics and to the internal matches topic. Per batch:

- an input record that no rule can match, as the prefilter proves from its bytes, and
  that looks well formed is counted and not decoded; any other is decoded
  (undecodable: to the dead-letter topic, with its reason),
  matched against every rule, and each match is written to the matches topic keyed by
  rule uuid, so all candidates of a rule meet at the one member owning that partition
  (one record per rule and batch, ``consumer.pipeline.records``);
- a matches record's candidates go through that partition's ``AlertingCore`` (restored
  from the changelog when the partition was assigned); their alerts go to the alerts
  topic keyed by alert id, status records to the status topic;
- at the commit interval, the cores' state changes go to the changelog, and under
  exactly-once the consumed offsets and every record written since the last commit
  commit in one Kafka transaction. Under at-least-once the producer is flushed first and
  the offsets committed after; deterministic alert ids keep downstream indexing
  idempotent.

A transaction that fails is aborted and the member rewinds: it seeks every partition to
its committed offset and rebuilds its cores from the changelog, so the aborted work is
redone from the same state. Revoked partitions are committed before they are given up;
lost ones are dropped without commit (another member redoes them).

Observability: the loop counts each batch in a ``BatchTally`` (plain dict increments on
the per-record path) and flushes it to the metrics once per batch; the alerting cores'
own counters are moved to the metrics at the same point. Troubles are logged once per
incident (``Incidents``), never once per record. The loop beats ``Health`` every round;
readiness follows connection, assignment and restore.
"""

from __future__ import annotations

import json
import logging
import signal
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from prometheus_client import CollectorRegistry

from consumer.alerting import ALERT, RULE_STATUS, AlertingCore, Candidate, UnreadableEvent
from consumer.alerting.event_time import SOURCE_KAFKA
from consumer.alerting.facts import read_facts
from consumer.alerting.identity import event_id
from consumer.batch import RecordBatch
from consumer.codecs import DecodeError, EventCodec
from consumer.detection import Detector, fields_read
from consumer.errors import ConsumerError, EventError
from consumer.observability import BatchTally, Health, Incidents, KafkaStatsCollector, Metrics
from consumer.observability.tally import add
from consumer.pipeline import clients
from consumer.pipeline.admin import ensure_topics
from consumer.pipeline.changelog import changelog_messages, restore_records
from consumer.pipeline.records import (
    ALERT_TOO_LARGE,
    DEAD_LETTER_VALUE_BYTES,
    INVALID_CANDIDATE,
    MATCH_TOO_LARGE,
    UNKNOWN_RULE,
    CandidateRecord,
    dead_letter_headers,
    decode_candidates,
    encode_candidates,
)
from consumer.pipeline.startup import ClientErrors, wait_for_broker
from consumer.prefilter import Prefilter
from consumer.rules import Rule, rule_topics
from consumer.settings import Settings

log = logging.getLogger(__name__)
# A match on its way to the matches topic: the input record and its candidate.
Match = tuple[Message, CandidateRecord]
BATCH_SIZE = 500
# consume() waits for a full batch or this long, whichever comes first: it bounds how
# long a record can sit in the client before the loop sees it.
POLL_TIMEOUT = 0.005
KAFKA_TIMEOUT = 30.0
# The matched records' bytes one matches record carries at most (a larger one goes
# alone): well under librdkafka's and the broker's limit on a record (1 MB).
CANDIDATE_RECORD_BYTES = 256 * 1024
# Producers replaced in a row, no transaction committed in between, before the member
# gives up (exit 3): a fault a new producer does not cure ends in a restart, not a loop.
PRODUCER_REPLACEMENTS = 3


class FatalKafkaError(ConsumerError):
    """The broker refused us for good (authentication, authorization, fencing)."""


def _refused(error: KafkaError, detail: str = "") -> FatalKafkaError:
    """The member's end on ``error``, in the words every fatal exit uses."""
    return FatalKafkaError(f"Kafka refused the member: {error.str()}{detail}")


class _TransactionFailed(Exception):
    """The open transaction can only be aborted: librdkafka refused a record mid-batch
    (a delivery timed out or was rejected, so the transaction entered its abortable state)."""

    def __init__(self, error: KafkaError) -> None:
        super().__init__(error.str())
        self.error = error


class _RecordTooLarge(_TransactionFailed):
    """librdkafka refused a record larger than it may write (``message.max.bytes``):
    nothing was queued, so a caller that can write a smaller record instead goes on;
    elsewhere the transaction is aborted, as for any refusal."""


class Member:
    """A consumer-group member running ``rules`` with ``settings``; ``run`` until stopped."""

    def __init__(
        self,
        settings: Settings,
        rules: Sequence[Rule],
        *,
        clock: Callable[[], float] = time.time,
        registry: CollectorRegistry | None = None,
        health: Health | None = None,
    ) -> None:
        self.settings = settings
        self.rules = {rule.uuid: rule for rule in rules}
        self.detector = Detector(rules)
        self.codec: EventCodec = settings.build_codec()
        verbatim = self.codec.stores_strings_verbatim()
        if settings.prefilter == "on" and not verbatim:
            log.warning(
                "an Avro writer schema has an enum, whose values a byte scan cannot "
                "see: the prefilter is off, every record is decoded"
            )
        self.prefilter = Prefilter(
            rules,
            enabled=settings.prefilter == "on" and verbatim,
            format=self.codec.format,
            avro_fields=self.codec.avro_fields(),
        )
        # Avro: a record a rule may match is read for the fields the rules naming their
        # fields and alerting read (a third of the decode, with the seed rule), unless a
        # rule selected for it may read any field; the window owner decodes it whole for
        # an alert. One reader for them all: compiling one takes tens of milliseconds.
        # --prefilter off promises every record decoded and checked: whole, then.
        self._reads_any = frozenset(
            i for i, rule in enumerate(rules) if fields_read([rule]) is None
        )
        self._fields = fields_read(
            [rule for i, rule in enumerate(rules) if i not in self._reads_any]
        )
        self._projected = (
            self.prefilter.enabled
            and self.codec.format != "json"
            and self._fields is not None
            and self.codec.can_read_in_part(self._fields)
        )
        self.subscriptions = list(settings.input_topics or rule_topics(rules))
        self.exactly_once = settings.guarantee == "exactly-once"
        self._clock = clock
        self._matches = str(settings.matches_topic)
        self._changelog = str(settings.changelog_topic)
        self._outputs = {
            settings.alerts_topic,
            settings.dead_letter_topic,
            settings.status_topic,
            self._changelog,
        }
        self._cores: dict[int, AlertingCore] = {}
        self._pending: dict[tuple[str, int], int] = {}
        # Input records read so far: the codec samples Avro records by this count.
        self._read = 0
        self._last_commit = time.monotonic()
        self._stopping = False
        self._fatal: KafkaError | None = None
        self._delivery_failures = 0
        self._replacements = 0
        self._urgent = False
        # See _near_real_time: then latency counts, else throughput.
        self._caught_up = True
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        # Observability: a registry of its own unless the process serves one.
        self.registry = registry if registry is not None else CollectorRegistry()
        self.health = health if health is not None else Health(settings.liveness_timeout_s)
        self.metrics = Metrics(self.registry, health=self.health)
        self.metrics.set_rules(rules)
        self.kafka_stats = KafkaStatsCollector(self.registry)
        self._tally = BatchTally()
        self._incidents = Incidents(log)
        self._assigned: dict[str, set[int]] = {}

    def stop(self, *_: Any) -> None:
        """Ask the loop to finish its batch, commit and leave (signal-handler safe)."""
        self._stopping = True

    def run(self) -> int:
        """Connect, create missing topics, and process until stopped; returns 0."""
        errors = ClientErrors()
        admin = clients.make_admin(self.settings, error_cb=errors)
        if not wait_for_broker(
            admin, self.settings.startup_timeout_s, errors, stopping=lambda: self._stopping
        ):
            log.info("stopped before the brokers answered")
            return 0
        ensure_topics(
            admin,
            outputs=[
                self.settings.alerts_topic,
                self.settings.dead_letter_topic,
                self.settings.status_topic,
            ],
            matches=self._matches,
            changelog=self._changelog,
        )
        self._producer = self._new_producer()
        if self.exactly_once:
            self._producer.init_transactions(KAFKA_TIMEOUT)
        self.health.connected = True
        self._consumer = clients.make_consumer(
            self.settings, error_cb=self._on_error, stats_cb=self._on_consumer_stats
        )
        self._consumer.subscribe(
            [*self.subscriptions, self._matches],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        log.info(
            "member %s of group %s started: %d rule(s), input %s, %s",
            self.settings.instance_id,
            self.settings.group_id,
            len(self.rules),
            ", ".join(self.subscriptions),
            self.settings.guarantee,
        )
        self._begin()
        try:
            while not self._stopping:
                self.health.beat()
                self._check_fatal()
                messages = self._consumer.consume(BATCH_SIZE, POLL_TIMEOUT)
                self._caught_up = self._near_real_time(messages)
                try:
                    if messages:
                        self._process_batch(messages)
                    if self._commit_due():
                        self._commit()
                except _TransactionFailed as exc:
                    # A record was refused mid-batch: abort, redo from committed state.
                    self._recover(exc.error)
            self._commit()
        finally:
            self._incidents.flush(force=True)
            self._close()
        return 0

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT finish the current batch, commit, leave the group."""
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    # -- records ---------------------------------------------------------------------------

    def _process_batch(self, messages: list[Message]) -> None:
        """Handle one consumed batch, then flush its counts to the metrics once.

        The per-record path is hot: records are handled a topic at a time, with the
        per-record work done by C-level calls over the batch (``map``, ``join``, the
        prefilter's one scan); only records that need decoding get Python code of their own.
        """
        started = time.perf_counter()
        topics = list(map(Message.topic, messages))
        if topics.count(topics[0]) == len(topics):
            self._process_topic(topics[0], messages)
        else:
            by_topic: dict[str | None, list[Message]] = {}
            for topic, message in zip(topics, messages, strict=True):
                by_topic.setdefault(topic, []).append(message)
            for topic, group in by_topic.items():
                self._process_topic(topic, group)
        self._flush_tally(time.perf_counter() - started)

    def _process_topic(self, topic: str | None, messages: list[Message]) -> None:
        """One topic's records of a batch, in their order."""
        errors = list(map(Message.error, messages))
        # By truth, not equality: a KafkaError is always true and cannot be compared with
        # None (== raises); ``any`` over the list is the one C-level pass.
        if any(errors):
            for error in errors:
                if error is not None:
                    self._on_consume_error(error)
            messages = [m for m, error in zip(messages, errors, strict=True) if error is None]
            if not messages:
                return
        # The next offset to consume of each partition: that of its last record, plus one.
        for partition, last in _last_of_each(list(map(Message.partition, messages))).items():
            self._pending[(topic, partition)] = messages[last].offset() + 1
        if topic == self._matches:
            for message in messages:
                self._on_candidates(message)
        elif topic not in self._outputs:
            self._on_events(topic, messages)

    def _on_events(self, topic: str, messages: list[Message]) -> None:
        """Input records: decode those a rule could match or that need checking, run the
        rules the prefilter selected on each; the rest are counted as skipped."""
        # One for both: what the prefilter and the codec ask of the batch is worked out
        # once. Tombstones read as empty records, so they are dead-lettered as such.
        batch = RecordBatch.of(list(map(Message.value, messages)))
        values = batch.values
        selected = dict(self.prefilter.scan(batch))
        checked = self.codec.needs_decoding(batch, self._read)
        self._read += len(values)
        if checked:
            # Not matchable but to be checked: decoded, no rule run.
            selected = dict.fromkeys(checked, ()) | selected
        tally = self._tally
        counts = tally.consumed.get(topic)
        if counts is None:
            counts = tally.consumed[topic] = [0, 0, 0]
        counts[0] += len(values)
        counts[1] += batch.size
        counts[2] += len(values) - len(selected)
        matched: dict[str, list[Match]] = {}
        for i in sorted(selected) if checked else selected:
            event = self._on_event(messages[i], values[i], selected[i], matched)
            if event is not None:
                tally.last_event = event
        tally.last_record_ms = _timestamp_ms(messages[-1])
        for uuid, matches in matched.items():
            for part in _parts(matches, CANDIDATE_RECORD_BYTES):
                self._write_candidates(uuid, part)
        self._urgent = self._urgent or bool(matched)

    def _write_candidates(self, uuid: str, matches: list[Match]) -> None:
        """One matches record of rule ``uuid``'s candidates; one by one if it is larger
        than the producer may write, and a match that cannot be sent alone is
        dead-lettered: its alert is lost, but not silently, and the loop goes on."""
        try:
            self._produce(self._matches, uuid.encode(), encode_candidates([c for _, c in matches]))
        except _RecordTooLarge as exc:
            if len(matches) > 1:
                for match in matches:
                    self._write_candidates(uuid, [match])
                return
            [(message, _)] = matches
            self._dead_letter(
                message,
                MATCH_TOO_LARGE,
                f"rule {self.rules[uuid].rule_id} matched it, but its candidate is larger "
                f"than the producer may write (message.max.bytes): {exc}",
            )

    def _flush_tally(self, batch_seconds: float) -> None:
        tally = self._tally
        if tally.candidates:
            for core in self._cores.values():
                for uuid, counters in core.counters.items():
                    rule = self.rules.get(uuid)
                    if rule is not None:
                        self.metrics.add_rule_counters(rule, counters)
        self.metrics.flush(tally, batch_seconds)
        tally.clear()
        self._incidents.flush()

    def _on_consume_error(self, error: KafkaError) -> None:
        if error.fatal():
            self._fatal = error
        elif error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
            # A pattern that matches no topic yet: normal until the first event arrives.
            log.debug("consume: %s", error.str())
        elif error.code() != KafkaError._PARTITION_EOF:
            self.metrics.kafka_errors.labels(error.name()).inc()
            self._incidents.report(
                f"consume:{error.code()}", logging.WARNING, "consume error: %s", error.str(),
                summary="consume errors", error=error.name(),
            )  # fmt: skip

    def _on_event(
        self,
        message: Message,
        value: bytes,
        selected: Sequence[int],
        matched: dict[str, list[Match]],
    ) -> dict[str, Any] | None:
        """Decode one input record and run the ``selected`` rules (indexes) on it; add
        its candidates to ``matched`` (by rule uuid).

        Returns the event, or ``None`` when the record was dead-lettered.
        """
        fields = (
            self._fields
            if self._projected and selected and self._reads_any.isdisjoint(selected)
            else None
        )
        try:
            event = self.codec.decode(value, fields=fields)
            matches = self.detector.matching_rules(event, selected)
            if matches and fields is not None and event_id(event) is None:
                # Identified by a hash of all of it (consumer.alerting.identity).
                event = self.codec.decode(value)
        except DecodeError as exc:
            add(self._tally.decode_failures, (message.topic(), exc.reason))
            self._dead_letter(message, exc.reason, str(exc))
            return None
        for rule in matches:
            add(self._tally.matches, rule.rule_id)
            timestamp_ms = _timestamp_ms(message)
            record = CandidateRecord(
                rule.uuid,
                message.topic(),
                message.partition(),
                message.offset(),
                timestamp_ms,
                facts=read_facts(rule, event, timestamp_ms),
                value=value,
            )
            matched.setdefault(rule.uuid, []).append((message, record))
        return event

    def _on_candidates(self, message: Message) -> None:
        """A matches record: its candidates (one rule's) through the partition's core."""
        try:
            records = decode_candidates(message.value())
        except EventError as exc:
            self._dead_letter(message, INVALID_CANDIDATE, str(exc))
            return
        uuid = records[0].rule_uuid
        rule = self.rules.get(uuid)
        if rule is None:
            # Matched under a rule set that no longer has the rule: kept, not alerted.
            self._dead_letter(message, UNKNOWN_RULE, f"rule {uuid} is not loaded")
            return
        core = self._cores.get(message.partition())
        if core is None:
            core = self._restore(message.partition())
        for record in records:
            self._on_candidate(message, rule, core, record)

    def _on_candidate(
        self, message: Message, rule: Rule, core: AlertingCore, record: CandidateRecord
    ) -> None:
        if record.event is not None:  # written before facts travelled with candidates
            event: dict[str, Any] | Callable[[], dict[str, Any]] = record.event
            facts = read_facts(rule, record.event, record.timestamp_ms)
        else:
            event, facts = partial(self.codec.decode, record.value), record.facts
        candidate = Candidate(
            rule,
            event,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            kafka_timestamp_ms=record.timestamp_ms,
            facts=facts,
        )
        self._tally.candidates += 1
        try:
            outputs = core.process(candidate)
        except UnreadableEvent as exc:
            # The matching member read this record in part (Avro) or whole: it is broken
            # where it was not read, or members' codec settings differ. Dead-lettered
            # alone: the record's other candidates were decided.
            self._dead_letter(
                message,
                INVALID_CANDIDATE,
                f"the matched record: {exc}",
                value=encode_candidates([record]),
            )
            outputs = exc.outputs
        for output in outputs:
            if output.kind == RULE_STATUS:
                topic = self.settings.status_topic
                if not output.value.get("final"):
                    self._on_window_limited(rule, output.value)
            else:
                topic = self.settings.alerts_topic
                if output.kind == ALERT:
                    found = facts.time
                    self._tally.alert_times.append(
                        (
                            found.ms if found and found.source != SOURCE_KAFKA else None,
                            record.timestamp_ms,
                        )
                    )
            value = json.dumps(output.value, ensure_ascii=False, separators=(",", ":"))
            try:
                self._produce(topic, output.key.encode(), value.encode("utf-8"))
            except _RecordTooLarge as exc:
                # Lost, but not silently, and the loop goes on; the window's budget
                # stays spent, as for an alert written.
                self._dead_letter(
                    message,
                    ALERT_TOO_LARGE,
                    f"{output.kind} {output.key} of rule {rule.rule_id} is larger than the "
                    f"producer may write (message.max.bytes): {exc}",
                    value=value.encode("utf-8"),
                )
            self._urgent = True

    def _on_window_limited(self, rule: Rule, status: dict[str, Any]) -> None:
        # The first cut in a window: Kibana's max-signals warning, once per window.
        add(self._tally.windows_limited, rule.rule_id)
        log.warning(
            "rule %s reached max_signals (%d) in the window from %s; further alerts are cut",
            rule.rule_id, rule.max_signals, status["window"]["start"],
            extra={"rule": rule.rule_id, "rule_name": rule.name},
        )  # fmt: skip

    def _dead_letter(
        self, message: Message, reason: str, error: str, *, value: bytes | None = None
    ) -> None:
        """``message`` (or ``value`` in its stead) to the dead-letter topic, with why."""
        add(self._tally.dead_letters, reason)
        self._incidents.report(
            f"dead-letter:{reason}", logging.WARNING,
            "record dead-lettered (%s): %s", reason, error,
            summary=f"records dead-lettered ({reason})",
            topic=message.topic(), partition=message.partition(), offset=message.offset(),
            reason=reason,
        )  # fmt: skip
        headers = dead_letter_headers(
            message.headers(),
            reason,
            error,
            message.topic(),
            message.partition(),
            message.offset(),
            _timestamp_ms(message),
        )
        value = message.value() if value is None else value
        try:
            self._produce(self.settings.dead_letter_topic, message.key(), value, headers=headers)
        except _RecordTooLarge:
            # Its bytes stay where the source headers point; the loop goes on.
            headers.append((DEAD_LETTER_VALUE_BYTES, str(len(value or b"")).encode()))
            self._produce(self.settings.dead_letter_topic, message.key(), b"", headers=headers)

    def _produce(self, topic: str, key: bytes | None, value: bytes | None, **kwargs: Any) -> None:
        assert self._producer is not None
        while True:
            try:
                self._producer.produce(topic, value, key, on_delivery=self._on_delivery, **kwargs)
                return
            except BufferError:
                # The local queue is full: let deliveries drain, then try again.
                self.metrics.retries.labels("queue_full").inc()
                self._producer.poll(0.1)
            except KafkaException as exc:
                # The transaction is in its abortable state (a delivery failed or timed
                # out): librdkafka refuses every record until it is aborted.
                error = exc.args[0]
                if error.fatal() and not self._replaceable(error):
                    raise _refused(error) from None
                if error.code() == KafkaError.MSG_SIZE_TOO_LARGE:
                    raise _RecordTooLarge(error) from None
                raise _TransactionFailed(error) from None

    # -- transactions and offsets -----------------------------------------------------------

    def _near_real_time(self, messages: list[Message]) -> bool:
        """Whether the member keeps up with its input: the batch was not full (nothing
        waits in the client), or its newest record is younger than the commit interval
        (a full batch at a steady rate). A backlog of older records is neither."""
        if len(messages) < BATCH_SIZE:
            return True
        newest = _timestamp_ms(messages[-1])
        return newest is None or self._clock() * 1000 - newest < self.settings.commit_interval_ms

    def _commit_due(self) -> bool:
        if not self._pending:
            return False
        # From the end of the last commit: a commit stops the loop for 5-20 ms, and
        # timed from its start, early commits ran back to back at 50 matches a second,
        # the loop fell behind its input and latency swung to the interval (~1 s).
        elapsed_ms = (time.monotonic() - self._last_commit) * 1000
        # Work that leads to an alert (a candidate, an alert) commits early once the
        # member has caught up: matches are rare, so that costs few transactions and takes
        # most of the interval off the alert latency. With a backlog, throughput first.
        if self._urgent and self._caught_up:
            return elapsed_ms >= self.settings.alert_commit_ms
        return elapsed_ms >= self.settings.commit_interval_ms

    def _begin(self) -> None:
        if self.exactly_once:
            assert self._producer is not None
            self._producer.begin_transaction()

    def _commit(self) -> None:
        """Commit everything since the last commit; on a failed transaction, rewind.
        The next commit is due counting from when this one ends."""
        try:
            self._commit_transaction()
        finally:
            self._last_commit = time.monotonic()

    def _commit_transaction(self) -> None:
        assert self._producer is not None and self._consumer is not None
        started = time.perf_counter()
        try:
            self._write_changelog()
            if not self._pending:
                return
            offsets = [TopicPartition(t, p, o) for (t, p), o in self._pending.items()]
            if self.exactly_once:
                # A record of this transaction failed: it can only be aborted, and
                # send_offsets_to_transaction could block past its timeout then
                # (confluentinc/librdkafka#5456), so abort at once.
                self._producer.poll(0)
                if self._delivery_failures:
                    raise KafkaException(
                        KafkaError(KafkaError._STATE, "a record of the transaction failed")
                    )
                self._producer.send_offsets_to_transaction(
                    offsets, self._consumer.consumer_group_metadata(), KAFKA_TIMEOUT
                )
                self._producer.commit_transaction(KAFKA_TIMEOUT)
            else:
                # At-least-once: never commit offsets past a record that was not written.
                remaining = self._producer.flush(KAFKA_TIMEOUT)
                if remaining or self._delivery_failures:
                    raise KafkaException(
                        KafkaError(KafkaError._TIMED_OUT, "records of the batch were not written")
                    )
                self._consumer.commit(offsets=offsets, asynchronous=False)
        except _TransactionFailed as exc:
            self._recover(exc.error)
            return
        except KafkaException as exc:
            self._recover(exc.args[0])
            return
        self.metrics.commit_duration.observe(time.perf_counter() - started)
        self.metrics.transactions.labels("committed").inc()
        self.health.connected = True
        self._replacements = 0
        self._store_committed(offsets)
        self._pending.clear()
        self._start_transaction()

    def _start_transaction(self) -> None:
        """Begin the next transaction with its per-transaction bookkeeping reset."""
        self._delivery_failures = 0
        self._urgent = False
        self._begin()

    def _store_committed(self, offsets: list[TopicPartition]) -> None:
        # Only for librdkafka's lag statistics (consumer_lag_stored): with auto commit off,
        # stored offsets are never committed by the client itself.
        assert self._consumer is not None
        try:
            self._consumer.store_offsets(offsets=offsets)
        except KafkaException as exc:  # a partition revoked meanwhile: its lag goes anyway
            log.debug("store_offsets after commit: %s", exc)

    def _recover(self, error: KafkaError) -> None:
        """The open transaction failed: abort it, redo from committed state, start anew."""
        if error.code() in _FATAL_CODES or (error.fatal() and not self._replaceable(error)):
            raise _refused(error)
        log.warning(
            "commit failed (%s); aborting and rewinding to committed offsets", error.str(),
            extra={"error": error.name()},
        )  # fmt: skip
        self.metrics.transactions.labels("aborted").inc()
        self.metrics.retries.labels("rewind").inc()
        if self.exactly_once:
            self._abort()
        self._rewind()
        self._start_transaction()

    def _abort(self) -> None:
        """Abort the open transaction; retried while the broker is out of reach. A producer
        librdkafka made unusable is replaced instead, which aborts the transaction too."""
        assert self._producer is not None
        # Its records dropped, those in flight too: librdkafka then bumps the producer
        # epoch as it aborts. Without, records a topic refused (too large for it) left
        # gaps in the sequence numbers, the next write after the refusals ended failed
        # with OUT_OF_ORDER_SEQUENCE_NUMBER, and its abort waited out message.timeout.ms
        # (the unwritable scenario recovered in 10.4-11.2 s in 8 runs of 10; 0.2-1.2 s).
        self._producer.purge()
        # A fatal error shows here with its cause; produce() only said _FATAL.
        error = _retried(self._producer.abort_transaction, "abort")
        if error is None:
            return
        if not self._replaceable(error):
            raise _refused(error)
        self._replace_producer(error)

    def _replaceable(self, error: KafkaError) -> bool:
        """Whether a new producer cures this fatal error: under exactly-once, any but a
        refusal. Fenced by a twin, a new producer would fence the twin in turn; refused
        authorization, it would be refused again."""
        return self.exactly_once and error.code() not in _FATAL_CODES

    def _replace_producer(self, error: KafkaError) -> None:
        """Replace a producer librdkafka declared unusable, such as by INVALID_TXN_STATE
        answering an abort after the alerts topic was deleted (confluentinc/librdkafka#4849).

        The new producer has the same transactional id: its init_transactions has the
        coordinator abort the old one's open transaction, as the abort would have."""
        assert self._producer is not None
        self._replacements += 1
        if self._replacements > PRODUCER_REPLACEMENTS:
            raise _refused(
                error, f" (after {PRODUCER_REPLACEMENTS} new producers, no transaction committed)"
            )
        log.error(
            "the producer is unusable (%s); replacing it", error.str(),
            extra={"error": error.name()},
        )  # fmt: skip
        self.metrics.retries.labels("new_producer").inc()
        # Its records purged by the abort, the old producer is destroyed as the last
        # reference to it goes.
        self._producer = self._new_producer()
        failed = _retried(self._producer.init_transactions, "starting the new producer")
        if failed is not None:
            raise _refused(failed)

    def _new_producer(self) -> Producer:
        return clients.make_producer(
            self.settings, error_cb=self._on_error, stats_cb=self.kafka_stats.stats_cb("producer")
        )

    def _rewind(self) -> None:
        assert self._consumer is not None
        self._pending.clear()
        assignment = self._consumer.assignment()
        if not assignment:
            return
        while True:
            try:
                committed = self._consumer.committed(assignment, timeout=KAFKA_TIMEOUT)
                break
            except KafkaException as exc:  # the coordinator out of reach: wait for it
                log.warning("reading committed offsets failed (%s); retrying", exc.args[0].str())
                time.sleep(1.0)
        for tp in committed:
            offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
            self._consumer.seek(TopicPartition(tp.topic, tp.partition, offset))
        for partition in list(self._cores):
            self._cores[partition] = self._restore(partition)

    def _write_changelog(self) -> None:
        for partition, core in self._cores.items():
            for key, value in changelog_messages(core.drain_state_changes()):
                self._produce(self._changelog, key, value, partition=partition)

    # -- rebalances --------------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.metrics.rebalances.labels("assign").inc()
        self.health.restoring = True
        try:
            for tp in partitions:
                if tp.topic == self._matches:
                    self._cores[tp.partition] = self._restore(tp.partition)
        finally:
            self.health.restoring = False
        self._track(partitions, owned=True)
        # Assigned, even if nothing: a member with no partitions has nothing to wait for.
        self.health.assigned = True
        log.info("assigned %s", _names(partitions), extra={"partitions": len(partitions)})

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Commit the work of the partitions being given up while they are still ours.
        if self._producer is not None:
            self._commit()
        self._forget(partitions)
        self.metrics.rebalances.labels("revoke").inc()
        log.info("revoked %s", _names(partitions), extra={"partitions": len(partitions)})

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # No longer ours: the new owner redoes this work, so it must not commit.
        log.warning("lost %s; aborting uncommitted work", _names(partitions))
        self.metrics.rebalances.labels("lost").inc()
        self.health.assigned = False
        if self.exactly_once and self._producer is not None:
            self._abort()
            self.metrics.transactions.labels("aborted").inc()
            self._forget(partitions)
            self._rewind()
            self._start_transaction()
        else:
            self._forget(partitions)

    def _track(self, partitions: list[TopicPartition], *, owned: bool) -> None:
        """Keep the assigned-partitions gauge in step with the assignment."""
        for tp in partitions:
            owned_set = self._assigned.setdefault(tp.topic, set())
            if owned:
                owned_set.add(tp.partition)
            else:
                owned_set.discard(tp.partition)
            self.metrics.assigned_partitions.labels(tp.topic).set(len(owned_set))

    def _forget(self, partitions: list[TopicPartition]) -> None:
        self._track(partitions, owned=False)
        for tp in partitions:
            self._pending.pop((tp.topic, tp.partition), None)
            if tp.topic == self._matches:
                self._cores.pop(tp.partition, None)

    def _restore(self, partition: int) -> AlertingCore:
        started = time.monotonic()
        records = restore_records(
            lambda: Consumer(clients.restore_consumer_config(self.settings)),
            self._changelog,
            partition,
        )
        core = AlertingCore.restore(
            records,
            list(self.rules.values()),
            clock=self._clock,
            space_id=self.settings.space_id,
        )
        seconds = time.monotonic() - started
        self.metrics.restore_duration.observe(seconds)
        log.info(
            "restored window state of %s[%d]: %d record(s) in %.2fs",
            self._matches, partition, len(records), seconds,
            extra={"topic": self._matches, "partition": partition},
        )  # fmt: skip
        return core

    # -- errors and shutdown -----------------------------------------------------------------

    def _on_error(self, error: KafkaError) -> None:
        self.metrics.kafka_errors.labels(error.name()).inc()
        if error.fatal():
            self._fatal = error
            return
        if error.code() == KafkaError._ALL_BROKERS_DOWN:
            self.health.connected = False
        self._incidents.report(
            f"kafka:{error.code()}", logging.WARNING, "kafka: %s", error.str(),
            summary=f"{error.name()} errors", error=error.name(),
        )  # fmt: skip

    def _on_consumer_stats(self, text: str) -> None:
        self.kafka_stats.update("consumer", text)
        if self.kafka_stats.brokers_up("consumer"):
            self.health.connected = True

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        # Purged by an abort: the member redoes the records from committed state.
        if error is not None and error.code() not in _PURGED:
            self._delivery_failures += 1
            self.metrics.delivery_errors.labels(message.topic()).inc()
            self._incidents.report(
                f"delivery:{message.topic()}", logging.ERROR,
                "delivery to %s failed: %s", message.topic(), error.str(),
                summary=f"delivery failures to {message.topic()}",
                topic=message.topic(), error=error.name(),
            )  # fmt: skip

    def _check_fatal(self) -> None:
        if self._fatal is not None:
            raise _refused(self._fatal)

    def _close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
        if self._producer is not None:
            self._producer.flush(KAFKA_TIMEOUT)


_FATAL_CODES = {
    KafkaError._FENCED,
    KafkaError.PRODUCER_FENCED,
    KafkaError.INVALID_PRODUCER_EPOCH,
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.GROUP_AUTHORIZATION_FAILED,
    KafkaError.SASL_AUTHENTICATION_FAILED,
}


_PURGED = {KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT}


def _retried(call: Callable[[float], object], what: str) -> KafkaError | None:
    """Call a transactional API (``call(timeout)``) until it succeeds, retried while
    librdkafka calls its error retriable (the broker out of reach); ``None`` when it
    succeeded, else its fatal error, for the caller to judge. Any other error ends the
    member."""
    while True:
        try:
            call(KAFKA_TIMEOUT)
            return None
        except KafkaException as exc:
            error = exc.args[0]
            if error.fatal():
                return error
            if not error.retriable():
                raise _refused(error) from None
            log.warning("%s failed (%s); retrying", what, error.str())


def _last_of_each(partitions: list[int]) -> dict[int, int]:
    """The index of the last record of each partition in a batch's ``partitions``.

    A batch holds few partitions: found from the end, one C-level search each, rather
    than a dict built over every record."""
    last = len(partitions) - 1
    if partitions.count(partitions[0]) == len(partitions):
        return {partitions[0]: last}
    backwards = partitions[::-1]
    return {partition: last - backwards.index(partition) for partition in set(partitions)}


def _parts(matches: list[Match], size: int) -> list[list[Match]]:
    """``matches`` in order, in runs whose records hold at most ``size`` bytes (a larger
    one alone)."""
    parts: list[list[Match]] = [[]]
    held = 0
    for match in matches:
        length = len(match[1].value or b"")
        if parts[-1] and held + length > size:
            parts.append([])
            held = 0
        parts[-1].append(match)
        held += length
    return parts


def _timestamp_ms(message: Message) -> int | None:
    kind, value = message.timestamp()
    return value if kind != 0 and value >= 0 else None


def _names(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing"
