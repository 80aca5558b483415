"""Save and restore: change records rebuild a core that decides exactly the same."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from alerting_helpers import Clock, event, seed_rule
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer.alerting import AlertingCore, Candidate, InMemoryState, StateRecord
from consumer.rules.model import AlertSuppression

BASE_MS = 1_660_140_000_000  # 2022-08-10T14:00:00Z

RULES = [
    seed_rule(timestamp_override=None, max_signals=3),
    seed_rule(
        rule_id="suppressed",
        name="Suppressed",
        max_signals=2,
        alert_suppression=AlertSuppression(("host.name",)),
    ),
    seed_rule(
        rule_id="suppressed-duration",
        name="Suppressed duration",
        max_signals=2,
        alert_suppression=AlertSuppression(("host.name",), timedelta(minutes=7), "doNotSuppress"),
    ),
]

step = st.fixed_dictionaries(
    {
        "rule": st.integers(0, len(RULES) - 1),
        "id": st.one_of(st.none(), st.integers(0, 15)),
        # Mostly within an hour, sometimes absurdly old or far in the future.
        "offset_s": st.one_of(st.integers(0, 3600), st.sampled_from([-(10**9), 10**9])),
        "ingested_s": st.one_of(st.none(), st.integers(0, 3600)),
        "host": st.one_of(st.none(), st.sampled_from(["a", "b", "c"])),
        "clock_s": st.integers(1800, 4000),
    }
)


def to_candidate(s: dict[str, Any], number: int) -> Candidate:
    ev = event(None if s["id"] is None else f"e{s['id']}", _iso(BASE_MS + s["offset_s"] * 1000))
    if s["id"] is None:
        ev["process"] = {"pid": number % 7}  # identity by content hash
    if s["ingested_s"] is not None:
        ev["event"]["ingested"] = _iso(BASE_MS + s["ingested_s"] * 1000)
    if s["host"] is not None:
        ev["host"] = {"name": s["host"]}
    return Candidate(RULES[s["rule"]], ev, "t", 0, number, BASE_MS + s["offset_s"] * 1000)


def _iso(ms: int) -> str:
    from consumer.alerting.event_time import to_iso

    return to_iso(max(ms, 0))


def drive(
    core: AlertingCore,
    clock: Clock,
    steps: list[dict[str, Any]],
    start: int,
    drain_every: int,
    sink: list[StateRecord],
) -> list[tuple[str, str, Any]]:
    outputs = []
    for number, s in enumerate(steps, start):
        clock.ms = BASE_MS + s["clock_s"] * 1000
        outputs.extend((o.kind, o.key, o.value) for o in core.process(to_candidate(s, number)))
        if drain_every and number % drain_every == 0:
            sink.extend(core.drain_state_changes())
    sink.extend(core.drain_state_changes())
    return outputs


def snapshot(state: InMemoryState) -> dict[str, Any]:
    return {ns: dict(state.items(ns)) for ns in state.namespaces()}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(step, min_size=1, max_size=60), data=st.data())
def test_restored_core_decides_like_the_unbroken_one(steps, data) -> None:
    split = data.draw(st.integers(0, len(steps)), label="split")
    drain_every = data.draw(st.integers(0, 5), label="drain_every")

    clock = Clock()
    unbroken = AlertingCore(RULES, clock=clock)
    expected = drive(unbroken, clock, steps, 0, 0, [])

    clock_b = Clock()
    before = AlertingCore(RULES, clock=clock_b)
    records: list[StateRecord] = []
    got = drive(before, clock_b, steps[:split], 0, drain_every, records)
    # The changelog as a compacted topic would hold it: shuffled keys, last write wins.
    records = data.draw(st.permutations(_compact(records)), label="records")
    clock_c = Clock()
    restored = AlertingCore.restore(records, RULES, clock=clock_c)
    got += drive(restored, clock_c, steps[split:], split, 0, [])

    assert got == expected
    assert snapshot(restored.state) == snapshot(unbroken.state)


def _compact(records: list[StateRecord]) -> list[StateRecord]:
    latest: dict[str, StateRecord] = {}
    for record in records:
        latest[record.key] = record
    return list(latest.values())


def test_uncompacted_changelog_with_tombstones_restores_too() -> None:
    rule = RULES[0]
    clock = Clock()
    core = AlertingCore([rule], clock=clock)
    records: list[StateRecord] = []
    for hour in (14, 15, 16):
        for i in range(5):
            core.process(Candidate(rule, event(f"{hour}-{i}", f"2022-08-10T{hour}:00:0{i}Z")))
        records.extend(core.drain_state_changes())
    assert any(r.value is None for r in records)  # swept identities and windows
    restored = AlertingCore.restore(records, [rule], clock=clock)
    assert snapshot(restored.state) == snapshot(core.state)
    assert all(isinstance(r.key, str) for r in records)
    assert all(r.value is None or isinstance(r.value, bytes) for r in records)


def test_drain_collapses_repeated_changes_to_one_record_per_key() -> None:
    rule = seed_rule(timestamp_override=None, max_signals=1)
    core = AlertingCore([rule], clock=Clock())
    for i in range(1000):
        core.process(Candidate(rule, event(f"e{i}", "2022-08-10T14:00:00Z")))
    records = core.drain_state_changes()
    assert len(records) == 3  # watermark, window budget, one identity
    assert core.drain_state_changes() == []
