"""consumer.generator: determinism, identity, shape, timing, and what the labeled cases claim.

The seed query is checked with a small hand-written reference below, not with consumer.kql,
so these tests say what the generator promises independently of the KQL engine.
"""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from consumer.generator import (
    ATTACK_CASES,
    DEFAULT_START,
    NEAR_MISS_CASES,
    STREAM_ATTACK_CASES,
    STREAM_NEAR_MISS_CASES,
    expected_matches,
    generate_events,
    labeled_events,
    main,
    sample_events,
)
from consumer.samples import sample_events_path

KEXT_PATH = "/System/Library/Extensions/EndpointSecurity.kext"

# --------------------------------------------------------------------------------------------
# Reference semantics of the seed query (elastic-semantics.md §6): exact, case-sensitive
# keyword equality; a field may be a scalar or an array (any element matching is enough);
# nested objects and flattened dotted keys name the same field.
# --------------------------------------------------------------------------------------------


def _lookup(obj: Any, parts: list[str]) -> Iterator[Any]:
    if not parts:
        yield obj
        return
    if isinstance(obj, list):
        for item in obj:
            yield from _lookup(item, parts)
        return
    if not isinstance(obj, dict):
        return
    for i in range(1, len(parts) + 1):
        key = ".".join(parts[:i])
        if key in obj:
            yield from _lookup(obj[key], parts[i:])


def field_values(event: dict[str, Any], field: str) -> list[Any]:
    """Every leaf value of ``field``, arrays flattened."""
    out: list[Any] = []

    def add(value: Any) -> None:
        if isinstance(value, list):
            for v in value:
                add(v)
        else:
            out.append(value)

    for value in _lookup(event, field.split(".")):
        add(value)
    return out


def any_equals(event: dict[str, Any], field: str, *wanted: str) -> bool:
    return any(isinstance(v, str) and v in wanted for v in field_values(event, field))


def seed_query(event: dict[str, Any]) -> bool:
    """``event.category:process and event.type:(start or process_started) and
    process.name:kextunload and process.args:("<full path>" or "EndpointSecurity.kext")``."""
    return (
        any_equals(event, "event.category", "process")
        and any_equals(event, "event.type", "start", "process_started")
        and any_equals(event, "process.name", "kextunload")
        and any_equals(event, "process.args", KEXT_PATH, "EndpointSecurity.kext")
    )


def test_reference_check_itself() -> None:
    nested = {
        "event": {"category": ["process"], "type": "start"},
        "process": {"name": "kextunload", "args": ["kextunload", "EndpointSecurity.kext"]},
    }
    assert seed_query(nested)
    dotted = {
        "event.category": "process",
        "event.type": ["change", "process_started"],
        "process": {"name": "kextunload", "args": [KEXT_PATH]},
    }
    assert seed_query(dotted)
    assert not seed_query({**dotted, "process": {"name": "kextunload", "args": [KEXT_PATH + "/"]}})
    assert not seed_query({**dotted, "process": {"name": "Kextunload", "args": [KEXT_PATH]}})
    assert not seed_query({"process": nested["process"]})


# --------------------------------------------------------------------------------------------
# Determinism and identity
# --------------------------------------------------------------------------------------------


def _dump(events: list[dict[str, Any]]) -> list[str]:
    return [json.dumps(e, sort_keys=False) for e in events]


def test_same_seed_same_events() -> None:
    a = list(generate_events(2_000, seed=7, match_every=100))
    b = list(generate_events(2_000, seed=7, match_every=100))
    assert _dump(a) == _dump(b)


def test_other_seed_other_events() -> None:
    a = _dump(list(generate_events(50, seed=1)))
    b = _dump(list(generate_events(50, seed=2)))
    assert all(x != y for x, y in zip(a, b, strict=True))


def test_prefix_is_stable() -> None:
    """The first n events do not depend on how many are asked for."""
    assert (
        _dump(list(generate_events(100, seed=5))) == _dump(list(generate_events(300, seed=5)))[:100]
    )


