"""One member of the consumer group: events in, alerts out, exactly once.

The member subscribes to the input topics and to the internal matches topic. Per batch:

- an input record is decoded (undecodable: to the dead-letter topic, with its reason),
  matched against every rule, and each match is written to the matches topic keyed by
  rule uuid, so all candidates of a rule meet at the one member owning that partition;
- a matches record goes through that partition's ``AlertingCore`` (restored from the
  changelog when the partition was assigned); its alerts go to the alerts topic keyed by
  alert id, status records to the status topic;
- at the commit interval, the cores' state changes go to the changelog, and under
  exactly-once the consumed offsets and every record written since the last commit
  commit in one Kafka transaction. Under at-least-once the producer is flushed first and
  the offsets committed after; deterministic alert ids keep downstream indexing
  idempotent.

A transaction that fails is aborted and the member rewinds: it seeks every partition to
its committed offset and rebuilds its cores from the changelog, so the aborted work is
redone from the same state. Revoked partitions are committed before they are given up;
lost ones are dropped without commit (another member redoes them).
"""

from __future__ import annotations

import json
import logging
import signal
import time
from collections.abc import Callable, Sequence
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

from consumer.alerting import RULE_STATUS, AlertingCore, Candidate
from consumer.codecs import DecodeError, EventCodec
from consumer.detection import Detector
from consumer.errors import ConsumerError, EventError
from consumer.pipeline import clients
from consumer.pipeline.admin import ensure_topics
from consumer.pipeline.changelog import changelog_messages, restore_records
from consumer.pipeline.records import (
    INVALID_CANDIDATE,
    UNKNOWN_RULE,
    CandidateRecord,
    dead_letter_headers,
    decode_candidate,
    encode_candidate,
)
from consumer.pipeline.startup import wait_for_broker
from consumer.rules import Rule, rule_topics
from consumer.settings import Settings

log = logging.getLogger(__name__)
BATCH_SIZE = 500
POLL_TIMEOUT = 0.1
KAFKA_TIMEOUT = 30.0


class FatalKafkaError(ConsumerError):
    """The broker refused us for good (authentication, authorization, fencing)."""


