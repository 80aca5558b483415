"""Restoring a changelog partition outlives a topic that has no leader yet.

A member that created the changelog topic a moment before asks its partitions'
watermarks while the broker is still electing leaders; it answered
NOT_LEADER_FOR_PARTITION in CI, and the member exited 1. The retry policy is ours, so a
stand-in for the client's two calls is enough here; the pipeline tests restore from a
real broker.
"""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from consumer.pipeline.changelog import restore_records


class _Changelog:
    """A consumer whose watermark lookup fails with ``errors`` first, then answers."""

    def __init__(self, *errors: int) -> None:
        self.errors = list(errors)
        self.asked = 0
        self.closed = False

    def get_watermark_offsets(self, _tp: Any, timeout: float) -> tuple[int, int]:
        self.asked += 1
        if self.errors:
            raise KafkaException(KafkaError(self.errors.pop(0)))
        return 0, 0

    def close(self) -> None:
        self.closed = True


def test_a_partition_without_a_leader_yet_is_asked_again() -> None:
    changelog = _Changelog(KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE)
    assert restore_records(lambda: changelog, "changelog", 0) == []  # type: ignore[arg-type,return-value]
    assert changelog.asked == 3
    assert changelog.closed


def test_a_refusal_is_not_retried() -> None:
    changelog = _Changelog(KafkaError.TOPIC_AUTHORIZATION_FAILED)
    with pytest.raises(KafkaException):
        restore_records(lambda: changelog, "changelog", 0)  # type: ignore[arg-type,return-value]
    assert changelog.asked == 1
    assert changelog.closed


def test_a_leader_that_never_comes_fails_after_the_restore_timeout() -> None:
    changelog = _Changelog(*[KafkaError.NOT_LEADER_FOR_PARTITION] * 1000)
    with pytest.raises(KafkaException):
        restore_records(lambda: changelog, "changelog", 0, timeout=0.3)  # type: ignore[arg-type,return-value]
    assert 1 < changelog.asked < 1000