def test_labeled_events_are_deterministic() -> None:
    a = {k: json.dumps(v.event) for k, v in labeled_events(seed=3).items()}
    b = {k: json.dumps(v.event) for k, v in labeled_events(seed=3).items()}
    assert a == b


def test_event_ids_are_unique_within_and_across_seeds() -> None:
    ids: list[str] = []
    for seed in (0, 1):
        ids += [e["event"]["id"] for e in generate_events(30_000, seed=seed, match_every=50)]
    assert len(set(ids)) == len(ids)


def test_events_are_independent_objects() -> None:
    a, b = list(generate_events(2, seed=0))
    a["host"]["os"]["type"] = "changed"
    a["event"]["category"].append("x")
    assert b["host"]["os"]["type"] != "changed"
    assert b["event"]["category"] == ["process"]


# --------------------------------------------------------------------------------------------
# Shape
# --------------------------------------------------------------------------------------------

COMMON_FIELDS = (
    "@timestamp",
    "agent.id",
    "agent.type",
    "agent.version",
    "ecs.version",
    "event.kind",
    "event.category",
    "event.type",
    "event.action",
    "event.id",
    "event.module",
    "event.dataset",
    "host.name",
    "host.id",
    "host.os.type",
    "host.os.family",
    "host.os.version",
    "user.id",
    "user.name",
    "process.pid",
    "process.entity_id",
    "process.name",
    "process.executable",
    "process.args",
    "process.args_count",
    "process.command_line",
    "process.parent.pid",
    "process.parent.entity_id",
)
DEFEND_FIELDS = (
    "data_stream.type",
    "data_stream.dataset",
    "data_stream.namespace",
    "elastic.agent.id",
    "event.sequence",
    "event.created",
    "group.id",
    "group.name",
    "process.code_signature.exists",
    "process.hash.sha256",
    "process.parent.name",
    "process.parent.executable",
)


def _has(event: dict[str, Any], dotted: str) -> bool:
    node: Any = event
    for part in dotted.split(".") if dotted != "@timestamp" else [dotted]:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def test_shape_of_stream_events() -> None:
    kinds = set()
    for event in generate_events(3_000, seed=11, match_every=100):
        missing = [f for f in COMMON_FIELDS if not _has(event, f)]
        assert not missing, (missing, event)
        agent = event["agent"]["type"]
        kinds.add(agent)
        if agent == "endpoint":
            missing = [f for f in DEFEND_FIELDS if not _has(event, f)]
            assert not missing, (missing, event)
            assert event["data_stream"]["dataset"] == "endpoint.events.process"
            assert event["event"]["module"] == "endpoint"
        else:
            assert agent == "auditbeat"
            assert event["@metadata"]["beat"] == "auditbeat"
            assert (event["event"]["module"], event["event"]["dataset"]) == ("system", "process")
        assert isinstance(event["event"]["category"], list)
        assert isinstance(event["event"]["type"], list)
        assert "ingested" not in event["event"]  # no ingest pipeline on the Kafka path
        proc = event["process"]
        assert isinstance(proc["args"], list)
        assert proc["args_count"] == len(proc["args"])
        assert proc["command_line"] == " ".join(proc["args"])
        assert event["event"]["kind"] == "event"
    assert kinds == {"endpoint", "auditbeat"}


def test_size_is_about_a_kilobyte_or_two() -> None:
    sizes = [len(json.dumps(e, separators=(",", ":"))) for e in generate_events(500, seed=4)]
    assert 1_000 <= sum(sizes) / len(sizes) <= 2_500


# --------------------------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------------------------


