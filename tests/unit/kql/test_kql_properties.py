"""Property tests: any text parses or fails cleanly; compiled predicates never raise."""

from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer.kql import KqlSyntaxError, compile_query, parse, query_fields, required_literals

TOKENS = [
    "a", "f", "process.name", "process.pid", "@timestamp", "source.ip", "message",
    "process.name.caseless", "process.name.text", "user.*", "*", "x y", "1", "42.0", "-3",
    "true", "null", "now-1d/d", "2024-01-01", "10.0.0.0/8", '"fe80::/10"', "kextunload",
    ":", "(", ")", "{", "}", "<", "<=", ">", ">=", "and", "OR", "not", " ", "\n", "\t",
    '"', '"q w"', "\\", "\\*", "\\:", "\\u0041", "\\u00", "\\and", "a*b", "*c", "é",
]  # fmt: skip

kqlish = st.lists(st.sampled_from(TOKENS), max_size=30).map("".join)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["kextunload", "10.1.2.3", "::1", "2024-01-01T00:00:00Z", "1700000000000"]),
)
keys = st.one_of(
    st.sampled_from(["process", "name", "pid", "process.name", "f", "a", "user", "message"]),
    st.sampled_from(["@timestamp", "source", "ip", "source.ip", "x", "caseless", "text"]),
    st.text(max_size=5),
)
events = st.dictionaries(
    keys,
    st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
        max_leaves=20,
    ),
    max_size=6,
)


def _parse_or_syntax_error(text: str) -> None:
    start = time.perf_counter()
    try:
        parse(text)
        required_literals(text)
        query_fields(text)
    except KqlSyntaxError as err:
        assert 0 <= err.position <= len(text)
    assert time.perf_counter() - start < 1.0


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_parses_or_raises_syntax_error(text: str) -> None:
    _parse_or_syntax_error(text)


@settings(max_examples=600, deadline=None)
@given(kqlish)
def test_kql_like_text_parses_or_raises_syntax_error(text: str) -> None:
    _parse_or_syntax_error(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kqlish, st.lists(events, min_size=1, max_size=5))
def test_compiled_predicates_never_raise(text: str, batch: list[dict]) -> None:
    try:
        predicate = compile_query(text, now=lambda: 1_700_000_000.0)
    except KqlSyntaxError:
        return
    for event in batch:
        assert predicate(event) in (True, False)


QUERIES = [
    "process.name:kextunload",
    "f:(a or b*) and not g:c",
    "process.pid >= 3 or source.ip:10.0.0.0/8",
    "@timestamp > now-1d and message:error",
    "process.name.caseless:KEXT* or user:{ name:root and id:0 }",
    "*:x or x*",
    'process.*:"a b" and f:*',
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(QUERIES), events)
def test_fixed_queries_never_raise(text: str, event: dict) -> None:
    assert compile_query(text)(event) in (True, False)


def test_deeply_nested_event_does_not_raise() -> None:
    deep: object = "kextunload"
    for _ in range(5000):
        deep = [deep]
    event = {"process": {"name": deep}, "a": deep}
    assert compile_query("process.name:kextunload")(event) is True
    assert compile_query("kextunload")(event) is True
    assert compile_query("process.*:x")(event) is False
