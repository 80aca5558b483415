"""Kafka clients with our defaults in one visible place; user settings win over them.

No network in here: these functions only build configuration dicts and client objects
(librdkafka connects lazily). Settings a guarantee depends on (isolation level, manual
commits, transactional id) are ours and cannot be overridden by pass-through settings.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from consumer.settings import Settings

CONSUMER_DEFAULTS: dict[str, Any] = {
    "auto.offset.reset": "earliest",
    # Incremental rebalances: a member joining or leaving moves only the partitions it must.
    "partition.assignment.strategy": "cooperative-sticky",
    "session.timeout.ms": 10_000,
    "heartbeat.interval.ms": 2_000,
    "max.poll.interval.ms": 300_000,
    "fetch.wait.max.ms": 50,
    # librdkafka waits this long before fetching again for a partition whose local
    # queue was full; its default (1000 ms) left the decode path idle half the time.
    "fetch.queue.backoff.ms": 5,
    # Records fetched ahead, per partition; librdkafka's default (64 MB) was half the
    # member's memory (peak RSS 171-212 MiB on the bench, 94-124 with 16 MB) and made
    # it depend on how far ahead the fetcher got. Same throughput with 16 MB.
    "queued.max.messages.kbytes": 16_384,
    # librdkafka statistics feed the lag and broker metrics (KafkaStatsCollector); one
    # document per scrape interval is enough, and parsing it costs the loop nothing else.
    "statistics.interval.ms": 15_000,
    # Pattern subscriptions see new topics only on a metadata refresh (librdkafka's
    # default is 5 minutes): a new data stream's topic should be read within seconds.
    "topic.metadata.refresh.interval.ms": 10_000,
}
PRODUCER_DEFAULTS: dict[str, Any] = {
    "linger.ms": 5,
    "compression.type": "lz4",
    "enable.idempotence": True,
    "acks": "all",
    # A crashed member's open transaction blocks read_committed readers until it times
    # out or the member restarts with the same instance id; keep the wait short.
    "transaction.timeout.ms": 30_000,
    # Right after a commit the coordinator answers the next transaction's first request
    # with CONCURRENT_TRANSACTIONS until its commit markers are written (a few ms here);
    # librdkafka retries after this backoff, whose default (100 ms) then blocked every
    # commit for 100 ms. Backoff still doubles per retry, up to retry.backoff.max.ms.
    "retry.backoff.ms": 10,
    "statistics.interval.ms": 15_000,
}
# Whatever the user passes, these hold: the guarantees are built on them.
CONSUMER_FIXED: dict[str, Any] = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "isolation.level": "read_committed",
}


# Pass-through settings reach every client; these name-prefixes belong to one kind only,
# and librdkafka warns about (and ignores) the other kind's properties.
_CONSUMER_ONLY = (
    "session.timeout.ms", "heartbeat.interval.ms", "max.poll.interval.ms", "group.",
    "auto.offset.reset", "auto.commit", "enable.auto.", "fetch.", "isolation.level",
    "partition.assignment.strategy", "check.crcs", "queued.", "coordinator.",
    "enable.partition.eof", "allow.auto.create.topics",
)  # fmt: skip
_PRODUCER_ONLY = (
    "transaction", "linger.ms", "queue.buffering.", "batch.", "acks", "request.required.acks",
    "compression.", "enable.idempotence", "message.timeout.ms", "delivery.timeout.ms",
    "retries", "message.send.max.retries", "retry.backoff", "sticky.partitioning",
    "partitioner", "enable.gapless.guarantee", "request.timeout.ms",
)  # fmt: skip


def _user_config(settings: Settings, exclude: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in settings.librdkafka_config().items() if not k.startswith(exclude)}


def consumer_config(settings: Settings) -> dict[str, Any]:
    """The group member's consumer configuration."""
    return {
        **CONSUMER_DEFAULTS,
        **_user_config(settings, _PRODUCER_ONLY),
        **CONSUMER_FIXED,
        "group.id": settings.group_id,
    }


def producer_config(settings: Settings) -> dict[str, Any]:
    """The producer configuration; transactional under exactly-once."""
    config = {
        **PRODUCER_DEFAULTS,
        **_user_config(settings, _CONSUMER_ONLY),
        "enable.idempotence": True,
    }
    if settings.guarantee == "exactly-once":
        config["transactional.id"] = transactional_id(settings)
    return config


def transactional_id(settings: Settings) -> str:
    """Stable per member: a restarted member fences its previous self and its open work."""
    return f"{settings.group_id}-{settings.instance_id}"


def restore_consumer_config(settings: Settings) -> dict[str, Any]:
    """A group-less reader of the changelog, for restoring window state."""
    return {
        **_user_config(settings, _PRODUCER_ONLY),
        "group.id": f"{settings.group_id}-restore",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 10,
    }


def make_consumer(settings: Settings, **callbacks: Any) -> Consumer:
    """The group member's consumer (``callbacks`` are librdkafka callbacks such as error_cb)."""
    return Consumer({**consumer_config(settings), **callbacks})


def make_producer(settings: Settings, **callbacks: Any) -> Producer:
    """The member's producer."""
    return Producer({**producer_config(settings), **callbacks})


def make_admin(settings: Settings, **callbacks: Any) -> AdminClient:
    """An admin client for creating the topics the pipeline writes to."""
    return AdminClient({**_user_config(settings, _CONSUMER_ONLY + _PRODUCER_ONLY), **callbacks})
