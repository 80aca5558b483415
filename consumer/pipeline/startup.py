"""Start-up: wait for the brokers with backoff, within a budget, then fail clearly.

Most start-up failures pass (a broker still starting, a network blip) and are retried.
The brokers refusing us (wrong credentials, a certificate we do not trust) will not
pass: they end the wait at once with the broker's own words, not a timeout.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from tenacity import (
    RetryError,
    Retrying,
    before_sleep_log,
    retry_if_exception_type,
    stop_after_delay,
    stop_any,
    wait_exponential,
)

from consumer.errors import ConsumerError
from consumer.settings import SettingsError

log = logging.getLogger(__name__)


_REFUSALS = {KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED, KafkaError._SSL}


class BrokerRefused(ConsumerError):
    """The brokers refused this client (credentials, TLS trust): retrying will not help."""


class ClientErrors:
    """An ``error_cb`` for a client: keeps the last refusal librdkafka reported."""

    def __init__(self) -> None:
        self.refusal: KafkaError | None = None

    def __call__(self, error: KafkaError) -> None:
        if error.code() in _REFUSALS:
            self.refusal = error


def wait_for_broker(
    admin: AdminClient,
    budget_s: float,
    errors: ClientErrors,
    stopping: Callable[[], bool] = lambda: False,
) -> bool:
    """Return True once the cluster answers a metadata request, False if ``stopping()``
    turned true first (a SIGTERM while the brokers are away: leave, do not wait on).

    ``errors`` is the admin client's ``error_cb``. A refusal raises ``BrokerRefused`` at
    once; anything else is retried for ``budget_s`` and then raises ``SettingsError``
    naming the bootstrap setting: at start-up an unreachable cluster is almost always a
    wrong address or a missing network path, not a passing fault.
    """

    def ask() -> None:
        if errors.refusal is not None:
            raise BrokerRefused(
                f"the brokers refused this client: {errors.refusal.str()} (check the "
                "KAFKA_CONFIG_SASL_* credentials and KAFKA_CONFIG_SSL_* trust settings)"
            )
        try:
            metadata = admin.list_topics(timeout=min(5.0, budget_s))
        except KafkaException:
            admin.poll(0.1)  # error_cb runs only from poll()
            if errors.refusal is not None:
                ask()
            raise
        if not metadata.brokers:
            raise KafkaException("no broker in the metadata answer")

    retrying = Retrying(
        stop=stop_any(stop_after_delay(budget_s), lambda _state: stopping()),
        wait=wait_exponential(multiplier=0.2, max=5.0),
        retry=retry_if_exception_type(KafkaException),
        before_sleep=before_sleep_log(log, logging.WARNING),
        reraise=False,
    )
    try:
        retrying(ask)
    except RetryError as exc:
        if stopping():
            return False
        cause = exc.last_attempt.exception()
        raise SettingsError(
            "bootstrap_servers",
            "--bootstrap-servers",
            "KAFKA_BOOTSTRAP_SERVERS",
            f"no Kafka broker answered within {budget_s:g}s ({cause})",
        ) from None
    return True
