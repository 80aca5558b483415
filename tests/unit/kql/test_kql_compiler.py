"""Compiler behaviour not expressible as vectors: evaluation order, clock, public API."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import consumer.kql as kql
from consumer.errors import KqlSyntaxError
from consumer.kql import compile_query

SEED = (
    "event.category:process and event.type:(start or process_started) and\n"
    ' process.name:kextunload and process.args:("/System/Library/Extensions/EndpointSecurity.kext"'
    ' or "EndpointSecurity.kext")'
)


class Recorder(Mapping):
    """A read-only mapping that logs which keys are read, in order."""

    def __init__(self, data: dict, log: list[str], prefix: str = "") -> None:
        self._data, self._log, self._prefix = data, log, prefix

    def __getitem__(self, key: str) -> object:
        self._log.append(self._prefix + key)
        value = self._data[key]
        if isinstance(value, dict):
            return Recorder(value, self._log, f"{self._prefix}{key}.")
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


def test_public_api() -> None:
    assert set(kql.__all__) == {
        "KEY",
        "KEY_PART",
        "PART",
        "VALUE",
        "Literal",
        "KqlSyntaxError",
        "compile_filters",
        "compile_query",
        "known_fields",
        "may_match",
        "parse",
        "query_fields",
        "required_literals",
    }
    assert kql.KqlSyntaxError is KqlSyntaxError


def test_seed_tests_process_name_first() -> None:
    log: list[str] = []
    event = {
        "event": {"category": "process", "type": "start"},
        "process": {"name": "bash", "args": ["EndpointSecurity.kext"]},
    }
    assert compile_query(SEED)(Recorder(event, log)) is False
    assert log[:2] == ["process", "process.name"]
    assert not any(key.startswith("event") for key in log)
    assert "process.args" not in log


def test_now_is_read_at_evaluation() -> None:
    clock = [1_700_000_000.0]
    predicate = compile_query("@timestamp > now-1m", now=lambda: clock[0])
    event = {"@timestamp": "2023-11-14T22:13:00Z"}
    assert predicate(event) is True
    clock[0] += 3600
    assert predicate(event) is False


def test_events_may_be_any_mapping() -> None:
    log: list[str] = []
    event = Recorder({"process": {"name": "kextunload", "args": ["EndpointSecurity.kext"]}}, log)
    assert compile_query("process.name:kextunload and process.args:*")(event) is True
