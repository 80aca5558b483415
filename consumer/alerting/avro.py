"""Alerts as Avro records of ``schemas/alert.avsc`` (and back), without fastavro here.

The alert document is open-ended (the copied ECS event) and has dotted keys Avro names
cannot hold, so it travels as ``map<JsonValue>``, where ``JsonValue`` is a record with one
union field (null, boolean, long, double, string, array or map of ``JsonValue``). The
wrapping record is what lets Avro express the recursion; these helpers add and remove it.
Lossless for JSON values whose integers fit in a signed 64-bit long.
"""

from __future__ import annotations

from typing import Any


def alert_to_avro(alert: dict[str, Any]) -> dict[str, Any]:
    """The ``SecurityAlert`` record for an alert document."""
    return {
        "uuid": alert["kibana.alert.uuid"],
        "rule_uuid": alert["kibana.alert.rule.uuid"],
        "timestamp": alert["@timestamp"],
        "document": {key: _wrap(value) for key, value in alert.items()},
    }


def alert_from_avro(record: dict[str, Any]) -> dict[str, Any]:
    """The alert document carried by a decoded ``SecurityAlert`` record."""
    return {key: _unwrap(value) for key, value in record["document"].items()}


def _wrap(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return {"value": {str(k): _wrap(v) for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        return {"value": [_wrap(v) for v in value]}
    return {"value": value}


def _unwrap(wrapped: dict[str, Any]) -> Any:
    value = wrapped["value"]
    if isinstance(value, dict):
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    return value
