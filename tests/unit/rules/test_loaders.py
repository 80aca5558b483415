"""Loading rules from detection-rules TOML and Kibana export NDJSON."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from consumer.errors import RuleLoadError, UnsupportedRuleError
from consumer.rules import builtin_rules_path, load_rules, load_toml_rule

SEED_ID = "70fa1af4-27fd-4f26-bd03-50b6af6b9e24"
SEED_QUERY = (
    "event.category:process and event.type:(start or process_started) and\n"
    ' process.name:kextunload and process.args:("/System/Library/Extensions/EndpointSecurity.kext"'
    ' or "EndpointSecurity.kext")\n'
)


def _seed_export_line() -> dict:
    entry = lambda i, n, r: {"id": i, "name": n, "reference": r}  # noqa: E731
    return {
        "id": "5b1c1c9e-1111-4e0a-9d0e-3f2f1e6c7a01",
        "rule_id": SEED_ID,
        "name": "Attempt to Unload Elastic Endpoint Security Kernel Extension",
        "description": "Identifies attempts to unload the Elastic Endpoint Security kernel "
        "extension via the kextunload command.",
        "type": "query",
        "language": "kuery",
        "index": ["auditbeat-*", "logs-endpoint.events.*"],
        "query": SEED_QUERY,
        "filters": [],
        "interval": "5m",
        "from": "now-9m",
        "to": "now",
        "max_signals": 100,
        "severity": "high",
        "risk_score": 73,
        "timestamp_override": "event.ingested",
        "threat": [
            {
                "framework": "MITRE ATT&CK",
                "tactic": entry(
                    "TA0005", "Defense Evasion", "https://attack.mitre.org/tactics/TA0005/"
                ),
                "technique": [
                    {
                        **entry(
                            "T1562", "Impair Defenses", "https://attack.mitre.org/techniques/T1562/"
                        ),
                        "subtechnique": [
                            entry(
                                "T1562.001",
                                "Disable or Modify Tools",
                                "https://attack.mitre.org/techniques/T1562/001/",
                            )
                        ],
                    }
                ],
            },
            {
                "framework": "MITRE ATT&CK",
                "tactic": entry(
                    "TA0003", "Persistence", "https://attack.mitre.org/tactics/TA0003/"
                ),
                "technique": [
                    {
                        **entry(
                            "T1547",
                            "Boot or Logon Autostart Execution",
                            "https://attack.mitre.org/techniques/T1547/",
                        ),
                        "subtechnique": [
                            entry(
                                "T1547.006",
                                "Kernel Modules and Extensions",
                                "https://attack.mitre.org/techniques/T1547/006/",
                            )
                        ],
                    }
                ],
            },
        ],
        "tags": ["Elastic", "Host", "macOS", "Threat Detection", "Defense Evasion"],
        "author": ["Elastic"],
        "license": "Elastic License v2",
        "references": [],
        "false_positives": [],
        "version": 3,
        "enabled": True,
        "exceptions_list": [],
    }


EXPORT_SUMMARY = {"exported_count": 1, "exported_rules_count": 1, "missing_rules": []}

TOML_RULE = """\
[metadata]
creation_date = "2024/01/01"

[rule]
author = ["Us"]
description = "Test rule."
from = "now-6m"
index = ["logs-*"]
language = "kuery"
license = "Apache-2.0"
name = "Test rule"
risk_score = 21
rule_id = "00000000-0000-4000-8000-000000000001"
severity = "low"
type = "query"
query = '''
process.name:curl and
  process.args:(
'''
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_builtin_seed_rule_has_every_field_of_the_seed_document() -> None:
    result = load_rules([builtin_rules_path()])
    assert result.refused == []
    [rule] = result.rules
    assert rule.rule_id == SEED_ID
    assert rule.name == "Attempt to Unload Elastic Endpoint Security Kernel Extension"
    assert rule.version == 3
    assert rule.type == "query" and rule.language == "kuery"
    assert rule.query == SEED_QUERY
    assert rule.index == ("auditbeat-*", "logs-endpoint.events.*")
    assert rule.interval_span == timedelta(minutes=5)
    assert rule.lookback == timedelta(minutes=9)
    assert rule.max_signals == 100
    assert (rule.severity, rule.risk_score) == ("high", 73)
    assert rule.timestamp_override == "event.ingested"
    assert rule.tags == ("Elastic", "Host", "macOS", "Threat Detection", "Defense Evasion")
    assert rule.author == ("Elastic",)
    assert rule.license == "Elastic License v2"
    tactics = [(t.tactic.id, t.tactic.name) for t in rule.threat]
    assert tactics == [("TA0005", "Defense Evasion"), ("TA0003", "Persistence")]
    techniques = [(t.techniques[0].id, t.techniques[0].subtechniques[0].id) for t in rule.threat]
    assert techniques == [("T1562", "T1562.001"), ("T1547", "T1547.006")]


