"""The rule model: what Elastic's detection engine reads from a query rule.

A ``Rule`` is built from either of Elastic's formats (see ``consumer.rules.loaders``) and
validated on construction, so that a rule object that exists is one the engine can run.
Field names follow Elastic's rule API (snake_case) except ``from``, a Python keyword,
kept as ``from_``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from typing import Any

SEVERITIES = ("low", "medium", "high", "critical")
# Kibana's alerting framework caps max_signals at xpack.alerting.rules.run.alerts.max
# (default 1000); a larger value would only be clamped there, so it is refused here.
MAX_SIGNALS_CAP = 1000
# Window state is kept per interval and dedup memory spans the look-back; bounding both
# keeps a typo ("5d" for "5m") from turning into unbounded state.
MAX_INTERVAL = timedelta(days=1)
MAX_LOOKBACK = timedelta(days=7)
MISSING_FIELDS_STRATEGIES = ("suppress", "doNotSuppress")

# A fixed namespace so that a rule without a Kibana saved-object id gets the same
# ``uuid`` on every machine and every run (alert ids are derived from it).
RULE_UUID_NAMESPACE = uuid.UUID("4d1f6f0e-5c1a-4c53-9a55-2b1e0c6a7d10")

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$", re.ASCII)
_DATE_MATH_FROM = re.compile(r"^\s*now\s*-\s*(\d+)\s*([smhd])\s*$", re.ASCII)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# No rule duration is longer than a few days (the limits below); this bound only keeps
# an absurd number ("99999999999999999999d") a ValueError instead of an OverflowError
# from timedelta or a digit-limit error from int().
_MAX_DURATION_DIGITS = 8


def _seconds(amount: str, unit: str, text: str) -> timedelta:
    digits = amount.lstrip("0") or "0"
    if len(digits) > _MAX_DURATION_DIGITS:
        raise ValueError(f"out of range (more than {_MAX_DURATION_DIGITS} digits): {text!r:.60}")
    return timedelta(seconds=int(digits) * _UNIT_SECONDS[unit])


def parse_duration(text: str) -> timedelta:
    """Parse an Elastic rule duration such as ``5m``, ``30s``, ``1h`` or ``1d``."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"not a duration (expected a number and one of s, m, h, d): {text!r:.60}")
    return _seconds(match.group(1), match.group(2), text)


def parse_relative_time(text: str) -> timedelta:
    """Parse a rule's ``from``/``to`` (``now`` or ``now-9m``) into how far back it reaches."""
    if isinstance(text, str) and text.strip() == "now":
        return timedelta(0)
    match = _DATE_MATH_FROM.match(text) if isinstance(text, str) else None
    if not match:
        raise ValueError(
            f"not a relative time (expected 'now' or 'now-<n><s|m|h|d>'): {text!r:.60}"
        )
    return _seconds(match.group(1), match.group(2), text)


def _field_value(name: str, parse: Callable[[str], timedelta], text: str) -> timedelta:
    """``parse(text)``, with a failure message that starts with the field's name."""
    try:
        return parse(text)
    except ValueError as exc:
        raise ValueError(f"{name} is {exc}") from None


@dataclass(frozen=True)
class AttackEntry:
    """A MITRE ATT&CK tactic, technique or sub-technique reference."""

    id: str
    name: str
    reference: str


@dataclass(frozen=True)
class Technique:
    """An ATT&CK technique with its sub-techniques."""

    id: str
    name: str
    reference: str
    subtechniques: tuple[AttackEntry, ...] = ()


@dataclass(frozen=True)
class Threat:
    """One ``threat`` entry: a framework, a tactic and the techniques under it."""

    framework: str
    tactic: AttackEntry
    techniques: tuple[Technique, ...] = ()


@dataclass(frozen=True)
class AlertSuppression:
    """Elastic's ``alert_suppression``: one alert per group of ``group_by`` values."""

    group_by: tuple[str, ...]
    duration: timedelta | None = None
    missing_fields_strategy: str = "suppress"

    def __post_init__(self) -> None:
        if not 1 <= len(self.group_by) <= 3:
            raise ValueError("alert_suppression.group_by must name 1 to 3 fields")
        if not all(isinstance(name, str) and name for name in self.group_by):
            raise ValueError("alert_suppression.group_by must be field names")
        if self.missing_fields_strategy not in MISSING_FIELDS_STRATEGIES:
            raise ValueError(
                "alert_suppression.missing_fields_strategy must be one of "
                f"{', '.join(MISSING_FIELDS_STRATEGIES)}, not {self.missing_fields_strategy!r}"
            )
        if self.duration is not None and self.duration <= timedelta(0):
            raise ValueError("alert_suppression.duration must be positive")


