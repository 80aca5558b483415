"""A producer librdkafka declares unusable: replaced unless it was refused (fencing).

librdkafka raises these from a real broker only by races (an abort answered with
INVALID_TXN_STATE after the alerts topic was deleted, confluentinc/librdkafka#4849), so the
member's decision is checked here on the recording producer, and the replacement itself on
Apache Kafka by ``test_a_producer_found_unusable_at_an_abort_is_replaced_nothing_lost_or_twice``
(tests/integration/test_faults.py), which injects the fault.
"""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from consumer.pipeline import FatalKafkaError
from consumer.pipeline import member as member_module
from consumer.pipeline.member import PRODUCER_REPLACEMENTS

from ..observability.member_harness import Harness, RecordingProducer, attacks, seed_rule

# What produce() raises once librdkafka made the producer unusable: no cause given.
UNUSABLE = KafkaError(KafkaError._FATAL, "Unable to produce message: Local: Fatal error")
INVALID_TXN_STATE = KafkaError(
    KafkaError.INVALID_TXN_STATE, "Failed to end transaction", fatal=True
)
FENCED = KafkaError(KafkaError._FENCED, "fenced by a newer producer instance", fatal=True)


class TransactionalProducer(RecordingProducer):
    """Records the transactional calls; its abort answers with ``abort_error`` if set."""

    def __init__(self, abort_error: KafkaError | None = None) -> None:
        super().__init__()
        self.abort_error = abort_error
        self.calls: list[str] = []

    def init_transactions(self, _timeout: float) -> None:
        self.calls.append("init")

    def begin_transaction(self) -> None:
        self.calls.append("begin")

    def abort_transaction(self, _timeout: float) -> None:
        self.calls.append("abort")
        if self.abort_error is not None:
            raise KafkaException(self.abort_error)

    def purge(self) -> None:
        self.calls.append("purge")


class Unassigned:
    def assignment(self) -> list[Any]:
        return []


def _member(
    monkeypatch: pytest.MonkeyPatch, abort_error: KafkaError, **settings: Any
) -> tuple[Harness, list[TransactionalProducer]]:
    harness = Harness(seed_rule(), **settings)
    unusable = TransactionalProducer(abort_error)
    harness.member._producer = unusable  # type: ignore[assignment]
    harness.member._consumer = Unassigned()  # type: ignore[assignment]
    made = [unusable]

    def make_producer(*_: Any, **__: Any) -> TransactionalProducer:
        made.append(TransactionalProducer())
        return made[-1]

    monkeypatch.setattr(member_module.clients, "make_producer", make_producer)
    return harness, made


def test_an_unusable_producer_is_replaced_and_the_member_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    harness, made = _member(monkeypatch, INVALID_TXN_STATE)
    harness.member._recover(UNUSABLE)
    old, new = made
    assert old.calls == ["purge", "abort"]
    # The new producer's init has the coordinator abort the old one's transaction.
    assert new.calls == ["init", "begin"]
    assert harness.member._producer is new
    assert harness.value("detection_consumer_retries_total", reason="new_producer") == 1
    harness.producer = new
    harness.feed(attacks(1))
    assert len(harness.candidates()) == 1


def test_a_fenced_producer_is_not_replaced_the_member_exits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A new producer would fence the twin that fenced this one, and so on.
    harness, made = _member(monkeypatch, FENCED)
    with pytest.raises(FatalKafkaError, match="fenced"):
        harness.member._recover(UNUSABLE)
    assert len(made) == 1
    with pytest.raises(FatalKafkaError, match="fenced"):
        harness.member._recover(FENCED)


def test_at_least_once_has_no_transaction_to_hand_over_and_exits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    harness, made = _member(monkeypatch, INVALID_TXN_STATE, guarantee="at-least-once")
    with pytest.raises(FatalKafkaError, match="Failed to end transaction"):
        harness.member._recover(INVALID_TXN_STATE)
    assert len(made) == 1


def test_producers_failing_in_a_row_without_a_commit_end_in_an_exit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    harness, made = _member(monkeypatch, INVALID_TXN_STATE)
    for _ in range(PRODUCER_REPLACEMENTS):
        harness.member._recover(UNUSABLE)
        made[-1].abort_error = INVALID_TXN_STATE
    with pytest.raises(FatalKafkaError, match="new producers"):
        harness.member._recover(UNUSABLE)
    assert len(made) == 1 + PRODUCER_REPLACEMENTS
