"""Event identity and the deterministic ids derived from it.

Event identity (what "the same source event" means for dedup):

- ``event.id`` when the event has one (Elastic Defend sets a unique one per event);
- else ``sha256-<hex>`` of the event's canonical JSON: dotted keys expanded and merged
  with nested ones, nulls, empty lists and emptied objects dropped, keys sorted, compact
  separators, UTF-8. ``@metadata`` (shipper envelope, never indexed) and
  ``event.ingested`` (stamped per delivery by an ingest pipeline, not by the source) are
  left out, so the same event delivered twice, as JSON with reordered keys, dotted or
  nested, or Avro-decoded with absent optional fields as nulls, has one identity.

Ids (all hex or UUID text, stable across machines, replays and restarts):

- alert uuid = sha256 of identity, space and rule uuid (plus the suppression terms for
  a suppressed alert, so one event in two groups yields two alerts). Kibana hashes
  ``_index + _id + _version + space:ruleUUID``; a Kafka event has no ``_index``/``_id``, so
  the identity stands in for both and the ids differ from the ones Kibana would make.
- instance id (suppression group) = sha256 of canonical ``[terms, rule uuid, space]``;
  Kibana uses the npm ``object-hash`` of the same triple, so the text differs.
- execution uuid = uuid5 of rule uuid and window start: one per rule and window.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from consumer.alerting.fields import MISSING, expand, first_value

EXECUTION_NAMESPACE = uuid.UUID("0b9c4f2e-8a57-4d6b-9f0e-3c2d1a7b5e64")
# Fields that describe a delivery rather than the event itself.
_DELIVERY_FIELDS = ("@metadata",)
_DELIVERY_EVENT_FIELDS = ("ingested",)


def canonical_form(event: dict[str, Any]) -> dict[str, Any]:
    """The event as compared for identity: expanded, null-free, without delivery fields."""
    form = expand({k: v for k, v in event.items() if k not in _DELIVERY_FIELDS}) or {}
    inner = form.get("event")
    if isinstance(inner, dict):
        trimmed = {k: v for k, v in inner.items() if k not in _DELIVERY_EVENT_FIELDS}
        if trimmed:
            form["event"] = trimmed
        else:
            del form["event"]
    return form


def canonical_bytes(event: dict[str, Any]) -> bytes:
    """Canonical JSON bytes of ``canonical_form`` (sorted keys, compact, UTF-8)."""
    return _dumps(canonical_form(event))


def event_id(event: dict[str, Any]) -> str | None:
    """``event.id`` as text when the event has one (a scalar), else None."""
    value = first_value(event, "event.id")
    if value is MISSING or isinstance(value, (dict, list)):
        return None
    return str(value)


def event_identity(event: dict[str, Any]) -> str:
    """``event.id`` as text when present, else ``sha256-`` and the canonical-form hash."""
    found = event_id(event)
    if found is not None:
        return found
    return "sha256-" + hashlib.sha256(canonical_bytes(event)).hexdigest()


def alert_uuid(
    space_id: str, rule_uuid: str, identity: str, terms: list[dict[str, Any]] | None = None
) -> str:
    """The alert's ``kibana.alert.uuid`` (and Kafka key, and ES ``_id``)."""
    text = f"{identity}\x1f{space_id}:{rule_uuid}"
    if terms is not None:
        text += "\x1f" + _dumps(terms).decode()
    return hashlib.sha256(text.encode()).hexdigest()


def instance_id(terms: list[dict[str, Any]], rule_uuid: str, space_id: str) -> str:
    """``kibana.alert.instance.id`` of a suppression group."""
    return hashlib.sha256(_dumps([terms, rule_uuid, space_id])).hexdigest()


def execution_uuid(rule_uuid: str, window_start_ms: int) -> str:
    """``kibana.alert.rule.execution.uuid``: one per rule and window."""
    return str(uuid.uuid5(EXECUTION_NAMESPACE, f"{rule_uuid}/{window_start_ms}"))


def _dumps(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    ).encode()
