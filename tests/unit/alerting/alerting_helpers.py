"""Shared helpers for the alerting tests: the seed rule, vectors, a settable clock."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from consumer.alerting import AlertingCore, Candidate, parse_timestamp
from consumer.rules.model import AttackEntry, Rule, Technique, Threat

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "alerting"


def load_vector(name: str) -> Any:
    """A JSON file from tests/vectors/alerting/."""
    return json.loads((VECTORS / name).read_text())


def seed_rule(**changes: Any) -> Rule:
    """The seed rule as the detection-rules TOML defines it (built without the loader)."""
    rule = Rule(
        rule_id="70fa1af4-27fd-4f26-bd03-50b6af6b9e24",
        name="Attempt to Unload Elastic Endpoint Security Kernel Extension",
        description=(
            "Identifies attempts to unload the Elastic Endpoint Security kernel extension "
            "via the kextunload command."
        ),
        type="query",
        language="kuery",
        query=(
            "event.category:process and event.type:(start or process_started) and\n"
            ' process.name:kextunload and process.args:("/System/Library/Extensions/'
            'EndpointSecurity.kext" or "EndpointSecurity.kext")\n'
        ),
        severity="high",
        risk_score=73,
        index=("auditbeat-*", "logs-endpoint.events.*"),
        version=3,
        interval="5m",
        from_="now-9m",
        max_signals=100,
        timestamp_override="event.ingested",
        threat=(
            Threat(
                "MITRE ATT&CK",
                AttackEntry(
                    "TA0005", "Defense Evasion", "https://attack.mitre.org/tactics/TA0005/"
                ),
                (
                    Technique(
                        "T1562",
                        "Impair Defenses",
                        "https://attack.mitre.org/techniques/T1562/",
                        (
                            AttackEntry(
                                "T1562.001",
                                "Disable or Modify Tools",
                                "https://attack.mitre.org/techniques/T1562/001/",
                            ),
                        ),
                    ),
                ),
            ),
            Threat(
                "MITRE ATT&CK",
                AttackEntry("TA0003", "Persistence", "https://attack.mitre.org/tactics/TA0003/"),
                (
                    Technique(
                        "T1547",
                        "Boot or Logon Autostart Execution",
                        "https://attack.mitre.org/techniques/T1547/",
                        (
                            AttackEntry(
                                "T1547.006",
                                "Kernel Modules and Extensions",
                                "https://attack.mitre.org/techniques/T1547/006/",
                            ),
                        ),
                    ),
                ),
            ),
        ),
        tags=("Elastic", "Host", "macOS", "Threat Detection", "Defense Evasion"),
        author=("Elastic",),
        license="Elastic License v2",
        references=(),
    )
    return replace(rule, **changes) if changes else rule


class Clock:
    """A settable clock in epoch seconds (the core's ``clock`` argument)."""

    def __init__(self, iso: str = "2022-08-10T15:00:00Z") -> None:
        self.ms = parse_timestamp(iso)

    def set(self, iso: str) -> None:
        self.ms = parse_timestamp(iso)

    def __call__(self) -> float:
        return self.ms / 1000


def event(event_id: str | None, ts: str, **fields: Any) -> dict[str, Any]:
    """A small matching event; ``ingested`` goes to ``event.ingested``."""
    ev: dict[str, Any] = {"@timestamp": ts, "event": {"category": ["process"], "kind": "event"}}
    if event_id is not None:
        ev["event"]["id"] = event_id
    ingested = fields.pop("ingested", None)
    if ingested is not None:
        ev["event"]["ingested"] = ingested
    ev.update(fields)
    return ev


def make_core(rule: Rule, clock: Clock | None = None, **options: Any) -> AlertingCore:
    """A core over ``rule`` with a fixed clock unless one is given."""
    return AlertingCore([rule], clock=clock or Clock(), **options)


def run(core: AlertingCore, rule: Rule, events: list[dict[str, Any]]) -> list[Any]:
    """Process events in order; return all outputs."""
    out = []
    for i, ev in enumerate(events):
        out.extend(core.process(Candidate(rule, ev, "logs-endpoint.events.process", 0, i)))
    return out


def kinds(outputs: list[Any]) -> list[str]:
    """The kinds of a list of outputs."""
    return [o.kind for o in outputs]
