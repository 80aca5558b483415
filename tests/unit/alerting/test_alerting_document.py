"""The alert document for the seed rule and a Defend macOS kextunload event; reason; Avro."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import fastavro
import pytest
from alerting_helpers import VECTORS, Clock, load_vector, make_core, seed_rule

from consumer.alerting import (
    Candidate,
    alert_from_avro,
    alert_to_avro,
    build_reason,
)
from consumer.alerting.document import copy_source
from consumer.rules.model import threat_to_dict

SCHEMA_PATH = Path(__file__).resolve().parents[3] / "schemas" / "alert.avsc"
SEED_REASON = (
    "process event with process kextunload, parent process sudo, by root on mbp-eng-042 "
    "created high alert Attempt to Unload Elastic Endpoint Security Kernel Extension."
)


def seed_alert() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(alert, expected vector, source event) for the seed rule and the Defend event."""
    expected = load_vector("seed_alert_expected.json")
    event = load_vector("defend_macos_kextunload_event.json")
    rule = seed_rule()
    core = make_core(rule, Clock(expected["clock"]))
    [output] = core.process(
        Candidate(
            rule,
            event,
            expected["topic"],
            expected["partition"],
            expected["offset"],
            expected["kafka_timestamp_ms"],
        )
    )
    assert output.kind == "alert"
    assert output.key == output.value["kibana.alert.uuid"]
    return output.value, expected, event


def test_seed_alert_field_by_field() -> None:
    alert, expected, _ = seed_alert()
    rule = seed_rule()
    want = expected["alert"]
    assert set(alert) == set(want) | {"kibana.alert.rule.parameters", "kibana.alert.rule.threat"}
    for key, value in want.items():
        assert alert[key] == value, key
    assert alert["kibana.alert.rule.parameters"] == rule.parameters()
    assert alert["kibana.alert.rule.threat"] == [threat_to_dict(t) for t in rule.threat]


def test_seed_alert_key_fields() -> None:
    """The promises of the issue, spelled out independently of the vector file."""
    alert, _, event = seed_alert()
    assert alert["kibana.alert.reason"] == SEED_REASON
    assert alert["event.kind"] == "signal"
    assert "kind" not in alert["event"]
    assert alert["kibana.alert.original_event.kind"] == "event"
    assert alert["kibana.alert.original_event.id"] == event["event"]["id"]
    assert alert["kibana.alert.original_time"] == event["@timestamp"]
    assert alert["@timestamp"] == "2022-08-10T14:05:02.117Z"
    assert alert["kibana.alert.status"] == "active"
    assert alert["kibana.alert.workflow_status"] == "open"
    assert alert["kibana.alert.depth"] == 1
    assert alert["kibana.alert.ancestors"] == [
        {
            "id": event["event"]["id"],
            "type": "event",
            "depth": 0,
            "index": "logs-endpoint.events.process-default",
            "partition": 3,
            "offset": 1234,
        }
    ]
    assert alert["kibana.alert.severity"] == "high"
    assert alert["kibana.alert.risk_score"] == 73
    assert alert["kibana.alert.rule.rule_id"] == "70fa1af4-27fd-4f26-bd03-50b6af6b9e24"
    assert alert["kibana.alert.rule.uuid"] == seed_rule().uuid
    assert alert["kibana.alert.rule.rule_type_id"] == "siem.queryRule"
    assert alert["kibana.alert.rule.category"] == "Custom Query Rule"
    assert alert["kibana.alert.rule.consumer"] == alert["kibana.alert.rule.producer"] == "siem"
    assert alert["kibana.alert.rule.max_signals"] == 100
    assert alert["kibana.alert.rule.timestamp_override"] == "event.ingested"
    assert alert["kibana.space_ids"] == ["default"]
    assert alert["kibana.version"] == "8.12.0"
    # No event.ingested on the Kafka path: the fallback @timestamp placed the event.
    assert alert["kibana.alert.streaming.time_source"] == "@timestamp"
    # The source event is copied with its nesting, untouched apart from event.kind.
    for key in ("host", "process", "user", "agent", "data_stream"):
        assert alert[key] == event[key]
    json.dumps(alert)  # JSON-serialisable


