"""Window state in Kafka: write state changes to, and restore them from, the changelog.

Changelog partition ``p`` holds the state of matches partition ``p`` as compacted,
last-write-wins records (``None`` values are tombstones). A member restores a partition
when it is assigned, before processing any of its candidates, by reading the partition
from the beginning up to its end. Records of a transaction still open are not visible
to a ``read_committed`` reader, so the restore waits until the end is reachable: until the
previous owner's transaction committed or aborted (a restarted member aborts its own at
once; a dead one's times out after ``transaction.timeout.ms``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

from consumer.alerting import StateRecord
from consumer.errors import ConsumerError

RESTORE_BATCH = 1000


class RestoreError(ConsumerError):
    """The changelog could not be read to its end in time."""


def restore_records(
    make_consumer: Callable[[], Consumer],
    topic: str,
    partition: int,
    *,
    timeout: float = 60.0,
) -> list[StateRecord]:
    """Every record of changelog partition ``partition``, oldest first, last write winning."""
    consumer = make_consumer()
    deadline = time.monotonic() + timeout  # for the watermarks and the reading together
    try:
        # Watermarks first, then assign at the low one: assigned at OFFSET_BEGINNING
        # before its leader was known, the client waited out a 500 ms retry timer to
        # look the offset up, for every partition restored.
        low, high = _watermarks(consumer, topic, partition, timeout)
        if high <= low:
            return []
        consumer.assign([TopicPartition(topic, partition, low)])
        latest: dict[str, bytes | None] = {}
        while _position(consumer, topic, partition) < high:
            if time.monotonic() > deadline:
                raise RestoreError(
                    f"changelog {topic}[{partition}] not readable to offset {high} within "
                    f"{timeout:.0f}s (an open transaction of a previous owner?)"
                )
            for message in consumer.consume(RESTORE_BATCH, timeout=0.2):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise RestoreError(f"reading {topic}[{partition}]: {error.str()}")
                key = message.key()
                if key is not None:
                    latest[key.decode("utf-8")] = message.value()
        return [StateRecord(key, value) for key, value in latest.items()]
    finally:
        consumer.close()


def _watermarks(consumer: Consumer, topic: str, partition: int, timeout: float) -> tuple[int, int]:
    """The partition's (low, high) offsets, asked again while the broker answers with a
    retriable error: a changelog topic created a moment ago has no leader yet
    (NOT_LEADER_FOR_PARTITION, LEADER_NOT_AVAILABLE), which must not end the member."""
    retrying = Retrying(
        retry=retry_if_exception(_retriable),
        stop=stop_after_delay(timeout),
        wait=wait_exponential(multiplier=0.05, max=1.0),
        reraise=True,
    )
    for attempt in retrying:
        with attempt:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=min(10.0, timeout)
            )
    return low, high


# What a partition's leader answers, or its absence means, while a topic is being made.
_NOT_YET = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._TIMED_OUT,
}


def _retriable(exc: BaseException) -> bool:
    if not isinstance(exc, KafkaException):
        return False
    error = exc.args[0]
    return error.retriable() or error.code() in _NOT_YET


def _position(consumer: Consumer, topic: str, partition: int) -> int:
    [tp] = consumer.position([TopicPartition(topic, partition)])
    # Before the first fetch the position is a logical offset (negative): nothing read yet.
    return max(tp.offset, 0)


def changelog_messages(records: Iterable[StateRecord]) -> Iterable[tuple[bytes, bytes | None]]:
    """Kafka (key, value) pairs for state records."""
    for record in records:
        yield record.key.encode("utf-8"), record.value
