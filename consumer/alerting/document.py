"""The Elastic Security alert document for a query rule (Kibana 8.7+ layout).

Layout, as Kibana writes ``_source`` into ``.alerts-security.alerts-<space>``:

- the source event, deep-copied with its original nesting, minus the top-level keys
  ``@metadata`` (shipper envelope), ``kibana``, ``signal`` and ``threshold_result`` and
  any dotted ``kibana.*``/``signal.*`` keys (they would collide with the alert's own);
- ``event.kind`` removed from the copied event and written as the flat key
  ``"event.kind": "signal"`` (8.7+ keeps ``event`` nested but drops its ``kind``);
- every ``event.*`` value copied to flat ``kibana.alert.original_event.*`` keys;
- all ``kibana.*`` fields as flat dotted keys at the top of the document, as Kibana
  writes them (``kibana.alert.rule.parameters`` and ``kibana.alert.ancestors`` hold
  objects, as in Kibana).

Fields Kibana does not have, marked under ``kibana.alert.streaming.*`` (unmapped under
``dynamic: false``, kept in ``_source``): the effective event time (after the time
policy), where the event time came from, and whether the time policy marked the
candidate ``late`` or ``clamped``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from consumer.alerting.event_time import original_time, to_iso
from consumer.alerting.fields import subtree
from consumer.alerting.reason import build_reason
from consumer.rules.model import Rule, threat_to_dict

DEFAULT_KIBANA_VERSION = "8.12.0"
RULE_TYPE_ID = "siem.queryRule"
RULE_CATEGORY = "Custom Query Rule"
_DROPPED_KEYS = ("@metadata", "kibana", "signal", "threshold_result")
_DROPPED_PREFIXES = ("kibana.", "signal.")


@dataclass(frozen=True, slots=True)
class SourceRef:
    """Where the event came from: the alert's ancestor."""

    identity: str
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None


@dataclass(frozen=True, slots=True)
class AlertContext:
    """Per-alert values the builder does not derive from rule or event."""

    alert_uuid: str
    execution_uuid: str
    now_ms: int
    effective_ms: int
    time_source: str
    late: bool
    clamped: bool
    space_id: str = "default"
    kibana_version: str = DEFAULT_KIBANA_VERSION


def copy_source(event: dict[str, Any]) -> dict[str, Any]:
    """The event as copied into an alert: original nesting, minus reserved keys and kind."""
    out: dict[str, Any] = {}
    for key, value in event.items():
        if key in _DROPPED_KEYS or key.startswith(_DROPPED_PREFIXES) or key == "event.kind":
            continue
        out[key] = copy.deepcopy(value)
    inner = out.get("event")
    if isinstance(inner, dict) and "kind" in inner:
        inner.pop("kind")
        if not inner:
            del out["event"]
    return out


def rule_fields(rule: Rule) -> dict[str, Any]:
    """The ``kibana.alert.rule.*`` fields of ``rule`` (the same for all its alerts)."""
    return {
        "kibana.alert.rule.uuid": rule.uuid,
        "kibana.alert.rule.rule_id": rule.rule_id,
        "kibana.alert.rule.name": rule.name,
        "kibana.alert.rule.description": rule.description,
        "kibana.alert.rule.version": rule.version,
        "kibana.alert.rule.type": rule.type,
        "kibana.alert.rule.from": rule.from_,
        "kibana.alert.rule.to": rule.to,
        "kibana.alert.rule.interval": rule.interval,
        "kibana.alert.rule.max_signals": rule.max_signals,
        "kibana.alert.rule.timestamp_override": rule.timestamp_override,
        "kibana.alert.rule.threat": [threat_to_dict(t) for t in rule.threat],
        "kibana.alert.rule.tags": list(rule.tags),
        "kibana.alert.rule.author": list(rule.author),
        "kibana.alert.rule.license": rule.license,
        "kibana.alert.rule.references": list(rule.references),
        "kibana.alert.rule.false_positives": list(rule.false_positives),
        "kibana.alert.rule.exceptions_list": [],
        "kibana.alert.rule.risk_score_mapping": [],
        "kibana.alert.rule.severity_mapping": [],
        "kibana.alert.rule.enabled": True,
        "kibana.alert.rule.indices": list(rule.index),
        "kibana.alert.rule.parameters": rule.parameters(),
        # Written by Kibana but unmapped; kept for older readers (semantics notes §2.3).
        "kibana.alert.rule.severity": rule.severity,
        "kibana.alert.rule.risk_score": rule.risk_score,
        "kibana.alert.rule.consumer": "siem",
        "kibana.alert.rule.producer": "siem",
        "kibana.alert.rule.rule_type_id": RULE_TYPE_ID,
        "kibana.alert.rule.category": RULE_CATEGORY,
    }


def build_alert(
    rule: Rule, event: dict[str, Any], source: SourceRef, ctx: AlertContext
) -> dict[str, Any]:
    """The alert document for one candidate (see the module docstring for the layout)."""
    doc = copy_source(event)
    doc["@timestamp"] = to_iso(ctx.now_ms)
    doc["event.kind"] = "signal"
    for key, value in subtree(event, "event").items():
        doc[f"kibana.alert.original_event.{key}"] = copy.deepcopy(value)
    original = original_time(event)
    if original is not None:
        doc["kibana.alert.original_time"] = original
    ancestor: dict[str, Any] = {"id": source.identity, "type": "event", "depth": 0}
    if source.topic is not None:
        ancestor["index"] = source.topic
    if source.partition is not None:
        ancestor["partition"] = source.partition
    if source.offset is not None:
        ancestor["offset"] = source.offset
    now = to_iso(ctx.now_ms)
    doc.update(
        {
            "kibana.alert.uuid": ctx.alert_uuid,
            "kibana.alert.status": "active",
            "kibana.alert.workflow_status": "open",
            "kibana.alert.workflow_tags": [],
            "kibana.alert.workflow_assignee_ids": [],
            "kibana.alert.depth": 1,
            "kibana.alert.ancestors": [ancestor],
            "kibana.alert.reason": build_reason(event, rule.severity, rule.name),
            "kibana.alert.severity": rule.severity,
            "kibana.alert.risk_score": rule.risk_score,
            "kibana.alert.start": now,
            "kibana.alert.last_detected": now,
            "kibana.alert.rule.execution.uuid": ctx.execution_uuid,
        }
    )
    doc.update(rule_fields(rule))
    if rule.timestamp_override is None:
        del doc["kibana.alert.rule.timestamp_override"]
    doc.update(
        {
            "kibana.alert.streaming.effective_time": to_iso(ctx.effective_ms),
            "kibana.alert.streaming.time_source": ctx.time_source,
            "kibana.alert.streaming.late": ctx.late,
            "kibana.alert.streaming.clamped": ctx.clamped,
            "kibana.space_ids": [ctx.space_id],
            "kibana.version": ctx.kibana_version,
        }
    )
    return doc


def suppression_fields(
    terms: list[dict[str, Any]], instance: str, start_ms: int, end_ms: int, docs_count: int
) -> dict[str, Any]:
    """The ``kibana.alert.suppression.*`` and ``instance.id`` fields of a group's alert."""
    return {
        "kibana.alert.instance.id": instance,
        "kibana.alert.suppression.terms": copy.deepcopy(terms),
        "kibana.alert.suppression.start": to_iso(start_ms),
        "kibana.alert.suppression.end": to_iso(end_ms),
        "kibana.alert.suppression.docs_count": docs_count,
    }
