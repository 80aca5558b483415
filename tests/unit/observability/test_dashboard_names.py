"""Every metric the dashboard and the alert rules name is one a member registers
(no Prometheus needed; tests/deploy/test_prometheus.py checks the same against a live one)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from .member_harness import Harness, seed_rule

ROOT = Path(__file__).resolve().parents[3]
SOURCES = [
    ROOT / "helm" / "dashboards" / "consumer.json",
    ROOT / "helm" / "files" / "alert-rules.yml",
]


def test_dashboard_and_rules_name_only_exported_metrics() -> None:
    harness = Harness(seed_rule())
    exported = set()
    for family in harness.registry.collect():
        exported.add(family.name)
        if family.type == "counter":  # client_python strips _total from the family name
            exported.add(family.name + "_total")
        if family.type == "histogram":
            exported |= {family.name + suffix for suffix in ("_bucket", "_count", "_sum")}
        exported |= {sample.name for sample in family.samples}
    exported |= {  # filled at scrape time or by the CLI's process collector
        "detection_consumer_kafka_consumer_lag_records",
        "detection_consumer_kafka_brokers_up",
        "detection_consumer_kafka_request_retries_total",
        "process_resident_memory_bytes",
    }
    named = set()
    for source in SOURCES:
        named |= set(re.findall(r"\b(?:detection_consumer_|process_)[a-z_]+", source.read_text()))
    json.loads(SOURCES[0].read_text())  # the dashboard is JSON
    assert named - exported == set()
