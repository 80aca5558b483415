"""What the alerting core decides a candidate on, read from its event once.

Until it builds an alert, the core needs three things of an event: its time, its
identity and its suppression groups. The pipeline reads them where the event was
matched (and is decoded already) and sends them with the candidate, so the owner of the
rule's window decodes an event only for an alert it admits. A noisy rule's candidates
past the window's limit, and duplicates, are decided without decoding their events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from consumer.alerting.event_time import EventTime, event_time
from consumer.alerting.identity import event_identity
from consumer.alerting.suppression import group_terms
from consumer.rules.model import Rule

#: A suppression group: the ``{"field", "value"}`` terms of each of the rule's fields.
Group = list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Facts:
    """A candidate's event time, event identity and suppression groups (``None``: the
    rule does not suppress, or the event is alerted on unsuppressed)."""

    time: EventTime | None
    identity: str
    groups: list[Group] | None


def read_facts(rule: Rule, event: dict[str, Any], kafka_timestamp_ms: int | None) -> Facts:
    """The facts of ``event`` matched by ``rule`` (a record stamped ``kafka_timestamp_ms``)."""
    suppression = rule.alert_suppression
    return Facts(
        event_time(rule, event, kafka_timestamp_ms),
        event_identity(event),
        group_terms(event, suppression) if suppression is not None else None,
    )
