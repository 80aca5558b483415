"""required_literals and query_fields, and the soundness of the literals."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer.kql import compile_query, query_fields, required_literals

SEED = (
    "event.category:process and event.type:(start or process_started) and\n"
    ' process.name:kextunload and process.args:("/System/Library/Extensions/EndpointSecurity.kext"'
    ' or "EndpointSecurity.kext")'
)


def test_seed_literals() -> None:
    literals = required_literals(SEED)
    assert frozenset({"kextunload"}) in literals
    assert (
        frozenset({"/System/Library/Extensions/EndpointSecurity.kext", "EndpointSecurity.kext"})
        in literals
    )
    assert literals[0] == frozenset(
        {"/System/Library/Extensions/EndpointSecurity.kext", "EndpointSecurity.kext"}
    )


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
        ("process.name:kext*load", (frozenset({"kext"}),)),
        ("process.name:a or file.name:bb", (frozenset({"a", "bb"}),)),
        ("process.name:a or message:bb", ()),
        ("process.name:(abc and not xyz)", (frozenset({"abc"}),)),
        ("user:{ name:root and not id:x }", (frozenset({"root"}),)),
        (
            "(process.name:abc and file.name:defg) or process.name:hi",
            (frozenset({"defg", "hi"}),),
        ),
    ],
)
def test_literals(query: str, expected: tuple) -> None:
    assert required_literals(query) == expected


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


def _scalar_texts(event: object) -> list[str]:
    out: list[str] = []
    stack = [event]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif item is not None:
            out.append(item if isinstance(item, str) else json.dumps(item, ensure_ascii=False))
    return out


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
    texts = _scalar_texts(event)
    for alternatives in required_literals(query):
        assert any(lit in text for lit in alternatives for text in texts), alternatives


def test_required_literals_are_sound_on_vectors() -> None:
    path = Path(__file__).resolve().parents[2] / "vectors" / "kql_cases.toml"
    cases = tomllib.loads(path.read_text(encoding="utf-8"))["cases"]
    checked = 0
    for case in cases:
        if not case["expected"]:
            continue
        texts = _scalar_texts(json.loads(case["event"]))
        for alternatives in required_literals(case["query"]):
            checked += 1
            assert any(lit in t for lit in alternatives for t in texts), case["name"]
    assert checked > 20
