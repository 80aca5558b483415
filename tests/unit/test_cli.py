"""The command line, run in-process as a user would run it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from consumer.cli import main
from consumer.rules import builtin_rules_path

SEED_ID = "70fa1af4-27fd-4f26-bd03-50b6af6b9e24"
RULE = """\
[rule]
name = "Curl"
description = "d"
rule_id = "{rule_id}"
type = "{type}"
language = "kuery"
severity = "low"
risk_score = 1
index = ["logs-*"]
query = '{query}'
"""


def _rule(
    tmp_path: Path,
    name: str,
    *,
    rule_id: str = "r1",
    type: str = "query",
    query: str = "process.name:curl",
) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(RULE.format(rule_id=rule_id, type=type, query=query), encoding="utf-8")
    return path


def test_check_rules_lists_the_builtin_rule(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-rules", str(builtin_rules_path())]) == 0
    out = capsys.readouterr().out
    header, row = out.splitlines()[:2]
    assert header.split() == ["RULE", "ID", "NAME", "TYPE", "SEVERITY", "TOPICS"]
    assert row.startswith(SEED_ID)
    assert "Attempt to Unload Elastic Endpoint Security Kernel Extension" in row
    assert row.rstrip().endswith(r"^auditbeat-.*, ^logs-endpoint\.events\..*")
    assert "1 rule(s) loaded" in out


def test_check_rules_exits_1_when_a_given_file_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _rule(tmp_path, "good.toml")
    bad = _rule(tmp_path, "bad.toml", rule_id="r2", query="process.name:(curl")
    assert main(["check-rules", str(good), str(bad)]) == 1
    out = capsys.readouterr().out
    assert "1 rule(s) loaded" in out
    assert f"refused: {bad}:10: query does not parse" in out


def test_check_rules_skips_other_types_in_a_directory_and_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _rule(tmp_path, "rules/good.toml")
    _rule(tmp_path, "rules/eql.toml", rule_id="r2", type="eql")
    assert main(["check-rules", str(tmp_path / "rules")]) == 0
    out = capsys.readouterr().out
    assert "skipped: " in out and "rule type 'eql' is not supported" in out
    assert "1 rule(s) skipped" in out
    assert "Traceback" not in out


def test_replay_writes_detections_and_reports_bad_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "events.ndjson"
    hit = {"@timestamp": "2026-12-04T10:00:00Z", "event": {"id": "e1"}, "process": {"name": "curl"}}
    miss = {
        "@timestamp": "2026-12-04T10:00:01Z",
        "event": {"id": "e2"},
        "process": {"name": "Curl"},
    }
    events.write_text("\n".join([json.dumps(hit), "not json", json.dumps(miss)]) + "\n")
    output = tmp_path / "out.ndjson"
    rule = _rule(tmp_path, "rule.toml")
    code = main(["replay", "--rules", str(rule), "--input", str(events), "--output", str(output)])
    assert code == 0
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(records) == 1
    assert "e1" in json.dumps(records[0])
    err = capsys.readouterr().err
    assert f"{events}:2: skipped: invalid_json" in err


def test_replay_refuses_to_run_with_a_bad_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _rule(tmp_path, "bad.toml", query="process.name:")
    events = tmp_path / "events.ndjson"
    events.write_text("{}\n")
    assert main(["replay", "--rules", str(bad), "--input", str(events)]) == 2
    assert f"error: {bad}:10: query does not parse" in capsys.readouterr().err


def test_replay_missing_input_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "--input", "/nonexistent/events.ndjson"]) == 2
    assert "cannot read /nonexistent/events.ndjson" in capsys.readouterr().err
