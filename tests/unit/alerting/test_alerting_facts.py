"""Candidates that bring their facts and decode their event only for an alert."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from alerting_helpers import Clock, event, make_core, seed_rule

from consumer.alerting import ALERT, ALERT_UPDATE, RULE_STATUS, Candidate, UnreadableEvent
from consumer.alerting.facts import read_facts
from consumer.rules.model import AlertSuppression, Rule


def _stream() -> list[dict[str, Any]]:
    """Distinct events past a limit of 3, repeats, one without a time, two hosts."""
    events = [
        event(f"e{i}", f"2022-08-10T14:0{i % 5}:00Z", host={"name": f"h{i % 2}"}) for i in range(8)
    ]
    untimed = event(None, "not a time", host={"name": "h0"})
    return [*events, events[1], untimed, events[6], untimed]


def _outputs(rule: Rule, deferred: bool) -> tuple[list[Any], int]:
    """All outputs over ``_stream``, and how many times an event was decoded."""
    core = make_core(rule, Clock())
    decoded = 0

    def decoder(ev: dict[str, Any]) -> Callable[[], dict[str, Any]]:
        def decode() -> dict[str, Any]:
            nonlocal decoded
            decoded += 1
            return ev

        return decode

    outputs = []
    for i, ev in enumerate(_stream()):
        kafka_ms = 1_660_140_000_000 + i  # the time of the event without one
        source: dict[str, Any] = {"partition": 0, "offset": i, "kafka_timestamp_ms": kafka_ms}
        if deferred:
            facts = read_facts(rule, ev, kafka_ms)
            candidate = Candidate(rule, decoder(ev), "logs-x", **source, facts=facts)
        else:
            candidate = Candidate(rule, ev, "logs-x", **source)
        outputs.extend(core.process(candidate))
    return outputs, decoded


def test_deferred_candidates_give_the_same_outputs_and_decode_only_alerts() -> None:
    for rule in (
        seed_rule(timestamp_override=None, max_signals=3),
        seed_rule(
            timestamp_override=None,
            max_signals=3,
            alert_suppression=AlertSuppression(("host.name",), timedelta(hours=1), "suppress"),
        ),
    ):
        eager, _ = _outputs(rule, deferred=False)
        lazy, decoded = _outputs(rule, deferred=True)
        assert [(o.kind, o.key, o.value) for o in lazy] == [(o.kind, o.key, o.value) for o in eager]
        alerts = sum(o.kind == ALERT for o in eager)
        assert decoded == alerts and 0 < alerts < len(_stream())
        if rule.alert_suppression is not None:
            assert any(o.kind == ALERT_UPDATE for o in eager)


def test_an_event_that_cannot_be_decoded_for_its_alert_keeps_what_its_candidate_caused() -> None:
    rule = seed_rule(timestamp_override=None, max_signals=1)
    core = make_core(rule, Clock())
    for i in range(2):  # one alert, one cut: the window will close with a final status
        core.process(Candidate(rule, event(f"e{i}", f"2022-08-10T14:0{i}:00Z"), "logs-x"))

    def broken() -> dict[str, Any]:
        raise ValueError("invalid UTF-8 in host.name")

    later = event("e9", "2022-08-10T14:40:00Z")
    candidate = Candidate(rule, broken, "logs-x", facts=read_facts(rule, later, None))
    with pytest.raises(UnreadableEvent, match="invalid UTF-8") as caught:
        core.process(candidate)
    [status] = caught.value.outputs
    assert status.kind == RULE_STATUS and status.value["final"] is True
    assert status.value["limited"] == 1
    # Its window's one unit of budget stays spent; the next window alerts as usual.
    [cut] = core.process(Candidate(rule, event("e10", "2022-08-10T14:41:00Z"), "logs-x"))
    assert cut.kind == RULE_STATUS
    [alert] = core.process(Candidate(rule, event("e11", "2022-08-10T14:46:00Z"), "logs-x"))
    assert alert.kind == ALERT
