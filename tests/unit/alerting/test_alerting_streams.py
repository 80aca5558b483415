"""Event-stream cases from tests/vectors/alerting/streams.json, run through AlertingCore."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from alerting_helpers import Clock, load_vector, seed_rule

from consumer.alerting import ALERT, RULE_STATUS, AlertingCore, Candidate
from consumer.rules.model import AlertSuppression, Rule

CASES = load_vector("streams.json")["cases"]


def case_rule(changes: dict[str, Any]) -> Rule:
    """The seed rule with a case's changes."""
    changes = dict(changes)
    suppression = changes.pop("alert_suppression", None)
    if suppression is not None:
        duration = suppression.get("duration_s")
        changes["alert_suppression"] = AlertSuppression(
            group_by=tuple(suppression["group_by"]),
            duration=timedelta(seconds=duration) if duration else None,
            missing_fields_strategy=suppression.get("missing_fields_strategy", "suppress"),
        )
    return seed_rule(**changes)


def step_event(step: dict[str, Any]) -> dict[str, Any]:
    """The event a step describes."""
    ev: dict[str, Any] = {"event": {"category": ["process"], "kind": "event"}}
    if step.get("id") is not None:
        ev["event"]["id"] = step["id"]
    if step.get("ts") is not None:
        ev["@timestamp"] = step["ts"]
    if step.get("ingested") is not None:
        ev["event"]["ingested"] = step["ingested"]
    ev.update(step.get("fields", {}))
    return ev


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_stream_case(case: dict[str, Any]) -> None:
    rule = case_rule(case.get("rule", {}))
    clock = Clock(case.get("clock", "2022-08-10T15:00:00Z"))
    options: dict[str, Any] = {}
    if "horizon_s" in case:
        options["horizon"] = timedelta(seconds=case["horizon_s"])
    if "future_skew_s" in case:
        options["future_skew"] = timedelta(seconds=case["future_skew_s"])
    core = AlertingCore([rule], clock=clock, **options)
    for number, step in enumerate(case["steps"]):
        if "clock" in step:
            clock.set(step["clock"])
        outputs = core.process(
            Candidate(rule, step_event(step), "t", 0, number, step.get("kafka_ts"))
        )
        where = f"step {number}: {step}"
        assert [o.kind for o in outputs] == step["expect"], where
        for output in outputs:
            if output.kind == ALERT:
                for flag in ("late", "clamped"):
                    if flag in step:
                        assert output.value[f"kibana.alert.streaming.{flag}"] is step[flag], where
            if output.kind == RULE_STATUS and "final" in step:
                assert output.value["final"] is step["final"], where
    counters = core.counters[rule.uuid].as_dict()
    for name, expected in case.get("counters", {}).items():
        assert counters[name] == expected, f"counter {name}: {counters}"
