"""Observability: Prometheus metrics, health endpoints and structured logs.

Every component takes the ``CollectorRegistry`` it registers on (tests make their own);
the CLI builds one registry per process and serves it with ``/healthz`` and ``/readyz``.
"""

from consumer.observability.health import Health
from consumer.observability.kafka_stats import KafkaStatsCollector
from consumer.observability.logs import Incidents, configure_logging
from consumer.observability.metrics import PREFIX, BatchTally, Metrics
from consumer.observability.server import ObservabilityServer

__all__ = [
    "PREFIX",
    "BatchTally",
    "Health",
    "Incidents",
    "KafkaStatsCollector",
    "Metrics",
    "ObservabilityServer",
    "configure_logging",
]
