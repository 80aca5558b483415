"""Create the topics the pipeline writes to, when they are missing.

The matches and changelog topics are internal and co-partitioned: changelog partition
``p`` holds the window state of the rules whose candidates land in matches partition
``p``, so both are created with the same partition count, the changelog compacted.
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from consumer.errors import ConsumerError

log = logging.getLogger(__name__)
INTERNAL_PARTITIONS = 4
# -1: the broker's default.replication.factor, so one setting serves a laptop and a cluster.
BROKER_DEFAULT_REPLICATION = -1


class TopicSetupError(ConsumerError):
    """A topic the pipeline needs is missing and cannot be created (fatal)."""


def ensure_topics(
    admin: AdminClient,
    *,
    outputs: list[str],
    matches: str,
    changelog: str,
    timeout: float = 30.0,
) -> int:
    """Create missing topics; returns the matches topic's partition count.

    An existing matches/changelog pair with different partition counts is refused: the
    state of a partition would be read from the wrong changelog partition.
    """
    existing = admin.list_topics(timeout=timeout).topics
    wanted = [
        NewTopic(name, num_partitions=1, replication_factor=BROKER_DEFAULT_REPLICATION)
        for name in outputs
    ]
    wanted.append(
        NewTopic(matches, INTERNAL_PARTITIONS, replication_factor=BROKER_DEFAULT_REPLICATION)
    )
    wanted.append(
        NewTopic(
            changelog,
            INTERNAL_PARTITIONS,
            replication_factor=BROKER_DEFAULT_REPLICATION,
            config={"cleanup.policy": "compact"},
        )
    )
    missing = [t for t in wanted if t.topic not in existing]
    if missing:
        _create(admin, missing, timeout)
        existing = _wait_visible(admin, [t.topic for t in missing], timeout)
    counts = {name: len(existing[name].partitions) for name in (matches, changelog)}
    if counts[matches] != counts[changelog]:
        raise TopicSetupError(
            f"{matches} has {counts[matches]} partitions but {changelog} has "
            f"{counts[changelog]}; they must match (state is kept per matches partition)"
        )
    return counts[matches]


def _wait_visible(admin: AdminClient, names: list[str], timeout: float) -> dict:
    """Metadata listing ``names``: a created topic reaches every broker's metadata later."""
    deadline = time.monotonic() + timeout
    while True:
        topics = admin.list_topics(timeout=timeout).topics
        if all(name in topics and not topics[name].error for name in names):
            return topics
        if time.monotonic() > deadline:
            absent = [name for name in names if name not in topics]
            raise TopicSetupError(f"created topics not visible after {timeout:.0f}s: {absent}")
        time.sleep(0.1)


def _create(admin: AdminClient, topics: list[NewTopic], timeout: float) -> None:
    futures = admin.create_topics(topics, operation_timeout=timeout, request_timeout=timeout)
    for name, future in futures.items():
        try:
            future.result()
            log.info("created topic %s", name)
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            if error.code() in (
                KafkaError.TOPIC_AUTHORIZATION_FAILED,
                KafkaError.CLUSTER_AUTHORIZATION_FAILED,
            ):
                raise TopicSetupError(
                    f"topic {name} is missing and this principal may not create it: "
                    f"create it (see README) or grant CreateTopics"
                ) from None
            raise TopicSetupError(f"cannot create topic {name}: {error.str()}") from None