def test_kibana_export_loads_the_same_rule_as_the_toml(tmp_path: Path) -> None:
    lines = [json.dumps(_seed_export_line()), json.dumps(EXPORT_SUMMARY)]
    path = _write(tmp_path, "export.ndjson", "\n".join(lines) + "\n")
    result = load_rules([path])
    assert result.refused == []
    [exported] = result.rules
    [builtin] = load_rules([builtin_rules_path()]).rules
    assert exported.id == "5b1c1c9e-1111-4e0a-9d0e-3f2f1e6c7a01"
    assert exported.uuid == exported.id
    # Equal in everything Elastic's engine reads, the saved-object id aside.
    assert exported.parameters() == builtin.parameters()
    assert exported.threat == builtin.threat


def test_rule_without_saved_object_id_has_a_stable_uuid() -> None:
    [rule] = load_rules([builtin_rules_path()]).rules
    [again] = load_rules([builtin_rules_path()]).rules
    assert rule.id is None
    assert rule.uuid == again.uuid
    assert len(rule.uuid) == 36


def test_version_defaults_to_one_when_the_toml_has_none(tmp_path: Path) -> None:
    text = TOML_RULE.replace("  process.args:(\n", "  process.args:wget\n")
    rule = load_toml_rule(text, "rule.toml")
    assert rule.version == 1
    assert rule.interval == "5m" and rule.from_ == "now-6m" and rule.max_signals == 100


def test_bad_query_is_refused_with_file_line_and_cause(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.toml", TOML_RULE)
    [failure] = load_rules([path]).failures
    assert failure.path == str(path)
    # The query starts on line 17; the unclosed "(" leaves it ending early, on line 19.
    assert failure.line == 19
    assert "query does not parse" in failure.cause
    assert str(failure).startswith(f"{path}:19: ")


def test_malformed_toml_is_refused_with_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "broken.toml", '[rule]\nname = "x"\nseverity = \n')
    [failure] = load_rules([path]).failures
    assert failure.line == 3
    assert "not valid TOML" in failure.cause


@pytest.mark.parametrize(
    ("replace", "by", "key_line", "words"),
    [
        ('severity = "low"', 'severity = "urgent"', 14, "severity must be one of"),
        ("risk_score = 21", "risk_score = 210", 12, "risk_score must be between 0 and 100"),
        ('from = "now-6m"', 'from = "yesterday"', 7, "not a relative time"),
        ('index = ["logs-*"]', 'index = ["-logs-test*"]', 8, "exclusion"),
    ],
)
def test_invalid_field_is_refused_at_its_line(
    tmp_path: Path, replace: str, by: str, key_line: int, words: str
) -> None:
    text = TOML_RULE.replace("  process.args:(\n", "  process.args:wget\n").replace(replace, by)
    path = _write(tmp_path, "rule.toml", text)
    [failure] = load_rules([path]).failures
    assert words in failure.cause
    assert failure.line == key_line


def test_absurd_max_signals_and_interval_are_refused(tmp_path: Path) -> None:
    base = TOML_RULE.replace("  process.args:(\n", "  process.args:wget\n")
    for extra, words in [
        ("max_signals = 100000\n", "max_signals must be between 1 and 1000"),
        ('interval = "90d"\n', "interval must be between 1s and 1d"),
    ]:
        text = base.replace("[rule]\n", "[rule]\n" + extra)
        with pytest.raises(RuleLoadError, match=words):
            load_toml_rule(text, "rule.toml")


def test_missing_required_field_is_named(tmp_path: Path) -> None:
    text = TOML_RULE.replace("  process.args:(\n", "  process.args:wget\n")
    text = text.replace('rule_id = "00000000-0000-4000-8000-000000000001"\n', "")
    with pytest.raises(RuleLoadError, match="missing required field 'rule_id'"):
        load_toml_rule(text, "rule.toml")


def test_directory_skips_other_rule_types_with_a_reason(tmp_path: Path) -> None:
    good = TOML_RULE.replace("  process.args:(\n", "  process.args:wget\n")
    _write(tmp_path, "a/good.toml", good)
    eql = good.replace('type = "query"', 'type = "eql"').replace(
        'language = "kuery"', 'language = "eql"'
    )
    eql = eql.replace(
        "00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002"
    )
    _write(tmp_path, "b/nested/eql.toml", eql)
    lucene = good.replace('language = "kuery"', 'language = "lucene"')
    lucene = lucene.replace(
        "00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000003"
    )
    _write(tmp_path, "b/lucene.toml", lucene)
    result = load_rules([tmp_path])
    assert [r.name for r in result.rules] == ["Test rule"]
    assert result.failures == []
    reasons = sorted(s.cause for s in result.skipped)
    assert "query language 'lucene' is not supported" in reasons[0]
    assert "rule type 'eql' is not supported" in reasons[1]
    assert all(isinstance(s, UnsupportedRuleError) for s in result.skipped)


