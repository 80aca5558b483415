"""Real brokers for integration tests, one of each per session, started on first use.

Brokers (session fixtures; each starts only if a collected test needs it):

- ``kafka_bootstrap``: Apache Kafka, one KRaft node on a free loopback port with storage
  in a temporary directory (``consumer.brokers.KafkaNode``), or the external broker in
  ``KAFKA_BOOTSTRAP_SERVERS`` when that is set. The reference for transactions and
  ``read_committed``.
- ``tansu_bootstrap``: Tansu with memory storage (``consumer.brokers.EmbeddedBroker``),
  starts in milliseconds; it does not filter aborted transactions.

Per test: ``broker`` is Apache Kafka, or Tansu for a test marked ``@pytest.mark.tansu``;
``topic_factory(partitions=1, config=None)`` creates a fresh topic on it and waits until
every partition has a leader; ``group_id`` / ``group_id_factory()`` give fresh consumer
group ids; ``producer_factory`` / ``consumer_factory`` build clients for the test's broker
and flush (producers) or close (consumers) them afterwards.

Markers: ``kafka`` (added to every test here that runs on Apache Kafka, so
``-m "not kafka"`` runs without a JDK) and ``tansu``. A broker that cannot start makes
the tests that need it fail when ``CI`` is true, and skip with the reason otherwise.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from consumer.brokers import (
    BrokerUnavailable,
    EmbeddedBroker,
    KafkaNode,
    wait_for_metadata,
)

# Quick first group join (the design's note on Tansu; harmless on Kafka).
CONSUMER_DEFAULTS: Mapping[str, Any] = {
    "auto.offset.reset": "earliest",
    "enable.auto.commit": False,
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 500,
}
TOPIC_READY_TIMEOUT = 30.0


@dataclass(frozen=True)
class Broker:
    """The broker a test runs against."""

    bootstrap_servers: str
    kind: str  # "kafka" (started here), "external" (KAFKA_BOOTSTRAP_SERVERS) or "tansu"

    def config(self, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Client config for this broker, with ``extra`` laid over it."""
        return {"bootstrap.servers": self.bootstrap_servers, **(extra or {})}


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def broker_unavailable(reason: str) -> NoReturn:
    """Fail under CI (a missing broker is a broken build), skip elsewhere."""
    if _in_ci():
        pytest.fail(f"broker unavailable (CI=true, so this fails): {reason}", pytrace=False)
    pytest.skip(f"broker unavailable: {reason}")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "kafka: needs Apache Kafka semantics (transactions, read_committed); runs on the"
        " Apache Kafka node or on KAFKA_BOOTSTRAP_SERVERS",
    )
    config.addinivalue_line(
        "markers", "tansu: runs on the embedded Tansu broker (fast; no abort filtering)"
    )


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here not in Path(str(item.path)).parents:
            continue
        names = getattr(item, "fixturenames", ())
        tansu = item.get_closest_marker("tansu") is not None
        if "kafka_bootstrap" in names or ("broker" in names and not tansu):
            item.add_marker(pytest.mark.kafka)


# --------------------------------------------------------------------------- brokers


def _start(start: Callable[[], object], what: str) -> None:
    """Run ``start``; on ``BrokerUnavailable`` fail (CI) or skip the tests that need it."""
    try:
        start()
    except BrokerUnavailable as exc:
        problem = f"{what}: {exc}"
    else:
        return
    broker_unavailable(problem)  # outside the except: no chained traceback in the report


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if external:
        _start(lambda: wait_for_metadata(external, 15.0), f"KAFKA_BOOTSTRAP_SERVERS={external}")
        yield Broker(external, "external")
        return
    node = KafkaNode(tmp_path_factory.mktemp("kafka"))
    _start(node.start, "the Apache Kafka node did not start")
    try:
        yield Broker(node.bootstrap_servers, "kafka")
    finally:
        node.stop()


