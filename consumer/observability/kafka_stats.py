"""librdkafka statistics (``stats_cb``) turned into metrics when Prometheus scrapes.

librdkafka emits a JSON document every ``statistics.interval.ms`` from ``poll()`` /
``consume()`` on the loop thread. ``update`` keeps the newest parsed document per
client; ``collect`` builds metric families from it at scrape time, so nothing is
mutated per interval and a partition that is no longer assigned disappears with the
next document instead of lingering as a stale series.

Lag (see librdkafka STATISTICS.md): per assigned partition, ``consumer_lag_stored`` is
the end of the partition (the last stable offset under ``read_committed``) minus the
offset the member stored. The member stores the offsets it committed after every
successful commit (a transaction's offsets never reach the consumer's own bookkeeping
otherwise), so this is the committed lag. It is -1 until a first commit: such
partitions are left out, not reported as 0. Partition -1 is librdkafka's placeholder
for unassigned messages and is skipped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from consumer.observability.metrics import PREFIX

log = logging.getLogger(__name__)


class KafkaStatsCollector(Collector):
    """Consumer lag, broker connectivity and request retries from librdkafka statistics."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self._stats: dict[str, dict[str, Any]] = {}
        if registry is not None:
            registry.register(self)

    def stats_cb(self, client: str) -> Any:
        """A ``stats_cb`` for the client called ``client`` (``consumer`` or ``producer``)."""
        return lambda text: self.update(client, text)

    def update(self, client: str, text: str) -> None:
        """Keep ``text`` (a statistics JSON document) as the newest of ``client``."""
        try:
            self._stats[client] = json.loads(text)
        except ValueError:
            log.warning("librdkafka statistics of the %s are not JSON; ignored", client)

    def brokers_up(self, client: str) -> int | None:
        """Brokers of ``client`` in state UP in the newest document; ``None`` before one."""
        stats = self._stats.get(client)
        if stats is None:
            return None
        return sum(
            1
            for broker in (stats.get("brokers") or {}).values()
            if broker.get("nodeid", -1) >= 0 and broker.get("state") == "UP"
        )

    def describe(self) -> list[Metric]:
        # Without describe() the registry would call collect() at registration.
        return []

    def collect(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily(
            PREFIX + "kafka_consumer_lag_records",
            "Records between a partition's end and the member's committed offset "
            "(librdkafka statistics; absent until known).",
            labels=["topic", "partition"],
        )
        up = GaugeMetricFamily(
            PREFIX + "kafka_brokers_up",
            "Brokers the client is connected to (librdkafka statistics).",
            labels=["client"],
        )
        retries = CounterMetricFamily(
            PREFIX + "kafka_request_retries",
            "Requests librdkafka retried to the brokers (librdkafka statistics).",
            labels=["client"],
        )
        for client, stats in sorted(self._stats.items()):
            brokers = [b for b in (stats.get("brokers") or {}).values() if b.get("nodeid", -1) >= 0]
            up.add_metric([client], sum(1 for b in brokers if b.get("state") == "UP"))
            retries.add_metric([client], sum(int(b.get("txretries", 0)) for b in brokers))
            if client == "consumer":
                for topic, partition, value in _lags(stats):
                    lag.add_metric([topic, partition], value)
        yield lag
        yield up
        yield retries


def _lags(stats: dict[str, Any]) -> Iterator[tuple[str, str, float]]:
    for topic, entry in sorted((stats.get("topics") or {}).items()):
        for partition, p in sorted((entry.get("partitions") or {}).items()):
            if partition == "-1":
                continue
            value = p.get("consumer_lag_stored", -1)
            if value is not None and value >= 0:
                yield topic, partition, float(value)
