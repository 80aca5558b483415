"""librdkafka statistics become lag and broker metrics at scrape time."""

from __future__ import annotations

import json

from prometheus_client import CollectorRegistry, generate_latest

from consumer.observability import KafkaStatsCollector

P = "detection_consumer_"


def stats(**partitions: dict) -> str:
    return json.dumps(
        {
            "brokers": {
                "127.0.0.1:9092/bootstrap": {"nodeid": -1, "state": "UP", "txretries": 9},
                "127.0.0.1:9092/1": {"nodeid": 1, "state": "UP", "txretries": 2},
                "127.0.0.1:9093/2": {"nodeid": 2, "state": "DOWN", "txretries": 1},
            },
            "topics": {"events": {"partitions": partitions}},
        }
    )


def test_lag_per_partition_skips_unknown_and_the_placeholder() -> None:
    registry = CollectorRegistry()
    collector = KafkaStatsCollector(registry)
    assert registry.get_sample_value(P + "kafka_consumer_lag_records", {}) is None
    collector.update(
        "consumer",
        stats(
            **{
                "0": {"consumer_lag_stored": 42, "consumer_lag": 50},
                "1": {"consumer_lag_stored": -1, "consumer_lag": -1},  # nothing committed yet
                "-1": {"consumer_lag_stored": 7},  # librdkafka's unassigned placeholder
            }
        ),
    )
    lag = P + "kafka_consumer_lag_records"
    assert registry.get_sample_value(lag, {"topic": "events", "partition": "0"}) == 42
    assert registry.get_sample_value(lag, {"topic": "events", "partition": "1"}) is None
    assert registry.get_sample_value(lag, {"topic": "events", "partition": "-1"}) is None


def test_brokers_and_retries_per_client_not_counting_bootstrap_entries() -> None:
    registry = CollectorRegistry()
    collector = KafkaStatsCollector(registry)
    assert collector.brokers_up("consumer") is None
    collector.stats_cb("producer")(stats())
    assert collector.brokers_up("producer") == 1
    up = registry.get_sample_value(P + "kafka_brokers_up", {"client": "producer"})
    assert up == 1
    retries = registry.get_sample_value(P + "kafka_request_retries_total", {"client": "producer"})
    assert retries == 3


def test_a_newer_document_replaces_the_old_one_and_garbage_is_ignored() -> None:
    registry = CollectorRegistry()
    collector = KafkaStatsCollector(registry)
    collector.update("consumer", stats(**{"0": {"consumer_lag_stored": 5}}))
    collector.update("consumer", "not json")
    collector.update("consumer", stats(**{"1": {"consumer_lag_stored": 3}}))
    text = generate_latest(registry).decode()
    assert 'partition="1"' in text and 'partition="0"' not in text
