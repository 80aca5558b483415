"""Hostile KQL: compile time and per-event time stay bounded, errors stay clean.

tests/unit/kql/test_kql_properties.py already fuzzes short texts and KQL-like token
soup; here are the inputs built to be expensive: nesting far past the cap, queries of
hundreds of thousands of characters, wildcards and phrases that would backtrack, field
names that would blow up the field lookup, and event values built to be slow to test.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.kql import KqlSyntaxError, compile_filters, compile_query, parse
from consumer.kql.parser import MAX_DEPTH, MAX_FIELD_PARTS, MAX_QUERY_LENGTH

from .conftest import MIB, measured

pytestmark = pytest.mark.timeout(60)

LEVELS = 40_000  # tens of thousands, under the length cap
COMPILE_SECONDS = 6.0  # the costliest 100,000-character query: ~1.9 s here under tracemalloc
EVENT_SECONDS = 0.5  # one event against one hostile query


def _compiles_within(text: str) -> Callable[[Any], bool] | KqlSyntaxError:
    with measured() as cost:
        try:
            predicate = compile_query(text, now=lambda: 1_700_000_000.0)
        except KqlSyntaxError as exc:
            predicate = exc
    assert cost.seconds < COMPILE_SECONDS, f"{cost.seconds:.2f}s to compile"
    assert cost.peak < 256 * MIB, f"{cost.peak / MIB:.0f} MiB to compile"
    return predicate


def _error(text: str) -> KqlSyntaxError:
    result = _compiles_within(text)
    assert isinstance(result, KqlSyntaxError), "expected a syntax error"
    assert 0 <= result.position <= len(text)
    assert result.line >= 1 and result.column >= 1
    return result


@pytest.mark.parametrize(
    "text",
    [
        "(" * LEVELS + "a:1" + ")" * LEVELS,
        "a:{" * (LEVELS // 2) + "b:1" + "}" * (LEVELS // 2),
        "a:" + "(" * LEVELS + "1" + ")" * LEVELS,
        "(" * LEVELS,
        "a:{" * LEVELS,
        "(" * (MAX_DEPTH + 1) + "a:1" + ")" * (MAX_DEPTH + 1),
        "(" * 500_000,  # past the length cap too: either refusal is fine, quickly
    ],
    ids=["parens", "nested", "value-groups", "unclosed", "unclosed-nested", "cap+1", "huge"],
)
def test_deep_nesting_is_refused_at_the_cap(text: str) -> None:
    err = _error(text)
    if len(text) <= MAX_QUERY_LENGTH:
        assert "nested too deeply" in err.reason
        assert err.position <= 3 * (MAX_DEPTH + 1)
    else:
        assert "nested too deeply" in err.reason or "longer than" in err.reason


def test_nesting_at_the_cap_compiles() -> None:
    text = "(" * MAX_DEPTH + "a:1" + ")" * MAX_DEPTH
    predicate = _compiles_within(text)
    assert not isinstance(predicate, KqlSyntaxError)
    assert predicate({"a": 1}) is True


def test_brackets_inside_quotes_do_not_count_towards_depth() -> None:
    predicate = _compiles_within('a:"' + "(" * LEVELS + '"')
    assert not isinstance(predicate, KqlSyntaxError)
    assert predicate({"a": "(" * LEVELS}) is True


def _chain(op: str, count: int, term: Callable[[int], str]) -> str:
    return f" {op} ".join(term(i) for i in range(count))


LONG_QUERIES = {
    "or-same-field": lambda n: _chain("or", n, lambda i: f"a:{i}"),
    "or-fields": lambda n: _chain("or", n, lambda i: f"f{i}:v"),
    "and-fields": lambda n: _chain("and", n, lambda i: f"f{i}:v"),
    "and-of-or": lambda n: _chain("and", n // 2, lambda i: f"(f{i}:v or g:{i})"),
    "nots": lambda n: "not " * n + "a:1",
    "value-or": lambda n: "a:(" + _chain("or", n, str) + ")",
    "value-nots": lambda n: "a:(" + "not " * n + "1)",
    "words": lambda n: "a:" + " x" * n,
    "escapes": lambda n: "a:" + "\\u0041" * n,
    "wildcards": lambda n: "a:" + "*x" * n,
    "free-text": lambda n: _chain("or", n, lambda i: f"w{i}"),
}


# Full length for the shapes that cost most per character; a quarter for the others.
FULL_LENGTH = {"and-of-or", "or-fields", "free-text"}


@pytest.mark.parametrize("name", list(LONG_QUERIES))
def test_longest_accepted_queries_compile_and_run_in_bounded_time(name: str) -> None:
    build = LONG_QUERIES[name]
    limit = MAX_QUERY_LENGTH if name in FULL_LENGTH else MAX_QUERY_LENGTH // 4
    count = 1
    while len(build(count * 2)) <= limit:
        count *= 2
    text = build(count)
    assert len(text) > limit // 2
    predicate = _compiles_within(text)
    assert not isinstance(predicate, KqlSyntaxError), predicate
    events = [
        {"a": "x" * 1000, "g": 3, "message": "w1 x " * 100},
        {f"f{i}": "w" for i in range(200)},
        {f"random{i}": "v" for i in range(2000)},  # new paths: no per-path rebuild
    ]
    for event in events:
        start = time.perf_counter()
        assert predicate(event) in (True, False)
        assert time.perf_counter() - start < EVENT_SECONDS, event.keys()


@pytest.mark.parametrize("name", ["or-same-field", "nots", "words", "escapes"])
def test_queries_over_the_length_cap_are_refused(name: str) -> None:
    build = LONG_QUERIES[name]
    count = 1
    while len(build(count)) <= MAX_QUERY_LENGTH:
        count *= 2
    err = _error(build(count))
    assert "longer than" in err.reason


@pytest.mark.parametrize(
    "field",
    [
        ".".join(["a"] * (MAX_FIELD_PARTS + 1)),
        ".".join(["a"] * 5000),
        "f" * 1025,
        "*." * 5000 + "x",
    ],
    ids=["parts+1", "5000-parts", "long", "wild-parts"],
)
def test_absurd_field_names_are_refused(field: str) -> None:
    err = _error(f"{field}:x")
    assert "field name" in err.reason
    err = _error(f"outer:{{ {field}:x }}")
    assert "field name" in err.reason


def test_field_names_at_the_caps_compile_quickly() -> None:
    predicate = _compiles_within(
        ".".join(["abcdefghijklmnopqrstuvwxyz0123"] * MAX_FIELD_PARTS)[:1024] + ":x"
    )
    assert not isinstance(predicate, KqlSyntaxError)


# -- per event: values built to be slow ------------------------------------------------

EVENT_CASES = [
    # Numeric tests parse event strings as numbers: a long digit run must fail linearly.
    ("process.pid:42", {"process": {"pid": "1" * 500_000 + "x"}}, False),
    ("process.pid >= 42", {"process": {"pid": "1" * 500_000 + "x"}}, False),
    ("a:1", {"a": "1" * 500_000 + "e"}, False),
    # A long phrase against a long message: linear, not words x phrase length.
    ('message:"' + " ".join(["a"] * 20_000) + ' b"', {"message": "a " * 400_000}, False),
    ('message:"' + " ".join(["a"] * 20_000) + '"', {"message": "a " * 400_000}, True),
    # Wildcards: segments found left to right, never backtracked.
    ("a:" + "*a" * 200 + "*b", {"a": "a" * 1_000_000}, False),
    ("message:" + "*a" * 200 + "*b", {"message": "a" * 500_000}, False),
    ("process.name.caseless:" + "*A" * 200 + "*B", {"process": {"name": "a" * 1_000_000}}, False),
    ("*:" + "*a" * 100 + "*b", {f"k{i}": "a" * 2000 for i in range(200)}, False),
    # Dates, IPs and CIDRs from event strings of absurd size.
    ("@timestamp >= now-1d", {"@timestamp": "9" * 500_000}, False),
    ("@timestamp:2024-01-01", {"@timestamp": "2024-01-01T" + "0" * 500_000}, False),
    ("source.ip:10.0.0.0/8", {"source": {"ip": "1" * 500_000}}, False),
    # Huge numbers (JSON allows 4,300 digits) against numeric, date and range tests.
    ("process.pid:42", {"process": {"pid": 10**4000}}, False),
    ("process.pid > 1", {"process": {"pid": -(10**4000)}}, False),
    ("@timestamp < now", {"@timestamp": 10**4000}, False),
    ("process.pid:1e308", {"process": {"pid": 1e308}}, True),
]


@pytest.mark.parametrize(("query", "event", "expected"), EVENT_CASES)
def test_hostile_event_values_are_tested_in_bounded_time(
    query: str, event: dict[str, Any], expected: bool
) -> None:
    predicate = compile_query(query, now=lambda: 1_700_000_000.0)
    start = time.perf_counter()
    assert predicate(event) is expected
    assert time.perf_counter() - start < EVENT_SECONDS


def test_wide_and_deep_events_are_walked_without_recursion_errors() -> None:
    deep: Any = "kextunload"
    for _ in range(50_000):
        deep = {"a": deep}
    wide = {f"k{i}": i for i in range(200_000)}
    for query in ("kextunload", "*:x", "a.a.a:kextunload", "k5:5", "not k5:5", "x:{ a:1 }"):
        predicate = compile_query(query)
        for event in ({"a": deep}, wide):
            start = time.perf_counter()
            assert predicate(event) in (True, False)
            assert time.perf_counter() - start < 2.0


def test_filter_wildcards_do_not_backtrack() -> None:
    """Kibana filter pills carry Elasticsearch wildcard syntax; ``*a*a*...*b`` as a
    backtracking regex took exponential time on a value of a's."""
    pattern = "*a" * 30 + "*b"
    filters = [{"query": {"wildcard": {"process.command_line": {"value": pattern}}}}]
    predicate = compile_filters(filters)
    assert predicate is not None
    start = time.perf_counter()
    assert predicate({"process": {"command_line": "a" * 200_000}}) is False
    assert predicate({"process": {"command_line": "a" * 200_000 + "b"}}) is True
    assert time.perf_counter() - start < EVENT_SECONDS


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet="ab?*\\", max_size=10),
    st.text(alphabet="ab*?\\", max_size=12),
    st.booleans(),
)
def test_filter_wildcards_agree_with_a_reference_matcher(
    pattern: str, value: str, fold: bool
) -> None:
    filters = [
        {
            "query": {
                "wildcard": {"f": {"value": pattern, "case_insensitive": fold}},
            }
        }
    ]
    predicate = compile_filters(filters)
    assert predicate is not None
    assert predicate({"f": value}) is _reference_wildcard(pattern, value)


