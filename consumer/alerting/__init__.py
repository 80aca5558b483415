"""Alerting: turn rule matches into Elastic Security alerts (pure, no Kafka).

One alert per source event per rule, at most ``max_signals`` new alerts per rule and
event-time window (with Elastic's warning when more were cut), alert suppression, and an
alert document Kibana's Alerts UI can list. State lives behind ``AlertingState`` and is
saved and restored as compacted-changelog records.
"""

from consumer.alerting.avro import alert_from_avro, alert_to_avro
from consumer.alerting.core import (
    ALERT,
    ALERT_UPDATE,
    MAX_SIGNALS_WARNING,
    MAX_SIGNALS_WARNING_SUPPRESSION,
    RULE_STATUS,
    AlertingCore,
    Candidate,
    Output,
    RuleCounters,
    UnreadableEvent,
)
from consumer.alerting.document import build_alert
from consumer.alerting.event_time import EventTime, event_time, parse_timestamp
from consumer.alerting.identity import alert_uuid, canonical_form, event_identity
from consumer.alerting.reason import build_reason
from consumer.alerting.state import AlertingState, InMemoryState, StateRecord
from consumer.alerting.windows import TimePolicy

__all__ = [
    "ALERT",
    "ALERT_UPDATE",
    "MAX_SIGNALS_WARNING",
    "MAX_SIGNALS_WARNING_SUPPRESSION",
    "RULE_STATUS",
    "AlertingCore",
    "AlertingState",
    "Candidate",
    "EventTime",
    "InMemoryState",
    "Output",
    "RuleCounters",
    "StateRecord",
    "TimePolicy",
    "UnreadableEvent",
    "alert_from_avro",
    "alert_to_avro",
    "alert_uuid",
    "build_alert",
    "build_reason",
    "canonical_form",
    "event_identity",
    "event_time",
    "parse_timestamp",
]
