"""Hostile rule files: every one is refused with file, line and cause, never a traceback.

tests/unit/rules/test_loaders.py covers the refusals a careless author meets; here the
files are broken on purpose: nesting past the parsers' recursion, numbers past the
interpreter's limits, durations that overflow, queries that would be expensive, bytes
that are not text, and generated garbage. ``load_rules`` must return (not raise), name
the file, give a line where the format has one, and stay quick.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer.errors import RuleLoadError
from consumer.kql.parser import MAX_QUERY_LENGTH
from consumer.rules import load_rules
from consumer.rules.loaders import MAX_RULE_FILE_BYTES

pytestmark = pytest.mark.timeout(60)

LEVELS = 50_000

TOML_HEAD = """\
[metadata]
creation_date = "2024/01/01"

[rule]
rule_id = "11111111-2222-3333-4444-555555555555"
name = "hostile"
description = "d"
type = "query"
language = "kuery"
severity = "low"
risk_score = 21
index = ["logs-endpoint.events.*"]
"""
QUERY_LINE = 'query = "process.name:kextunload"\n'


def _api_rule(**fields: Any) -> dict[str, Any]:
    rule = {
        "rule_id": "11111111-2222-3333-4444-555555555555",
        "name": "hostile",
        "description": "d",
        "type": "query",
        "language": "kuery",
        "severity": "low",
        "risk_score": 21,
        "index": ["logs-endpoint.events.*"],
        "query": "process.name:kextunload",
    }
    return rule | fields


def _refusal(path: Path) -> RuleLoadError:
    """The one refusal of ``path``; it must name the file and come quickly."""
    start = time.perf_counter()
    result = load_rules([path])
    assert time.perf_counter() - start < 5.0
    assert not result.rules, "a hostile rule was loaded"
    assert len(result.failures) == 1, [str(f) for f in result.failures]
    refusal = result.failures[0]
    assert refusal.path == str(path)
    assert str(refusal).startswith(f"{path}:")
    assert len(str(refusal)) < 2000, "a refusal is a short message, not the file echoed"
    return refusal


def _write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# -- malformed files --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "line", "cause"),
    [
        ("arrays.toml", "a = " + "[" * LEVELS + "]" * LEVELS + "\n", 1, "nested too deeply"),
        ("tables.toml", "a = " + "{b=" * LEVELS + "1" + "}" * LEVELS, 1, "nested too deeply"),
        ("late.toml", TOML_HEAD + "x = " + "[" * LEVELS, 13, "nested too deeply"),
        ("nul.toml", "\x00\x00", 1, "not valid TOML"),
        ("dup.toml", TOML_HEAD + 'name = "again"\n', 13, "not valid TOML"),
        ("unterminated.toml", TOML_HEAD + 'query = """\n' + "x" * 10_000, None, "not valid TOML"),
        ("noquery.toml", "[metadata]\n", 1, "no [rule] table"),
        ("deep.ndjson", "{}\n" + '{"a":' * LEVELS + "1" + "}" * LEVELS + "\n", 2, "nested"),
        ("bigint.ndjson", '{"risk_score":' + "1" * 5000 + "}\n", 1, "4300 digits"),
        ("nan.ndjson", json.dumps(_api_rule(risk_score=float("nan"))) + "\n", 1, "risk_score"),
        ("truncated.ndjson", json.dumps(_api_rule())[:-5] + "\n", 1, "not valid JSON"),
        ("array.ndjson", "[1, 2]\n", 1, "must be a JSON object"),
        ("deep.json", "[" * LEVELS + "]" * LEVELS, 1, "nested too deeply"),
        ("bigint.json", '{\n"a":\n' + "1" * 5000 + "}", 3, "4300 digits"),
        ("latin1.toml", TOML_HEAD.encode() + b'note = "caf\xe9"\n', 13, "not UTF-8"),
        ("utf16.ndjson", json.dumps(_api_rule()).encode("utf-16"), 1, "not UTF-8"),
    ],
)
def test_malformed_files_are_refused_with_line_and_cause(
    tmp_path: Path, name: str, text: str | bytes, line: int | None, cause: str
) -> None:
    refusal = _refusal(_write(tmp_path, name, text))
    assert cause in refusal.cause, refusal.cause
    assert refusal.line == line


