"""Self-tests of the broker harness: the properties the exactly-once pipeline relies on.

On Apache Kafka: a ``read_committed`` consumer never sees records of an aborted
transaction, and ``send_offsets_to_transaction`` moves the group's committed offsets
together with the transaction's outputs (and not at all when it aborts). On Tansu: a
produce/consume round trip with a consumer group works, and ``EmbeddedBroker`` stops
cleanly and frees its port.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from consumer.brokers import BrokerUnavailable, EmbeddedBroker

pytestmark = pytest.mark.timeout(120)  # a hung broker fails fast; includes broker start-up

TX_TIMEOUT = 30.0


def poll_until(
    consumer: Consumer, done: Callable[[list[str]], bool], timeout: float = 30.0
) -> list[str]:
    """Poll values (decoded) until ``done(values)``; fail on a consumer error or timeout."""
    values: list[str] = []
    deadline = time.monotonic() + timeout
    while not done(values):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s; got {values}")
        msg: Message | None = consumer.poll(0.2)
        if msg is None:
            continue
        if msg.error() is not None:
            if msg.error().code() == KafkaError._PARTITION_EOF:
                continue
            raise KafkaException(msg.error())
        values.append(msg.value().decode())
    return values


def read_from_start(consumer: Consumer, topic: str, last: str) -> list[str]:
    """Everything in partition 0 of ``topic`` up to and including the value ``last``."""
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    return poll_until(consumer, lambda values: last in values)


def committed_offset(admin: AdminClient, group: str, topic: str) -> int:
    """The group's committed offset of partition 0 of ``topic`` (negative when none).

    Asks for stable offsets (KIP-447): while a transaction carrying offsets for the group
    is still being completed, the broker answers UNSTABLE_OFFSET_COMMIT and we ask again,
    so the answer is final (a plain fetch could show the old offset before an abort or
    a commit settles, and prove nothing).
    """
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0)])
    deadline = time.monotonic() + 30
    while True:
        future = admin.list_consumer_group_offsets([request], require_stable=True)[group]
        (tp,) = future.result(timeout=30).topic_partitions
        unstable = tp.error is not None and tp.error.code() == KafkaError.UNSTABLE_OFFSET_COMMIT
        if not unstable or time.monotonic() > deadline:
            assert tp.error is None, tp.error
            return int(tp.offset)
        time.sleep(0.05)


def send(producer: Producer, topic: str, values: list[str]) -> None:
    for value in values:
        producer.produce(topic, value.encode())
    assert producer.flush(10) == 0


# --------------------------------------------------------------------------- Apache Kafka


@pytest.mark.kafka
def test_read_committed_never_sees_aborted_records(
    topic_factory: Callable[..., str],
    producer_factory: Callable[..., Producer],
    consumer_factory: Callable[..., Consumer],
) -> None:
    topic = topic_factory()
    producer = producer_factory({"transactional.id": f"tx-{topic}"})
    producer.init_transactions(TX_TIMEOUT)
    batches = [
        (["c1", "c2", "c3"], producer.commit_transaction),
        (["a1", "a2", "a3", "a4", "a5"], producer.abort_transaction),
        (["c4", "c5"], producer.commit_transaction),
    ]
    for values, finish in batches:
        producer.begin_transaction()
        send(producer, topic, values)  # flushed: the aborted records are really in the log
        finish(TX_TIMEOUT)

    committed = read_from_start(
        consumer_factory(config={"isolation.level": "read_committed"}), topic, "c5"
    )
    everything = read_from_start(
        consumer_factory(config={"isolation.level": "read_uncommitted"}), topic, "c5"
    )

    assert committed == ["c1", "c2", "c3", "c4", "c5"]
    assert everything == ["c1", "c2", "c3", "a1", "a2", "a3", "a4", "a5", "c4", "c5"]


@pytest.mark.kafka
def test_send_offsets_to_transaction_commits_offsets_with_the_outputs(
    topic_factory: Callable[..., str],
    producer_factory: Callable[..., Producer],
    consumer_factory: Callable[..., Consumer],
    admin: AdminClient,
    group_id: str,
) -> None:
    source, sink = topic_factory(), topic_factory()
    send(producer_factory(), source, ["e0", "e1", "e2", "e3"])
    consumer = consumer_factory(group_id, {"isolation.level": "read_committed"})
    consumer.subscribe([source])
    inputs = poll_until(consumer, lambda values: len(values) == 4)
    producer = producer_factory({"transactional.id": f"tx-{group_id}"})
    producer.init_transactions(TX_TIMEOUT)

    def process(finish: Callable[[float], None], tag: str) -> None:
        producer.begin_transaction()
        send(producer, sink, [f"{tag}:{value}" for value in inputs])
        positions = consumer.position(consumer.assignment())
        producer.send_offsets_to_transaction(
            positions, consumer.consumer_group_metadata(), TX_TIMEOUT
        )
        finish(TX_TIMEOUT)

    # A crash before commit: the aborted transaction moves neither outputs nor offsets.
    process(producer.abort_transaction, "aborted")
    assert committed_offset(admin, group_id, source) < 0

    process(producer.commit_transaction, "committed")
    assert committed_offset(admin, group_id, source) == 4
    outputs = read_from_start(
        consumer_factory(config={"isolation.level": "read_committed"}), sink, "committed:e3"
    )
    assert outputs == [f"committed:{value}" for value in inputs]

    # A restarted member of the group resumes after the committed input.
    consumer.close()
    send(producer_factory(), source, ["e4"])
    restarted = consumer_factory(group_id, {"isolation.level": "read_committed"})
    restarted.subscribe([source])
    assert poll_until(restarted, lambda values: "e4" in values) == ["e4"]


# --------------------------------------------------------------------------- Tansu


@pytest.mark.tansu
def test_tansu_round_trip_with_a_consumer_group(
    topic_factory: Callable[..., str],
    producer_factory: Callable[..., Producer],
    consumer_factory: Callable[..., Consumer],
    group_id: str,
) -> None:
    topic = topic_factory(partitions=2)
    producer = producer_factory()
    for i in range(6):
        producer.produce(topic, key=f"k{i}".encode(), value=f"v{i}".encode())
    assert producer.flush(10) == 0
    consumer = consumer_factory(group_id)
    consumer.subscribe([topic])

    values = poll_until(consumer, lambda values: len(values) == 6)
    consumer.commit(asynchronous=False)

    assert sorted(values) == [f"v{i}" for i in range(6)]
    committed = consumer.committed([TopicPartition(topic, p) for p in (0, 1)], timeout=10)
    assert sum(tp.offset for tp in committed) == 6


@pytest.mark.timeout(30)
def test_embedded_broker_stops_cleanly_and_frees_its_port() -> None:
    with EmbeddedBroker() as embedded:
        port, process = embedded.port, embedded._process
        admin = AdminClient({"bootstrap.servers": embedded.bootstrap_servers})
        assert admin.list_topics(timeout=5).brokers
        del admin
    assert process is not None and process.returncode is not None
    assert not embedded.running
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0  # nothing listens any more
    embedded.stop()  # idempotent

    with EmbeddedBroker(port) as again:  # the port can be bound again
        assert again.bootstrap_servers == f"127.0.0.1:{port}"


def test_embedded_broker_names_a_missing_binary(tmp_path: Path) -> None:
    with pytest.raises(BrokerUnavailable, match="not an executable file"):
        EmbeddedBroker(binary=tmp_path / "tansu").start()
