"""The rule model: durations, look-back and the parameters Kibana shows."""

from __future__ import annotations

from datetime import timedelta

import pytest

from consumer.rules import builtin_rules_path, load_rules
from consumer.rules.model import parse_duration, parse_relative_time


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("5m", timedelta(minutes=5)),
        ("30s", timedelta(seconds=30)),
        ("1h", timedelta(hours=1)),
        ("2d", timedelta(days=2)),
        (" 10m ", timedelta(minutes=10)),
    ],
)
def test_parse_duration(text: str, span: timedelta) -> None:
    assert parse_duration(text) == span


@pytest.mark.parametrize("text", ["5", "m", "5 minutes", "-5m", "5w", ""])
def test_parse_duration_refuses_what_elastic_does_not_write(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_relative_times() -> None:
    assert parse_relative_time("now") == timedelta(0)
    assert parse_relative_time("now-9m") == timedelta(minutes=9)
    with pytest.raises(ValueError, match="not a relative time"):
        parse_relative_time("now+1m")


def test_seed_rule_parameters_are_kibanas_snake_case_fields() -> None:
    [rule] = load_rules([builtin_rules_path()]).rules
    params = rule.parameters()
    assert params["from"] == "now-9m" and params["to"] == "now" and params["interval"] == "5m"
    assert params["max_signals"] == 100 and params["version"] == 3
    assert params["timestamp_override"] == "event.ingested"
    assert params["threat"][0]["technique"][0]["subtechnique"][0]["id"] == "T1562.001"
    assert params["index"] == ["auditbeat-*", "logs-endpoint.events.*"]