@dataclass(frozen=True)
class Rule:
    """A KQL query rule as Elastic's detection engine runs it.

    ``id`` is the Kibana saved-object id when the rule came from a Kibana export; ``uuid``
    is that id, or a stable UUID derived from ``rule_id`` when there is none, and is what
    alerts carry as ``kibana.alert.rule.uuid``.
    """

    rule_id: str
    name: str
    description: str
    type: str
    language: str
    query: str
    severity: str
    risk_score: int
    index: tuple[str, ...] = ()
    version: int = 1
    interval: str = "5m"
    from_: str = "now-6m"
    to: str = "now"
    max_signals: int = 100
    timestamp_override: str | None = None
    timestamp_override_fallback_disabled: bool = False
    threat: tuple[Threat, ...] = ()
    tags: tuple[str, ...] = ()
    author: tuple[str, ...] = ()
    license: str = ""
    references: tuple[str, ...] = ()
    false_positives: tuple[str, ...] = ()
    alert_suppression: AlertSuppression | None = None
    # Kibana query-DSL filters ANDed with the query (see consumer.kql.filters); plain
    # JSON objects, so left out of the hash.
    filters: tuple[Mapping[str, Any], ...] = field(default=(), hash=False)
    id: str | None = None
    # Where the rule came from, for messages; not part of the rule's identity.
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        self._validate()

    def _validate(self) -> None:
        for name in ("rule_id", "name", "type", "language"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name} is required and must be a non-empty string")
        if not isinstance(self.query, str):
            raise ValueError("query must be a string")
        if self.severity not in SEVERITIES:
            raise ValueError(
                f"severity must be one of {', '.join(SEVERITIES)}, not {self.severity!r}"
            )
        if isinstance(self.risk_score, bool) or not isinstance(self.risk_score, int):
            raise ValueError(f"risk_score must be an integer, not {self.risk_score!r}")
        if not 0 <= self.risk_score <= 100:
            raise ValueError(f"risk_score must be between 0 and 100, not {self.risk_score}")
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise ValueError(f"version must be a positive integer, not {self.version!r}")
        if isinstance(self.max_signals, bool) or not isinstance(self.max_signals, int):
            raise ValueError(f"max_signals must be an integer, not {self.max_signals!r}")
        if not 1 <= self.max_signals <= MAX_SIGNALS_CAP:
            raise ValueError(
                f"max_signals must be between 1 and {MAX_SIGNALS_CAP} (Kibana's alerting cap), "
                f"not {self.max_signals}"
            )
        interval = _field_value("interval", parse_duration, self.interval)
        if not timedelta(seconds=1) <= interval <= MAX_INTERVAL:
            raise ValueError(f"interval must be between 1s and 1d, not {self.interval!r}")
        _field_value("from", parse_relative_time, self.from_)
        _field_value("to", parse_relative_time, self.to)
        if self.lookback <= timedelta(0):
            raise ValueError(f"from ({self.from_!r}) must be earlier than to ({self.to!r})")
        if self.lookback > MAX_LOOKBACK:
            # Starts with the field's name, so the loader can point at its line.
            raise ValueError(f"from ({self.from_!r}) to {self.to!r}: the look-back exceeds 7 days")

    @cached_property  # asked for every match; a uuid5 costs ~6 us
    def uuid(self) -> str:
        """The rule's ``kibana.alert.rule.uuid``."""
        return self.id or str(uuid.uuid5(RULE_UUID_NAMESPACE, self.rule_id))

    @property
    def interval_span(self) -> timedelta:
        """How often Elastic runs the rule: the width of one alerting window."""
        return parse_duration(self.interval)

    @property
    def lookback(self) -> timedelta:
        """The span one execution searches, from ``from`` to ``to`` (9m for now-9m..now)."""
        return parse_relative_time(self.from_) - parse_relative_time(self.to)

    def parameters(self) -> dict[str, Any]:
        """The rule as Kibana's ``kibana.alert.rule.parameters``: snake_case API fields."""
        params: dict[str, Any] = {
            "rule_id": self.rule_id,
            "description": self.description,
            "type": self.type,
            "language": self.language,
            "query": self.query,
            "index": list(self.index),
            "severity": self.severity,
            "risk_score": self.risk_score,
            "version": self.version,
            "from": self.from_,
            "to": self.to,
            "interval": self.interval,
            "max_signals": self.max_signals,
            "threat": [threat_to_dict(t) for t in self.threat],
            "references": list(self.references),
            "false_positives": list(self.false_positives),
            "author": list(self.author),
            "license": self.license,
            "tags": list(self.tags),
            "exceptions_list": [],
        }
        if self.timestamp_override:
            params["timestamp_override"] = self.timestamp_override
            params["timestamp_override_fallback_disabled"] = (
                self.timestamp_override_fallback_disabled
            )
        if self.filters:
            params["filters"] = [dict(f) for f in self.filters]
        if self.alert_suppression:
            params["alert_suppression"] = suppression_to_dict(self.alert_suppression)
        return params


def threat_to_dict(threat: Threat) -> dict[str, Any]:
    """A ``Threat`` in the JSON shape of Elastic's rule API and alert documents."""

    def entry(e: AttackEntry) -> dict[str, str]:
        return {"id": e.id, "name": e.name, "reference": e.reference}

    return {
        "framework": threat.framework,
        "tactic": entry(threat.tactic),
        "technique": [
            {**entry(t), "subtechnique": [entry(s) for s in t.subtechniques]}
            for t in threat.techniques
        ],
    }


def suppression_to_dict(suppression: AlertSuppression) -> dict[str, Any]:
    """An ``AlertSuppression`` in the JSON shape of Elastic's rule API."""
    out: dict[str, Any] = {
        "group_by": list(suppression.group_by),
        "missing_fields_strategy": suppression.missing_fields_strategy,
    }
    if suppression.duration is not None:
        out["duration"] = {"value": int(suppression.duration.total_seconds()), "unit": "s"}
    return out
