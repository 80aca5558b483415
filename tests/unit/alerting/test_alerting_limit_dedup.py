"""The budget and dedup promises at volume, the status record, and bounded state."""

from __future__ import annotations

from alerting_helpers import Clock, event, make_core, run, seed_rule

from consumer.alerting import (
    ALERT,
    MAX_SIGNALS_WARNING,
    RULE_STATUS,
    AlertingCore,
    Candidate,
    InMemoryState,
)

WINDOW_A = "2022-08-10T14:0{}:{:02d}.{:03d}Z"


def distinct(count: int, minute: int = 0, prefix: str = "e") -> list[dict]:
    """``count`` distinct events inside the window starting at 14:00 (or 14:05)."""
    return [
        event(
            f"{prefix}{i}", WINDOW_A.format(minute + (i // 60_000) % 5, (i // 1000) % 60, i % 1000)
        )
        for i in range(count)
    ]


def test_exactly_100_of_1000_then_100_more_in_next_window() -> None:
    rule = seed_rule(timestamp_override=None)
    core = make_core(rule)
    outputs = run(core, rule, distinct(1000, 0, "a"))
    alerts = [o for o in outputs if o.kind == ALERT]
    statuses = [o for o in outputs if o.kind == RULE_STATUS]
    assert len(alerts) == 100
    # First come, first served: the first 100 candidates of the window.
    assert [a.value["kibana.alert.original_event.id"] for a in alerts] == [
        f"a{i}" for i in range(100)
    ]
    assert len(statuses) == 1
    status = statuses[0].value
    assert status["message"] == MAX_SIGNALS_WARNING
    assert status["kibana.alert.rule.execution.status"] == "partial failure"
    assert (status["alerts"], status["limited"], status["final"]) == (100, 1, False)
    assert status["window"] == {
        "start": "2022-08-10T14:00:00.000Z",
        "end": "2022-08-10T14:05:00.000Z",
    }
    assert outputs.index(statuses[0]) == 100  # emitted with the 101st candidate

    outputs = run(core, rule, distinct(1000, 5, "b"))
    assert sum(o.kind == ALERT for o in outputs) == 100
    assert sum(o.kind == RULE_STATUS for o in outputs) == 1
    counters = core.counters[rule.uuid]
    assert (counters.matched, counters.alerts, counters.limited) == (2000, 200, 1800)


def test_duplicates_never_consume_budget() -> None:
    rule = seed_rule(timestamp_override=None, max_signals=3)
    core = make_core(rule)
    first = distinct(2)
    outputs = run(core, rule, [*first, *first, *first, *first, *distinct(3, 0, "z")])
    kinds = [o.kind for o in outputs]
    # 2 alerts, 6 duplicates, then 1 more alert fits the budget of 3, then the cut.
    assert kinds == [ALERT, ALERT, ALERT, RULE_STATUS]
    assert core.counters[rule.uuid].duplicates == 6


def test_limited_candidates_are_not_remembered() -> None:
    """A candidate cut by the budget is counted again if it comes again (not a duplicate)."""
    rule = seed_rule(timestamp_override=None, max_signals=1)
    core = make_core(rule)
    run(core, rule, distinct(2))
    run(core, rule, distinct(2)[1:])
    counters = core.counters[rule.uuid]
    assert (counters.alerts, counters.limited, counters.duplicates) == (1, 2, 0)


def test_realert_past_horizon_has_same_alert_id() -> None:
    rule = seed_rule(timestamp_override=None)
    core = make_core(rule)
    [first] = run(core, rule, [event("e1", "2022-08-10T14:00:00Z")])
    run(core, rule, [event("e2", "2022-08-10T14:30:00Z")])
    [again] = run(core, rule, [event("e1", "2022-08-10T14:00:00Z")])
    assert again.key == first.key
    assert again.value["kibana.alert.streaming.late"] is True


def test_state_is_flat_in_input_volume() -> None:
    """100 or 100,000 matches in one window leave the same number of state entries."""
    sizes = {}
    for count in (100, 100_000):
        rule = seed_rule(timestamp_override=None)
        state = InMemoryState()
        core = AlertingCore([rule], state=state, clock=Clock())
        for ev in distinct(count):
            core.process(Candidate(rule, ev))
        core.drain_state_changes()
        sizes[count] = state.size()
    # 100 identities + 1 window + 1 watermark, whatever the volume.
    assert sizes[100] == sizes[100_000] == 102


def test_state_is_swept_as_windows_close() -> None:
    rule = seed_rule(timestamp_override=None)
    state = InMemoryState()
    core = AlertingCore([rule], state=state, clock=Clock("2030-01-01T00:00:00Z"))
    for hour in range(10, 20):
        for i in range(50):
            core.process(Candidate(rule, event(f"h{hour}-{i}", f"2022-08-10T{hour}:00:{i:02d}Z")))
    # Only the last hour's window is within the horizon: its 50 identities, 1 window, 1 mark.
    assert state.size() == 52


def test_horizon_is_configurable() -> None:
    from datetime import timedelta

    rule = seed_rule(timestamp_override=None)
    core = make_core(rule, horizon=timedelta(hours=1))
    run(core, rule, [event("e1", "2022-08-10T14:00:00Z"), event("e2", "2022-08-10T14:30:00Z")])
    # 30 minutes back is within a 1h horizon: neither late nor re-alerted.
    assert run(core, rule, [event("e1", "2022-08-10T14:00:00Z")]) == []
    assert core.counters[rule.uuid].late == 0


def test_rules_are_independent() -> None:
    one = seed_rule(timestamp_override=None, max_signals=1)
    two = seed_rule(timestamp_override=None, max_signals=1, rule_id="other-rule", name="Other")
    core = AlertingCore([one, two], clock=Clock())
    ev = event("e1", "2022-08-10T14:00:00Z")
    assert [o.kind for o in core.process(Candidate(one, ev))] == [ALERT]
    assert [o.kind for o in core.process(Candidate(two, ev))] == [ALERT]
    assert set(core.summary()) == {one.uuid, two.uuid}