def test_oversized_file_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.ndjson"
    with path.open("wb") as out:  # sparse: no disk or memory used
        out.truncate(MAX_RULE_FILE_BYTES + 1)
    refusal = _refusal(path)
    assert "more than" in refusal.cause and refusal.line == 1


def test_one_bad_line_does_not_hide_the_good_ones(tmp_path: Path) -> None:
    good = json.dumps(_api_rule())
    bad = '{"a":' * LEVELS
    path = _write(tmp_path, "mixed.ndjson", f"{bad}\n{good}\n")
    result = load_rules([path])
    assert [r.name for r in result.rules] == ["hostile"]
    assert [(f.line, f.cause) for f in result.failures] == [
        (1, "not valid JSON: nested too deeply")
    ]


# -- absurd values ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "cause"),
    [
        ("max_signals = 0", "max_signals must be between 1 and 1000"),
        ("max_signals = 1001", "max_signals must be between 1 and 1000"),
        ("max_signals = 9223372036854775807", "max_signals must be between 1 and 1000"),
        ("max_signals = -9223372036854775808", "max_signals must be between 1 and 1000"),
        ("max_signals = inf", "max_signals must be an integer"),
        ("max_signals = nan", "max_signals must be an integer"),
        ("max_signals = 1e3", "max_signals must be an integer"),
        ('max_signals = "100"', "max_signals must be an integer"),
        ("max_signals = true", "max_signals must be an integer"),
        ('interval = "0s"', "interval must be between 1s and 1d"),
        ('interval = "2d"', "interval must be between 1s and 1d"),
        ('interval = "99999999999999999999999999d"', "interval is out of range"),
        ('interval = "' + "9" * 5000 + 's"', "interval is out of range"),
        ('interval = "' + "0" * 5000 + '5m"', None),  # leading zeros: five minutes
        ('interval = "-5m"', "interval is not a duration"),
        ('interval = "5 minutes"', "interval is not a duration"),
        ('interval = "\u0665m"', "interval is not a duration"),  # Arabic-Indic digit
        ('from = "now-99999999999999999999d"', "from is out of range"),
        ('from = "now-8d"', "exceeds 7 days"),
        ('from = "now+5m"', "from is not a relative time"),
        ('to = "now-10m"', "must be earlier than to"),
        ("risk_score = 101", "risk_score must be between 0 and 100"),
        ("risk_score = -1", "risk_score must be between 0 and 100"),
        ('severity = "apocalyptic"', "severity must be one of"),
        ("version = 0", "version must be a positive integer"),
    ],
)
def test_absurd_values_are_refused_on_their_line(
    tmp_path: Path, setting: str, cause: str | None
) -> None:
    key = setting.split("=")[0].strip()
    head = "\n".join(line for line in TOML_HEAD.splitlines() if not line.startswith(key + " "))
    path = _write(tmp_path, "absurd.toml", head + "\n" + QUERY_LINE + setting + "\n")
    if cause is None:
        assert load_rules([path]).rules
        return
    refusal = _refusal(path)
    assert cause in refusal.cause, refusal.cause
    lines = path.read_text(encoding="utf-8").splitlines()
    if key in ("max_signals", "interval", "risk_score", "severity", "version", "from"):
        assert refusal.line == lines.index(setting) + 1, refusal


def test_absurd_suppression_duration_is_refused(tmp_path: Path) -> None:
    text = (
        TOML_HEAD
        + QUERY_LINE
        + '\n[rule.alert_suppression]\ngroup_by = ["host.name"]\n'
        + 'duration = {value = 99999999999999999999, unit = "d"}\n'
    )
    refusal = _refusal(_write(tmp_path, "suppression.toml", text))
    assert "out of range" in refusal.cause


# -- queries that would be expensive -----------------------------------------------------


