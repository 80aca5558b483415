"""required_literals and query_fields, and the soundness of the literals."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer.kql import (
    KEY,
    KEY_PART,
    PART,
    VALUE,
    Literal,
    compile_query,
    known_fields,
    may_match,
    query_fields,
    required_literals,
)

from ..paths import held_paths

SEED = (
    "event.category:process and event.type:(start or process_started) and\n"
    ' process.name:kextunload and process.args:("/System/Library/Extensions/EndpointSecurity.kext"'
    ' or "EndpointSecurity.kext")'
)


def _values(*texts: str) -> frozenset[Literal]:
    return frozenset(Literal(t, VALUE) for t in texts)


def test_seed_literals() -> None:
    literals = required_literals(SEED)
    assert _values("kextunload") in literals
    both = _values("/System/Library/Extensions/EndpointSecurity.kext", "EndpointSecurity.kext")
    assert literals[0] == both
    # With keys, the strong values still come first; the fields' keys follow them.
    keyed = required_literals(SEED, keys=True)
    assert keyed[0] == both
    assert frozenset({Literal("name", KEY)}) in keyed


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ()),
        ("not process.name:kextunload", ()),
        ("message:kextunload", ()),
        ("process.name.caseless:kextunload", ()),
        ("process.name.text:kextunload", ()),
        ("source.ip:10.0.0.0/8", ()),
        ("process.pid:42", ()),
        ("custom:42", ()),
        ("custom:true", ()),
        ("process.name > abc", ()),
        ("process.name:*", ()),
        ("kextunload", ()),
        ("process.*:kextunload", ()),
        ("process.name:kext*load", (frozenset({Literal("kext", PART)}),)),
        ("process.name:a or file.name:bb", (_values("a", "bb"),)),
        ("process.name:a or message:bb", ()),
        ("process.name:(abc and not xyz)", (_values("abc"),)),
        ("user:{ name:root and not id:x }", (_values("root"),)),
        ("(process.name:abc and file.name:defg) or process.name:hi", (_values("defg", "hi"),)),
    ],
)
def test_literals(query: str, expected: tuple) -> None:
    assert required_literals(query) == expected


@pytest.mark.parametrize(
    ("query", "first"),
    [
        ("not process.name:kextunload", None),
        ("message:kextunload", {Literal("message", KEY)}),
        ("process.name.caseless:kextunload", {Literal("name", KEY)}),
        ("process.name.text:kextunload", {Literal("name", KEY)}),
        ("process.pid > 100", {Literal("pid", KEY)}),
        ("process.name:*", {Literal("name", KEY_PART)}),  # may be in a dotted key
        ("kextunload", None),
        ("process.*:kextunload", None),
        ("process.name:abc", {Literal("abc", VALUE)}),
        (
            "event.category:process and powershell.file.script_block_text:Get-Clipboard",
            {Literal("script_block_text", KEY)},
        ),
        ("process.name:a or message:bb", {Literal("a", VALUE), Literal("message", KEY)}),
        ("user:{ id:x1 and not name:y }", {Literal("x1", VALUE)}),
    ],
)
def test_literals_with_keys(query: str, first: set | None) -> None:
    found = required_literals(query, keys=True)
    assert (found[0] if found else None) == (frozenset(first) if first else None)


def test_known_fields_are_none_where_a_query_reads_fields_it_does_not_name() -> None:
    assert known_fields(SEED) == query_fields(SEED)
    assert known_fields("a:1 and not b:{ c:2 }") == {"a", "b", "b.c"}
    assert known_fields("process.*:kextunload") is None  # a wildcard in a field name
    assert known_fields("a:1 or kextunload") is None  # a value without a field: any field
    assert known_fields("a:{ b*:1 }") is None


def test_query_fields() -> None:
    assert query_fields(SEED) == {"event.category", "event.type", "process.name", "process.args"}
    assert query_fields("a:1 or not (b < 2 or c:{ d:1 and e:{ f:* } }) or free") == {
        "a",
        "b",
        "c",
        "c.d",
        "c.e",
        "c.e.f",
    }


def _contents(event: object) -> tuple[list[str], list[str]]:
    """The event's scalar values (non-strings as JSON) and its keys."""
    values: list[str] = []
    keys: list[str] = []
    stack = [event]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            keys.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif item is not None:
            values.append(item if isinstance(item, str) else json.dumps(item, ensure_ascii=False))
    return values, keys


def _holds(event: object, literal: Literal) -> bool:
    values, keys = _contents(event)
    if literal.kind == VALUE:
        return literal.text in values
    if literal.kind == PART:
        return any(literal.text in value for value in values)
    if literal.kind == KEY_PART:
        return any(literal.text in key for key in keys)
    return any(key.endswith(literal.text) for key in keys)


