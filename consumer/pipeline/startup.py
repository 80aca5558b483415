"""Start-up: wait for the brokers with backoff, within a budget, then fail clearly."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from tenacity import (
    RetryError,
    Retrying,
    before_sleep_log,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from consumer.settings import SettingsError

log = logging.getLogger(__name__)


def wait_for_broker(admin: AdminClient, budget_s: float) -> None:
    """Return once the cluster answers a metadata request; ``SettingsError`` after ``budget_s``.

    The error names the bootstrap setting: at start-up an unreachable cluster is almost
    always a wrong address or a missing network path, not a passing fault.
    """

    def ask() -> None:
        metadata = admin.list_topics(timeout=min(5.0, budget_s))
        if not metadata.brokers:
            raise KafkaException("no broker in the metadata answer")

    retrying = Retrying(
        stop=stop_after_delay(budget_s),
        wait=wait_exponential(multiplier=0.2, max=5.0),
        retry=retry_if_exception_type(KafkaException),
        before_sleep=before_sleep_log(log, logging.WARNING),
        reraise=False,
    )
    try:
        retrying(ask)
    except RetryError as exc:
        cause = exc.last_attempt.exception()
        raise SettingsError(
            "bootstrap_servers",
            "--bootstrap-servers",
            "KAFKA_BOOTSTRAP_SERVERS",
            f"no Kafka broker answered within {budget_s:g}s ({cause})",
        ) from None