def test_other_rule_types_are_told_by_their_type_line_before_parsing(tmp_path: Path) -> None:
    good = TOML_RULE.replace("  process.args:(\n", "  process.args:wget\n")
    # Not valid TOML past its type line: skipped for its type, as Elastic's EQL rules are.
    _write(tmp_path, "eql.toml", '[rule]\ntype = "eql"\nquery = """never closed\n')
    # A query rule with another type's word in a table of its own still loads.
    extra = '\n[[rule.required_fields]]\nname = "x"\ntype = "threshold"\n'
    _write(tmp_path, "query.toml", good + extra)
    result = load_rules([tmp_path])
    assert [r.name for r in result.rules] == ["Test rule"]
    [skipped] = result.skipped
    assert (skipped.line, "rule type 'eql' is not supported") == (2, skipped.cause[:32])


def test_other_rule_type_named_as_a_file_is_a_failure(tmp_path: Path) -> None:
    text = TOML_RULE.replace('type = "query"', 'type = "threshold"')
    path = _write(tmp_path, "threshold.toml", text)
    result = load_rules([path])
    [failure] = result.failures
    assert "rule type 'threshold' is not supported" in failure.cause
    assert failure.line == 15


def test_duplicate_rule_id_is_refused(tmp_path: Path) -> None:
    good = TOML_RULE.replace("  process.args:(\n", "  process.args:wget\n")
    first = _write(tmp_path, "one.toml", good)
    _write(tmp_path, "two.toml", good)
    result = load_rules([tmp_path])
    assert len(result.rules) == 1
    [failure] = result.failures
    assert f"already loaded from {first}" in failure.cause


def test_ndjson_bad_line_is_refused_with_its_number_and_others_load(tmp_path: Path) -> None:
    second = _seed_export_line() | {"rule_id": "another", "severity": "extreme"}
    lines = [
        json.dumps(_seed_export_line()),
        "{not json",
        json.dumps(second),
        json.dumps(EXPORT_SUMMARY),
    ]
    path = _write(tmp_path, "export.ndjson", "\n".join(lines))
    result = load_rules([path])
    assert [r.rule_id for r in result.rules] == [SEED_ID]
    assert [(f.line, f.cause.split(":")[0]) for f in result.failures] == [
        (2, "not valid JSON"),
        (3, "severity must be one of low, medium, high, critical, not 'extreme'"),
    ]


def test_filters_load_and_an_unsupported_clause_is_refused(tmp_path: Path) -> None:
    wildcard = {
        "meta": {"negate": True},
        "query": {"wildcard": {"process.args": {"value": "*.kext", "case_insensitive": True}}},
    }
    good = _seed_export_line() | {"filters": [wildcard]}
    bad = _seed_export_line() | {
        "rule_id": "r2",
        "filters": [{"query": {"script": {"source": "1"}}}],
    }
    path = _write(tmp_path, "export.ndjson", json.dumps(good) + "\n" + json.dumps(bad))
    result = load_rules([path])
    [rule] = result.rules
    assert rule.filters == (wildcard,)
    assert rule.parameters()["filters"] == [wildcard]
    [failure] = result.failures
    assert failure.line == 2
    assert failure.cause == "filters[0]: query clause 'script' is not supported in rule filters"


def test_alert_suppression_loads_from_both_formats(tmp_path: Path) -> None:
    good = TOML_RULE.replace("  process.args:(\n", "  process.args:wget\n")
    toml_text = good + (
        "\n[rule.alert_suppression]\n"
        'group_by = ["host.name", "user.name"]\n'
        'missing_fields_strategy = "doNotSuppress"\n'
        "[rule.alert_suppression.duration]\n"
        'unit = "m"\nvalue = 30\n'
    )
    from_toml = load_toml_rule(toml_text, "rule.toml").alert_suppression
    line = _seed_export_line() | {
        "alert_suppression": {
            "group_by": ["host.name", "user.name"],
            "duration": {"value": 30, "unit": "m"},
            "missing_fields_strategy": "doNotSuppress",
        }
    }
    path = _write(tmp_path, "export.ndjson", json.dumps(line))
    from_ndjson = load_rules([path]).rules[0].alert_suppression
    assert from_toml == from_ndjson
    assert from_toml is not None
    assert from_toml.group_by == ("host.name", "user.name")
    assert from_toml.duration == timedelta(minutes=30)
    assert from_toml.missing_fields_strategy == "doNotSuppress"


def test_alert_suppression_with_too_many_fields_is_refused() -> None:
    good = TOML_RULE.replace("  process.args:(\n", "  process.args:wget\n")
    text = good + '\n[rule.alert_suppression]\ngroup_by = ["a", "b", "c", "d"]\n'
    with pytest.raises(RuleLoadError, match="group_by must name 1 to 3 fields"):
        load_toml_rule(text, "rule.toml")


def test_missing_path_is_a_failure(tmp_path: Path) -> None:
    [failure] = load_rules([tmp_path / "nope.toml"]).failures
    assert failure.cause == "no such file or directory"