# Queries whose matches need fields in a branch only, or under a negation.
MAY_MATCH_QUERIES = [
    "file.name:defg or not user.name:root",
    "user:{ name:root } or process.name:hi",
    "not (process.name:abc and f:ab)",
    "process.parent.name:* and user.id:(x1 or y2)",
    "proc*:{ name:(abc or hi) }",
]

SOUNDNESS_QUERIES = [
    SEED,
    "process.name:kext* and process.args:(*EndpointSecurity* or -b)",
    "(process.name:abc and file.name:defg) or process.name:hi",
    "f:(ab or cd) and not g:ef",
    "user:{ name:root* and id:(x1 or y2) }",
    "process.parent.name:launchd and process.name:(a*b or c)",
]
WORDS = [
    "kextunload", "KEXTUNLOAD", "EndpointSecurity.kext", "/x/EndpointSecurity.kext", "-b",
    "start", "process", "process_started", "abc", "defg", "hi", "ab", "cd", "ef", "root",
    "rootkit", "x1", "y2", "launchd", "axb", "ab", "c", 42, True, None,
]  # fmt: skip
KEYS = [
    "event", "category", "type", "process", "name", "args", "file", "f", "g", "user", "id",
    "parent", "process.name", "event.type", "process.parent.name", "user.name",
]  # fmt: skip
values = st.recursive(
    st.sampled_from(WORDS),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner),
    max_leaves=12,
)
events = st.dictionaries(st.sampled_from(KEYS), values, max_size=6)


# Field paths each query reads, with values that make it match: events built around
# them match often, so soundness is checked on many positives, not only negatives.
NEAR = {
    "event.category": ["process"],
    "event.type": ["start", "process_started"],
    "process.name": ["kextunload", "abc", "hi", "kextXunload", "axxb", "c"],
    "process.args": [
        "EndpointSecurity.kext",
        "-b",
        "/System/Library/Extensions/EndpointSecurity.kext",
    ],
    "process.parent.name": ["launchd"],
    "file.name": ["defg"],
    "f": ["ab", "cd"],
    "g": ["ef", "x"],
    "user.name": ["root", "rootkit"],
    "user.id": ["x1", "y2"],
}


@st.composite
def near_events(draw: st.DrawFn) -> dict:
    event: dict = {}
    for path, good in NEAR.items():
        if not draw(st.booleans()):
            continue
        value = draw(st.sampled_from([*good, *WORDS]))
        if draw(st.booleans()):
            value = [value, draw(st.sampled_from(WORDS))]
        parts = path.split(".")
        split = draw(st.integers(min_value=1, max_value=len(parts)))
        node = event
        for part in parts[: split - 1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        else:
            node[".".join(parts[split - 1 :])] = value
    return event


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SOUNDNESS_QUERIES), events | near_events())
def test_required_literals_are_sound(query: str, event: dict) -> None:
    if not compile_query(query)(event):
        return
    for keys in (False, True):
        for alternatives in required_literals(query, keys=keys):
            assert any(_holds(event, lit) for lit in alternatives), alternatives


def test_required_literals_are_sound_on_vectors() -> None:
    path = Path(__file__).resolve().parents[2] / "vectors" / "kql_cases.toml"
    cases = tomllib.loads(path.read_text(encoding="utf-8"))["cases"]
    checked = 0
    for case in cases:
        if not case["expected"]:
            continue
        event = json.loads(case["event"])
        for alternatives in required_literals(case["query"], keys=True):
            checked += 1
            assert any(_holds(event, lit) for lit in alternatives), case["name"]
    assert checked > 20


def test_a_value_spelled_like_a_field_name_is_a_weak_anchor_where_keys_are_spelled() -> None:
    # "kernel" also ends host.os.kernel: in JSON its needle would be found as that key.
    query = "foo.activity:kernel and process.name:abc"
    assert required_literals(query)[0] == {Literal("kernel", VALUE)}
    assert required_literals(query, keys=True)[0] == {Literal("abc", VALUE)}


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SOUNDNESS_QUERIES + MAY_MATCH_QUERIES), events | near_events())
def test_a_query_that_matches_an_event_may_match_one_with_its_fields(
    query: str, event: dict
) -> None:
    if compile_query(query)(event):
        assert may_match(query, held_paths(event).__contains__)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("url.path:*", False),
        ("process.name:x", True),
        ("url.path:x or process.name:y", True),
        ("url.path:x and process.name:y", False),
        ("not url.path:x", True),
        ("process:{ name: x }", True),
        ("url:{ path: x }", False),
        ("process.name.text:x", True),  # a multi-field reads its parent
        ("http.response.status_code >= 400", False),
        ("kextunload", True),  # free text: any field
        ("url.*:x", True),  # a wildcard field name: any field
        ("proc*:{ name: x }", True),  # ... also of a nested query
    ],
)
def test_may_match_asks_for_the_fields_every_match_needs(query: str, expected: bool) -> None:
    present = {"process", "process.name", "event", "event.category"}.__contains__
    assert may_match(query, present) is expected