def test_alert_id_is_deterministic_and_space_scoped() -> None:
    event = load_vector("defend_macos_kextunload_event.json")
    rule = seed_rule()
    ids = set()
    for space in ("default", "default", "other"):
        core = make_core(rule, Clock("2030-01-01T00:00:00Z"), space_id=space)
        [output] = core.process(Candidate(rule, event, "another-topic", 9, 99))
        ids.add(output.key)
        assert output.value["kibana.space_ids"] == [space]
    assert len(ids) == 2


def test_copy_source_drops_reserved_keys_and_keeps_nesting() -> None:
    event = {
        "@metadata": {"beat": "auditbeat"},
        "kibana": {"x": 1},
        "signal": {"y": 1},
        "kibana.alert.uuid": "forged",
        "event.kind": "event",
        "event.action": "exec",
        "process": {"name": "kextunload"},
    }
    assert copy_source(event) == {"event.action": "exec", "process": {"name": "kextunload"}}
    assert "@metadata" in event  # the caller's event is not modified


def test_dotted_source_event_gives_same_reason_and_original_event() -> None:
    event = {
        "@timestamp": "2022-08-10T14:03:21.512Z",
        "event.kind": "event",
        "event.category": ["process"],
        "event.id": "x1",
        "process.name": "kextunload",
        "process.parent.name": "sudo",
        "user.name": "root",
        "host.name": "mbp-eng-042",
    }
    rule = seed_rule()
    [output] = make_core(rule).process(Candidate(rule, event))
    alert = output.value
    assert alert["kibana.alert.reason"] == SEED_REASON
    assert alert["kibana.alert.original_event.category"] == ["process"]
    assert alert["kibana.alert.original_event.kind"] == "event"
    assert alert["event.kind"] == "signal"
    assert alert["process.name"] == "kextunload"
    assert alert["kibana.alert.ancestors"] == [{"id": "x1", "type": "event", "depth": 0}]


@pytest.mark.parametrize("case", load_vector("reasons.json")["cases"])
def test_reason_vectors(case: dict[str, Any]) -> None:
    assert build_reason(case["event"], "high", "R") == case["reason"]


def test_avro_round_trip_equals_json_alert() -> None:
    alert, _, _ = seed_alert()
    schema = fastavro.parse_schema(json.loads(SCHEMA_PATH.read_text()))
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema, alert_to_avro(alert))
    buffer.seek(0)
    record = fastavro.schemaless_reader(buffer, schema)
    assert record["uuid"] == alert["kibana.alert.uuid"]
    assert alert_from_avro(record) == json.loads(json.dumps(alert))


def test_avro_round_trip_keeps_json_types() -> None:
    doc = {
        "kibana.alert.uuid": "u",
        "kibana.alert.rule.uuid": "r",
        "@timestamp": "t",
        "mixed": [1, True, 1.5, None, "s", {"a": [{}]}, []],
        "zero": 0.0,
        "big": 2**62,
    }
    schema = fastavro.parse_schema(json.loads(SCHEMA_PATH.read_text()))
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema, alert_to_avro(doc))
    buffer.seek(0)
    back = alert_from_avro(fastavro.schemaless_reader(buffer, schema))
    assert back == doc
    assert [type(v) for v in back["mixed"][:4]] == [int, bool, float, type(None)]
    assert isinstance(back["zero"], float)


def test_seed_rule_from_toml_matches_test_rule() -> None:
    """The helper's seed rule is the built-in one (needs consumer.kql for the loader)."""
    pytest.importorskip("consumer.kql")
    from consumer.rules import builtin_rules_path, load_toml_rule

    path = builtin_rules_path() / "defense_evasion_unload_endpointsecurity_kext.toml"
    loaded = load_toml_rule(path.read_text(), str(path))
    assert loaded == seed_rule()
    assert loaded.uuid == seed_rule().uuid
    assert loaded.parameters() == seed_rule().parameters()


def test_vectors_folder_exists() -> None:
    assert (VECTORS / "streams.json").is_file()