def _reference_wildcard(pattern: str, value: str) -> bool:
    """Elasticsearch wildcard semantics by dynamic programming (no regex)."""
    tokens: list[str | None] = []  # None: "*", "\x00": "?", else a literal character
    chars = iter(pattern)
    for char in chars:
        if char == "\\":
            tokens.append(next(chars, "\\"))
        elif char == "*":
            tokens.append(None)
        elif char == "?":
            tokens.append("\x00")
        else:
            tokens.append(char)
    reach = {0}
    for char in value:
        nxt: set[int] = set()
        for i in _closure(reach, tokens):
            if i < len(tokens):
                token = tokens[i]
                if token is None:
                    nxt.add(i)
                elif token == "\x00" or token == char:
                    nxt.add(i + 1)
        reach = nxt
    return len(tokens) in _closure(reach, tokens)


def _closure(states: set[int], tokens: list[str | None]) -> set[int]:
    out = set(states)
    for i in sorted(states):
        j = i
        while j < len(tokens) and tokens[j] is None:
            j += 1
            out.add(j)
    return out


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=2000))
def test_arbitrary_unicode_parses_or_raises_a_positioned_error(text: str) -> None:
    try:
        parse(text)
    except KqlSyntaxError as exc:
        assert 0 <= exc.position <= len(text)
        assert str(exc).splitlines()[0].endswith(f"line {exc.line}, column {exc.column}")


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_text_with_lone_surrogates_parses_or_raises_a_positioned_error(text: str) -> None:
    try:
        parse(text + "\ud800")
    except KqlSyntaxError as exc:
        assert 0 <= exc.position <= len(text) + 1