@pytest.fixture(scope="session")
def tansu_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    embedded = EmbeddedBroker(log_path=tmp_path_factory.mktemp("tansu") / "tansu.log")
    _start(embedded.start, "Tansu did not start")
    try:
        yield Broker(embedded.bootstrap_servers, "tansu")
    finally:
        embedded.stop()


@pytest.fixture
def broker(request: pytest.FixtureRequest) -> Broker:
    """Apache Kafka (or KAFKA_BOOTSTRAP_SERVERS); Tansu for tests marked ``tansu``."""
    if request.node.get_closest_marker("tansu") is not None:
        return request.getfixturevalue("tansu_bootstrap")
    return request.getfixturevalue("kafka_bootstrap")


# --------------------------------------------------------------------------- factories


def _fresh_name(request: pytest.FixtureRequest, prefix: str) -> str:
    test = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name)[:60].strip("-")
    return f"{prefix}-{test}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def admin(broker: Broker) -> AdminClient:
    return AdminClient(broker.config())


def wait_for_topic(admin: AdminClient, topic: str, partitions: int, timeout: float) -> None:
    """Block until metadata shows ``topic`` with ``partitions`` partitions, each led."""
    deadline = time.monotonic() + timeout
    while True:
        found = admin.list_topics(topic=topic, timeout=5).topics.get(topic)
        if (
            found is not None
            and found.error is None
            and len(found.partitions) == partitions
            and all(p.leader >= 0 and p.error is None for p in found.partitions.values())
        ):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topic {topic} not ready after {timeout}s: {found}")
        time.sleep(0.05)


@pytest.fixture
def topic_factory(
    request: pytest.FixtureRequest, broker: Broker, admin: AdminClient
) -> Iterator[Callable[..., str]]:
    """``make(partitions=1, config=None, name=None) -> str``: a fresh, ready topic."""
    created: list[str] = []

    def make(
        partitions: int = 1, config: Mapping[str, str] | None = None, name: str | None = None
    ) -> str:
        topic = name or _fresh_name(request, "t")
        new = NewTopic(
            topic, num_partitions=partitions, replication_factor=1, config=dict(config or {})
        )
        admin.create_topics([new], operation_timeout=TOPIC_READY_TIMEOUT)[topic].result(
            timeout=TOPIC_READY_TIMEOUT
        )
        created.append(topic)
        wait_for_topic(admin, topic, partitions, TOPIC_READY_TIMEOUT)
        return topic

    yield make
    if created and broker.kind == "external":  # our own brokers are thrown away whole
        for future in admin.delete_topics(created, operation_timeout=10).values():
            with contextlib.suppress(KafkaException):
                future.result(timeout=15)


@pytest.fixture
def group_id_factory(request: pytest.FixtureRequest) -> Callable[[], str]:
    return lambda: _fresh_name(request, "g")


@pytest.fixture
def group_id(group_id_factory: Callable[[], str]) -> str:
    return group_id_factory()


@pytest.fixture
def producer_factory(broker: Broker) -> Iterator[Callable[..., Producer]]:
    """``make(config=None) -> Producer`` for the test's broker; flushed at teardown."""
    made: list[Producer] = []

    def make(config: Mapping[str, Any] | None = None) -> Producer:
        producer = Producer(broker.config(config))
        made.append(producer)
        return producer

    yield make
    for producer in made:
        producer.flush(5)


@pytest.fixture
def consumer_factory(
    broker: Broker, group_id_factory: Callable[[], str]
) -> Iterator[Callable[..., Consumer]]:
    """``make(group_id=None, config=None) -> Consumer`` with test-friendly defaults
    (earliest, no auto commit, short session) under ``config``; closed at teardown."""
    made: list[Consumer] = []

    def make(group_id: str | None = None, config: Mapping[str, Any] | None = None) -> Consumer:
        settings = {"group.id": group_id or group_id_factory(), **CONSUMER_DEFAULTS}
        consumer = Consumer(broker.config(settings | dict(config or {})))
        made.append(consumer)
        return consumer

    yield make
    for consumer in made:
        with contextlib.suppress(RuntimeError):  # already closed by the test
            consumer.close()
