"""consumer.produce and the pure parts of consumer.demo: the plan, pacing, keys, the CLI.

No broker here: ``produce_events`` against Kafka is in tests/integration/test_generate.py.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from datetime import UTC, datetime

import pytest

from consumer.codecs import EventCodec, decode_event, default_codec, default_schema_dir
from consumer.demo import DemoOptions, DemoResult, add_demo_parser, alert_line, demo_plan
from consumer.generator import generate_events
from consumer.kql import compile_query
from consumer.produce import (
    DUPLICATE_LAG,
    EventPlan,
    PlanCounts,
    PlanSpec,
    ProduceStats,
    TokenBucket,
    add_generate_parser,
    encoder_for,
    event_key,
    slot_kind,
    summary_line,
    with_duplicates,
)
from consumer.rules import builtin_rules_path, load_rules

START = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def seed_query():
    (rule,) = load_rules([builtin_rules_path()]).rules
    return compile_query(rule.query)


# --------------------------------------------------------------------------- slot_kind


def test_slot_kind_follows_the_generator_schedule(seed_query) -> None:
    events = list(generate_events(1000, match_every=100, start=START))
    kinds = [slot_kind(i, 100) for i in range(1000)]
    assert [i for i, k in enumerate(kinds) if k == "attack"] == list(range(99, 1000, 100))
    assert [i for i, k in enumerate(kinds) if k == "near_miss"] == list(range(50, 1000, 100))
    # The label is what the seed rule decides, not just a position.
    assert [seed_query(e) for e in events] == [k == "attack" for k in kinds]


@pytest.mark.parametrize("every", [None, 0])
def test_slot_kind_without_attacks(every: int | None) -> None:
    assert {slot_kind(i, every) for i in range(50)} == {"benign"}


def test_slot_kind_every_event_an_attack() -> None:
    assert {slot_kind(i, 1) for i in range(5)} == {"attack"}


# --------------------------------------------------------------------------- with_duplicates


def test_with_duplicates_resends_every_nth_after_the_lag() -> None:
    out = list(with_duplicates(range(20), every=5, lag=2))
    assert [(i, d) for i, _, d in out if d] == [(4, True), (9, True), (14, True), (19, True)]
    order = [i for i, _, _ in out]
    # Re-sent right after the item ``lag`` positions later; the last one after the end.
    assert order[:9] == [0, 1, 2, 3, 4, 5, 6, 4, 7]
    assert order[-2:] == [19, 19]
    assert [i for i, _, d in out if not d] == list(range(20))


def test_with_duplicates_yields_the_same_item() -> None:
    items = [{"n": n} for n in range(6)]
    out = list(with_duplicates(items, every=3, lag=1))
    dups = [(i, item) for i, item, d in out if d]
    assert [item is items[i] for i, item in dups] == [True, True]


def test_with_duplicates_lag_zero_follows_immediately() -> None:
    order = [(i, d) for i, _, d in with_duplicates(range(4), every=2, lag=0)]
    assert order == [(0, False), (1, False), (1, True), (2, False), (3, False), (3, True)]


@pytest.mark.parametrize("every", [None, 0])
def test_with_duplicates_off(every: int | None) -> None:
    assert [d for _, _, d in with_duplicates(range(10), every)] == [False] * 10


def test_with_duplicates_is_lazy() -> None:
    def endless():
        n = 0
        while True:
            yield n
            n += 1

    stream = with_duplicates(endless(), every=2, lag=DUPLICATE_LAG)
    taken = [next(stream) for _ in range(100)]
    assert len(taken) == 100


def test_with_duplicates_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="every"):
        list(with_duplicates(range(3), every=-1))
    with pytest.raises(ValueError, match="lag"):
        list(with_duplicates(range(3), every=1, lag=-1))


# --------------------------------------------------------------------------- EventPlan


def test_plan_counts_attacks_near_misses_and_duplicates(seed_query) -> None:
    plan = EventPlan(PlanSpec(count=2000, match_every=250, duplicate_every=50, start=START))
    events = list(plan)
    counts = plan.counts
    assert (counts.events, counts.distinct, counts.duplicates) == (2040, 2000, 40)
    assert (counts.attacks, counts.near_misses, counts.attack_duplicates) == (8, 8, 8)
    assert plan.expected_attacks == 8
    assert plan.expected_records == len(events)
    # What the seed rule matches: each attack twice (original and re-send), nothing else.
    matched = Counter(e["event"]["id"] for e in events if seed_query(e))
    assert len(matched) == 8
    assert set(matched.values()) == {2}
    ids = Counter(e["event"]["id"] for e in events)
    assert sum(n - 1 for n in ids.values()) == 40


def test_plan_is_deterministic_for_a_given_start() -> None:
    spec = PlanSpec(count=300, seed=7, match_every=100, duplicate_every=30, start=START)
    first = [json.dumps(e) for e in EventPlan(spec)]
    assert first == [json.dumps(e) for e in EventPlan(spec)]


def test_plan_event_time_follows_the_rate() -> None:
    spec = PlanSpec(count=5, duplicate_every=None, start=START, events_per_second=4.0)
    stamps = [e["@timestamp"] for e in EventPlan(spec)]
    assert stamps[0].startswith("2026-12-04T09:00:00.000")
    assert stamps[4].startswith("2026-12-04T09:00:01.000")


def test_plan_defaults_start_to_now() -> None:
    before = datetime.now(UTC)
    (event,) = EventPlan(PlanSpec(count=1, duplicate_every=None))
    stamp = datetime.fromisoformat(event["@timestamp"][:23] + "+00:00")
    assert abs((stamp - before).total_seconds()) < 5


def test_plan_counts_what_was_taken_when_stopped_early() -> None:
    plan = EventPlan(PlanSpec(count=1000, match_every=100, duplicate_every=None, start=START))
    for n, _ in enumerate(plan, start=1):
        if n == 250:
            break
    assert (plan.counts.events, plan.counts.attacks) == (250, 2)


@pytest.mark.parametrize(
    "kwargs", [{"count": -1}, {"count": 1, "match_every": -2}, {"count": 1, "duplicate_every": -1}]
)
def test_plan_spec_rejects_negatives(kwargs) -> None:
    with pytest.raises(ValueError):
        PlanSpec(**kwargs)


# --------------------------------------------------------------------------- TokenBucket


def test_bucket_allows_a_burst_then_paces() -> None:
    bucket = TokenBucket(rate=100.0, now=0.0, burst=10)
    assert [bucket.take(0.0) for _ in range(10)] == [0.0] * 10
    assert bucket.take(0.0) == pytest.approx(0.01)
    assert bucket.take(0.0) == pytest.approx(0.02)  # debt accumulates


def test_bucket_long_run_rate_with_a_fake_clock() -> None:
    clock = 0.0
    bucket = TokenBucket(rate=1000.0, now=clock)
    for _ in range(5000):
        wait = bucket.take(clock)
        if wait >= 0.002:  # sleeps shorter than this are skipped, as produce_events does
            clock += wait
    # 5000 records at 1000/s: 5 s less the initial burst (100 tokens), give or take a sleep.
    assert 4.85 <= clock <= 4.91


def test_bucket_refills_only_up_to_capacity() -> None:
    bucket = TokenBucket(rate=10.0, now=0.0, burst=2)
    bucket.take(0.0)
    bucket.take(0.0)
    assert bucket.take(100.0) == 0.0  # refilled to 2, not to 1000
    assert bucket.take(100.0) == 0.0
    assert bucket.take(100.0) == pytest.approx(0.1)


def test_bucket_rate_zero_never_waits() -> None:
    bucket = TokenBucket(rate=0.0, now=0.0)
    assert {bucket.take(0.0) for _ in range(1000)} == {0.0}


def test_bucket_tolerates_a_clock_going_backwards() -> None:
    bucket = TokenBucket(rate=10.0, now=5.0, burst=1)
    bucket.take(5.0)
    assert bucket.take(4.0) == pytest.approx(0.1)


# --------------------------------------------------------------------------- keys, encoders


def test_event_key_is_the_host_name() -> None:
    assert event_key({"host": {"name": "mbp-eng-001"}}) == b"mbp-eng-001"
    assert event_key({"host.name": "ip-10-30-0-5"}) == b"ip-10-30-0-5"
    assert event_key({"host": {"hostname": "x"}}) is None
    assert event_key({}) is None


def test_encoders_round_trip_through_the_codec() -> None:
    events = list(generate_events(200, match_every=20, start=START))
    raw_codec = EventCodec.from_schema_dir(
        default_schema_dir(), raw_writer_schema="ecs_process_event"
    )
    for event in events:
        assert decode_event(encoder_for("json")(event)) == event
        framed = encoder_for("avro")(event)
        assert framed[:5] == b"\x00\x00\x00\x00\x01"  # Confluent magic byte, schema id 1
        decoded = default_codec().decode(framed)
        assert decoded["event"]["id"] == event["event"]["id"]
        assert decoded["process"]["args"] == event["process"]["args"]
        raw = encoder_for("avro-raw")(event)
        assert raw == framed[5:]
        assert raw_codec.decode(raw, format="avro") == decoded


def test_encoder_for_refuses_unknown_formats() -> None:
    with pytest.raises(ValueError, match="format"):
        encoder_for("xml")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- command lines


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(required=True)
    add_generate_parser(commands)
    add_demo_parser(commands)
    return parser


def test_generate_parser_defaults_and_options() -> None:
    args = _parser().parse_args(["generate", "--bootstrap-servers", "b:9092"])
    assert (args.topic, args.rate, args.count, args.format) == (
        "logs-endpoint.events.process-default",
        1000.0,
        10_000,
        "json",
    )
    assert (args.match_every, args.duplicate_every, args.start) == (2500, 500, None)
    assert callable(args.command)
    args = _parser().parse_args(
        ["generate", "--rate", "0", "--format", "avro-raw", "--start", "2026-12-04T09:00:00"]
    )
    assert args.rate == 0.0
    assert args.format == "avro-raw"
    assert args.start == START  # no offset: UTC


@pytest.mark.parametrize(
    "argv",
    [
        ["generate", "--rate", "-1"],
        ["generate", "--count", "x"],
        ["generate", "--format", "xml"],
        ["generate", "--start", "yesterday"],
    ],
)
def test_generate_parser_refuses_bad_values(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(argv)


def test_demo_parser_defaults() -> None:
    args = _parser().parse_args(["demo"])
    assert (args.count, args.rate, args.attacks) == (20_000, 4000.0, 8)
    assert callable(args.command)


def test_summary_line_names_every_count() -> None:
    plan = EventPlan(PlanSpec(count=100, match_every=10, duplicate_every=10, start=START))
    list(plan)
    line = summary_line(plan.counts, ProduceStats(110, 2000, 0, 1.25), "t", "json")
    for part in ("events=110", "attacks=10", "duplicates=10", "bytes=2000", "seconds=1.25"):
        assert part in line


# --------------------------------------------------------------------------- demo helpers


def test_demo_plan_default_mix() -> None:
    plan = demo_plan(DemoOptions(), start=START)
    assert (plan.spec.match_every, plan.spec.duplicate_every) == (2500, 500)
    assert plan.expected_attacks == 8
    assert plan.expected_records == 20_040


@pytest.mark.parametrize("count", [80, 1000, 1234, 20_000, 100_000])
def test_demo_plan_resends_every_attack(count: int) -> None:
    spec = demo_plan(DemoOptions(count=count)).spec
    assert spec.match_every % spec.duplicate_every == 0  # so every attack is re-sent
    assert 8 <= count // spec.match_every <= 10


def test_alert_line_shows_time_host_user_reason_and_id() -> None:
    alert = {
        "@timestamp": "2026-12-04T09:00:05.000Z",
        "kibana.alert.original_time": "2026-12-04T09:00:01.234Z",
        "kibana.alert.uuid": "0123456789abcdef0123",
        "kibana.alert.reason": "process event with process kextunload, by root on mbp-1",
        "host": {"name": "mbp-1"},
        "user": {"name": "root"},
    }
    line = alert_line(alert)
    for part in ("09:00:01.234", "mbp-1", "root", "kextunload", "[0123456789ab]"):
        assert part in line
    assert "ALERT" in alert_line({})  # nothing to show still gives a line


def test_demo_result_counts_suppressed_duplicates() -> None:
    sent = PlanCounts(attacks=8, attack_duplicates=8)
    result = DemoResult(sent=sent, alerts=8, alert_records=8)
    assert result.duplicates_suppressed == 8
    assert result.ok
    repeated = DemoResult(sent=sent, alerts=8, alert_records=10)
    assert repeated.duplicates_suppressed == 6
    assert not repeated.ok