def _ticks(ts: str) -> int:
    """RFC 3339 UTC with any fraction length -> 100 ns ticks since the epoch (exact)."""
    assert ts.endswith("Z")
    whole, _, frac = ts[:-1].partition(".")
    base = datetime.fromisoformat(whole).replace(tzinfo=UTC)
    seconds = int((base - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds())
    return seconds * 10_000_000 + int((frac + "0000000")[:7])


def test_timestamps_start_at_start_and_follow_the_rate() -> None:
    start = datetime(2026, 1, 2, 3, 4, 5, 600_000, tzinfo=UTC)
    events = list(generate_events(5_001, seed=2, start=start, events_per_second=1000.0))
    ticks = [_ticks(e["@timestamp"]) for e in events]
    assert ticks[0] == _ticks("2026-01-02T03:04:05.6Z")
    assert all(b > a for a, b in itertools.pairwise(ticks))
    assert ticks[5_000] - ticks[0] == 5 * 10_000_000


def test_default_start_and_fast_rates_stay_monotonic() -> None:
    events = list(generate_events(3_000, seed=9, events_per_second=250_000.0))
    ticks = [_ticks(e["@timestamp"]) for e in events]
    assert ticks[0] == _ticks(DEFAULT_START.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    for agent in ("endpoint", "auditbeat"):
        own = [t for t, e in zip(ticks, events, strict=True) if e["agent"]["type"] == agent]
        assert all(b >= a for a, b in itertools.pairwise(own))
    # Auditbeat renders milliseconds (floored), so across agents order holds within 1 ms.
    assert all(b > a - 10_000 for a, b in itertools.pairwise(ticks))


def test_start_with_offset_is_converted_to_utc() -> None:
    start = datetime(2026, 6, 1, 12, 0, tzinfo=UTC) + timedelta(0)

    local = start.astimezone(timezone(timedelta(hours=2)))
    a = next(iter(generate_events(1, start=start)))["@timestamp"]
    b = next(iter(generate_events(1, start=local)))["@timestamp"]
    assert a == b == "2026-06-01T12:00:00.0000000Z"


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        generate_events(1, start=datetime(2026, 1, 1))  # naive
    with pytest.raises(ValueError):
        generate_events(1, events_per_second=0)
    with pytest.raises(ValueError):
        generate_events(1, match_every=0)
    with pytest.raises(ValueError):
        generate_events(-1)


# --------------------------------------------------------------------------------------------
# Matches in the stream
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("count", "match_every"), [(20_000, 1_000), (999, 100), (50, 7)])
def test_stream_has_exactly_the_expected_matches(count: int, match_every: int) -> None:
    events = list(generate_events(count, seed=1, match_every=match_every))
    hits = [i for i, e in enumerate(events) if seed_query(e)]
    assert len(hits) == expected_matches(count, match_every) == count // match_every
    assert all(i % match_every == match_every - 1 for i in hits)
    near = [e for i, e in enumerate(events) if i % match_every == match_every // 2]
    assert not any(seed_query(e) for e in near)


def test_stream_rotates_through_every_stream_case() -> None:
    n = len(STREAM_ATTACK_CASES) * len(STREAM_NEAR_MISS_CASES)
    events = list(generate_events(n * 10, seed=0, match_every=10))
    attacks = [events[i] for i in range(9, len(events), 10)]
    shapes = {(json.dumps(e["event"]["type"]), tuple(e["process"]["args"])) for e in attacks}
    assert len(shapes) == len(STREAM_ATTACK_CASES)
    misses = [events[i] for i in range(5, len(events), 10)]
    miss_shapes = {
        (e["process"]["name"], tuple(e["process"]["args"]), e["event"]["type"][0]) for e in misses
    }
    assert len(miss_shapes) == len(STREAM_NEAR_MISS_CASES)


def test_no_matches_without_match_every_and_all_with_one() -> None:
    assert not any(seed_query(e) for e in generate_events(5_000, seed=3, match_every=None))
    assert expected_matches(5_000, None) == 0
    assert all(seed_query(e) for e in generate_events(50, seed=3, match_every=1))


# --------------------------------------------------------------------------------------------
# Labeled cases
# --------------------------------------------------------------------------------------------


def test_labeled_cases_are_what_they_claim() -> None:
    cases = labeled_events(seed=0)
    assert list(cases) == [*ATTACK_CASES, *NEAR_MISS_CASES]
    assert len(ATTACK_CASES) >= 4 and len(NEAR_MISS_CASES) >= 6
    for name, case in cases.items():
        assert case.name == name
        assert case.matches == (name in ATTACK_CASES)
        assert seed_query(case.event) is case.matches, (name, case.event)
        assert case.description


def test_near_misses_are_near() -> None:
    """Each near miss fails exactly one clause of the seed query."""
    clauses = (
        lambda e: any_equals(e, "event.category", "process"),
        lambda e: any_equals(e, "event.type", "start", "process_started"),
        lambda e: any_equals(e, "process.name", "kextunload"),
        lambda e: any_equals(e, "process.args", KEXT_PATH, "EndpointSecurity.kext"),
    )
    for name in NEAR_MISS_CASES:
        event = labeled_events(seed=1)[name].event
        failing = [i for i, clause in enumerate(clauses) if not clause(event)]
        assert len(failing) == 1, (name, failing)


def test_named_shapes() -> None:
    cases = {k: v.event for k, v in labeled_events(seed=2).items()}
    assert cases["attack_full_path"]["process"]["args"] == ["kextunload", KEXT_PATH]
    assert cases["attack_bare_kext"]["process"]["args"] == ["kextunload", "EndpointSecurity.kext"]
    assert cases["attack_sudo_parent"]["process"]["parent"]["name"] == "sudo"
    assert cases["attack_auditbeat_process_started"]["event"]["type"] == ["process_started"]
    assert cases["attack_auditbeat_process_started"]["agent"]["type"] == "auditbeat"
    assert cases["attack_scalar_event_type"]["event"]["type"] == "process_started"
    flat = cases["attack_flattened_keys"]
    assert flat["process.name"] == "kextunload" and "process" not in flat and "event" not in flat
    assert cases["miss_uppercase_name"]["process"]["name"] == "KEXTUNLOAD"
    assert cases["miss_trailing_slash"]["process"]["args"][-1] == KEXT_PATH + "/"
    assert cases["miss_event_end"]["event"]["type"] == ["end"]
    assert cases["miss_command_line_as_one_arg"]["process"]["args"] == ["kextunload " + KEXT_PATH]
    assert cases["miss_kextstat"]["process"]["name"] == "kextstat"
    assert set(STREAM_ATTACK_CASES) <= set(ATTACK_CASES)
    assert "attack_flattened_keys" not in STREAM_ATTACK_CASES


# --------------------------------------------------------------------------------------------
# The packaged sample file
# --------------------------------------------------------------------------------------------


def _sample_lines() -> list[str]:
    return sample_events_path().read_text(encoding="utf-8").splitlines()


def test_sample_file_is_what_the_generator_writes() -> None:
    expected = [json.dumps(e, separators=(",", ":")) for e in sample_events()]
    assert _sample_lines() == expected


def test_sample_file_contents() -> None:
    events = [json.loads(line) for line in _sample_lines()]
    assert 280 <= len(events) <= 320
    matching = [e for e in events if seed_query(e)]
    ids = [field_values(e, "event.id")[0] for e in matching]
    assert len(matching) == len(ATTACK_CASES) + 1  # one redelivery
    assert len(set(ids)) == len(ATTACK_CASES)
    redelivered = [i for i in set(ids) if ids.count(i) == 2]
    assert len(redelivered) == 1
    twins = [e for e in matching if field_values(e, "event.id")[0] == redelivered[0]]
    assert twins[0] == twins[1]
    assert any("process.name" in e for e in matching)  # flattened dotted keys
    all_ids = [field_values(e, "event.id")[0] for e in events]
    assert len(set(all_ids)) == len(all_ids) - 1
    names = {field_values(e, "process.name")[0] for e in events}
    assert {"KEXTUNLOAD", "kextstat", "kextunload"} <= names


def test_cli_writes_ndjson(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    assert main(["--count", "5", "--seed", "4", "--match-every", "5"]) == 0
    lines = out.getvalue().splitlines()
    assert len(lines) == 5
    events = [json.loads(line) for line in lines]
    assert [seed_query(e) for e in events] == [False, False, False, False, True]
    assert events == json.loads(json.dumps(list(generate_events(5, seed=4, match_every=5))))