@pytest.mark.parametrize(
    ("query", "cause"),
    [
        ("(" * 40_000 + "a:1" + ")" * 40_000, "nested too deeply"),
        ("a:{" * 1000 + "b:1" + "}" * 1000, "nested too deeply"),
        (" or ".join(f"a:{i}" for i in range(20_000)), "longer than"),
        (".".join(["a"] * 5000) + ":x", "field name"),
    ],
    ids=["deep", "nested", "huge", "field-parts"],
)
def test_expensive_queries_are_refused_on_the_query_line(
    tmp_path: Path, query: str, cause: str
) -> None:
    text = TOML_HEAD + "query = '''\n" + query + "\n'''\n"
    refusal = _refusal(_write(tmp_path, "expensive.toml", text))
    assert "query does not parse" in refusal.cause and cause in refusal.cause
    assert refusal.line == TOML_HEAD.count("\n") + 2  # the first line of the query
    ndjson = _write(tmp_path, "expensive.ndjson", "\n" + json.dumps(_api_rule(query=query)))
    refusal = _refusal(ndjson)
    assert cause in refusal.cause and refusal.line == 2


def test_pathological_wildcards_load_and_match_in_bounded_time(tmp_path: Path) -> None:
    """Not refused (Kibana accepts them), but they cost linear time per event."""
    query = "process.command_line:" + "*a" * 500 + "*b or process.name:" + "*x?" * 200
    filters = [{"query": {"wildcard": {"process.executable": {"value": "*a" * 40 + "*b"}}}}]
    path = _write(tmp_path, "wild.ndjson", json.dumps(_api_rule(query=query, filters=filters)))
    result = load_rules([path])
    assert len(result.rules) == 1, [str(f) for f in result.failures]
    from consumer.detection import Detector

    detector = Detector(result.rules)
    event = {"process": {"command_line": "a" * 300_000, "executable": "a" * 300_000}}
    start = time.perf_counter()
    assert detector.matching_rules(event) == []
    assert time.perf_counter() - start < 1.0


def test_query_just_under_the_length_cap_loads(tmp_path: Path) -> None:
    query = " or ".join(f"process.name:p{i}" for i in range(MAX_QUERY_LENGTH // 25))
    assert len(query) <= MAX_QUERY_LENGTH
    path = _write(tmp_path, "long.ndjson", json.dumps(_api_rule(query=query)))
    start = time.perf_counter()
    assert len(load_rules([path]).rules) == 1
    assert time.perf_counter() - start < 5.0


# -- generated garbage -------------------------------------------------------------------


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=400), st.sampled_from(["toml", "ndjson", "json"]))
def test_arbitrary_bytes_are_loaded_or_refused(tmp_path: Path, content: bytes, suffix: str) -> None:
    path = _write(tmp_path, f"garbage.{suffix}", content)
    result = load_rules([path])
    for refusal in result.refused:
        assert refusal.path == str(path)
        assert refusal.line is None or refusal.line >= 1


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=15,
)
_rule_keys = st.sampled_from(
    ["rule_id", "name", "type", "language", "query", "severity", "risk_score", "index",
     "interval", "from", "to", "max_signals", "version", "threat", "filters",
     "alert_suppression", "timestamp_override", "tags"]
)  # fmt: skip


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.dictionaries(_rule_keys, _json_values, max_size=6))
def test_rules_with_arbitrary_field_values_are_loaded_or_refused(
    tmp_path: Path, overrides: dict[str, Any]
) -> None:
    """Every field of a valid rule replaced by any JSON value: a rule or a refusal."""
    path = _write(tmp_path, "fields.ndjson", json.dumps(_api_rule(**overrides)))
    result = load_rules([path])
    assert len(result.rules) + len(result.refused) == 1
    for refusal in result.refused:
        assert refusal.line == 1


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(max_size=300))
def test_toml_with_arbitrary_text_after_a_valid_rule(tmp_path: Path, tail: str) -> None:
    path = _write(tmp_path, "tail.toml", TOML_HEAD + QUERY_LINE + tail)
    result = load_rules([path])
    assert len(result.rules) + len(result.refused) == 1