class Member:
    """A consumer-group member running ``rules`` with ``settings``; ``run`` until stopped."""

    def __init__(
        self,
        settings: Settings,
        rules: Sequence[Rule],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.rules = {rule.uuid: rule for rule in rules}
        self.detector = Detector(rules)
        self.codec: EventCodec = settings.build_codec()
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
        self._last_commit = time.monotonic()
        self._stopping = False
        self._fatal: KafkaError | None = None
        self._delivery_failures = 0
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None

    def stop(self, *_: Any) -> None:
        """Ask the loop to finish its batch, commit and leave (signal-handler safe)."""
        self._stopping = True

    def run(self) -> int:
        """Connect, create missing topics, and process until stopped; returns 0."""
        admin = clients.make_admin(self.settings)
        wait_for_broker(admin, self.settings.startup_timeout_s)
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
        self._producer = clients.make_producer(self.settings, error_cb=self._on_error)
        if self.exactly_once:
            self._producer.init_transactions(KAFKA_TIMEOUT)
        self._consumer = clients.make_consumer(self.settings, error_cb=self._on_error)
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
                self._check_fatal()
                for message in self._consumer.consume(BATCH_SIZE, POLL_TIMEOUT):
                    self._handle(message)
                if self._commit_due():
                    self._commit()
            self._commit()
        finally:
            self._close()
        return 0

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT finish the current batch, commit, leave the group."""
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    # -- records ---------------------------------------------------------------------------

    def _handle(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            if error.fatal():
                self._fatal = error
            elif error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                # A pattern that matches no topic yet: normal until the first event arrives.
                log.debug("consume: %s", error.str())
            elif error.code() != KafkaError._PARTITION_EOF:
                log.warning("consume error: %s", error.str())
            return
        topic = message.topic()
        if topic == self._matches:
            self._on_candidate(message)
        elif topic not in self._outputs:
            self._on_event(message)
        self._pending[(topic, message.partition())] = message.offset() + 1

    def _on_event(self, message: Message) -> None:
        try:
            event = self.codec.decode(message.value())
        except DecodeError as exc:
            self._dead_letter(message, exc.reason, str(exc))
            return
        for rule in self.detector.matching_rules(event):
            record = CandidateRecord(
                rule.uuid,
                event,
                message.topic(),
                message.partition(),
                message.offset(),
                _timestamp_ms(message),
            )
            self._produce(self._matches, rule.uuid.encode(), encode_candidate(record))

    def _on_candidate(self, message: Message) -> None:
        try:
            record = decode_candidate(message.value())
        except EventError as exc:
            self._dead_letter(message, INVALID_CANDIDATE, str(exc))
            return
        rule = self.rules.get(record.rule_uuid)
        if rule is None:
            # Matched under a rule set that no longer has the rule: kept, not alerted.
            self._dead_letter(message, UNKNOWN_RULE, f"rule {record.rule_uuid} is not loaded")
            return
        core = self._cores.get(message.partition())
        if core is None:
            core = self._restore(message.partition())
        candidate = Candidate(
            rule,
            record.event,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            kafka_timestamp_ms=record.timestamp_ms,
        )
        for output in core.process(candidate):
            topic = (
                self.settings.status_topic
                if output.kind == RULE_STATUS
                else self.settings.alerts_topic
            )
            value = json.dumps(output.value, ensure_ascii=False, separators=(",", ":"))
            self._produce(topic, output.key.encode(), value.encode("utf-8"))

    def _dead_letter(self, message: Message, reason: str, error: str) -> None:
        headers = dead_letter_headers(
            message.headers(),
            reason,
            error,
            message.topic(),
            message.partition(),
            message.offset(),
            _timestamp_ms(message),
        )
        self._produce(
            self.settings.dead_letter_topic, message.key(), message.value(), headers=headers
        )

    def _produce(self, topic: str, key: bytes | None, value: bytes | None, **kwargs: Any) -> None:
        assert self._producer is not None
        while True:
            try:
                self._producer.produce(topic, value, key, on_delivery=self._on_delivery, **kwargs)
                return
            except BufferError:
                # The local queue is full: let deliveries drain, then try again.
                self._producer.poll(0.1)

    # -- transactions and offsets -----------------------------------------------------------

    def _commit_due(self) -> bool:
        elapsed_ms = (time.monotonic() - self._last_commit) * 1000
        return bool(self._pending) and elapsed_ms >= self.settings.commit_interval_ms

    def _begin(self) -> None:
        if self.exactly_once:
            assert self._producer is not None
            self._producer.begin_transaction()

    def _commit(self) -> None:
        """Commit everything since the last commit; on a failed transaction, rewind."""
        assert self._producer is not None and self._consumer is not None
        self._last_commit = time.monotonic()
        self._write_changelog()
        if not self._pending:
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in self._pending.items()]
        try:
            if self.exactly_once:
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
        except KafkaException as exc:
            self._recover(exc.args[0])
        else:
            self._pending.clear()
        self._delivery_failures = 0
        self._begin()

    def _recover(self, error: KafkaError) -> None:
        """A commit failed: abort what can be aborted, then redo from committed state."""
        if error.fatal() or error.code() in _FATAL_CODES:
            raise FatalKafkaError(f"Kafka refused the member: {error.str()}")
        log.warning("commit failed (%s); aborting and rewinding to committed offsets", error.str())
        if self.exactly_once:
            assert self._producer is not None
            self._producer.abort_transaction(KAFKA_TIMEOUT)
        self._rewind()

    def _rewind(self) -> None:
        assert self._consumer is not None
        self._pending.clear()
        assignment = self._consumer.assignment()
        if not assignment:
            return
        committed = self._consumer.committed(assignment, timeout=KAFKA_TIMEOUT)
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
        for tp in partitions:
            if tp.topic == self._matches:
                self._cores[tp.partition] = self._restore(tp.partition)
        log.info("assigned %s", _names(partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Commit the work of the partitions being given up while they are still ours.
        if self._producer is not None:
            self._commit()
        self._forget(partitions)
        log.info("revoked %s", _names(partitions))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # No longer ours: the new owner redoes this work, so it must not commit.
        log.warning("lost %s; aborting uncommitted work", _names(partitions))
        if self.exactly_once and self._producer is not None:
            self._producer.abort_transaction(KAFKA_TIMEOUT)
            self._forget(partitions)
            self._rewind()
            self._begin()
        else:
            self._forget(partitions)

    def _forget(self, partitions: list[TopicPartition]) -> None:
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
        log.info(
            "restored window state of %s[%d]: %d record(s) in %.2fs",
            self._matches,
            partition,
            len(records),
            time.monotonic() - started,
        )
        return core

    # -- errors and shutdown -----------------------------------------------------------------

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal():
            self._fatal = error
        else:
            log.warning("kafka: %s", error.str())

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._delivery_failures += 1
            if self._delivery_failures == 1:
                log.error("delivery to %s failed: %s", message.topic(), error.str())

    def _check_fatal(self) -> None:
        if self._fatal is not None:
            raise FatalKafkaError(f"Kafka refused the member: {self._fatal.str()}")

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


def _timestamp_ms(message: Message) -> int | None:
    kind, value = message.timestamp()
    return value if kind != 0 and value >= 0 else None


def _names(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing"
