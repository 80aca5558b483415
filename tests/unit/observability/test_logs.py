"""JSON log lines with context, text on a terminal, and one line per incident."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from consumer.observability import Incidents, configure_logging


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_json_lines_carry_time_level_message_and_context() -> None:
    out = io.StringIO()
    configure_logging("INFO", "auto", out)  # not a terminal: JSON
    log = logging.getLogger("consumer.test")
    log.debug("hidden")
    log.warning("dead-lettered %s", "x\ny", extra={"topic": "events", "partition": 3})
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2  # one event per line, newlines escaped
    first = json.loads(lines[0])
    assert first["level"] == "WARNING" and first["message"] == "dead-lettered x\ny"
    assert first["topic"] == "events" and first["partition"] == 3
    assert first["time"].endswith("Z") and first["logger"] == "consumer.test"
    assert "ValueError: boom" in json.loads(lines[1])["exception"]


def test_text_on_a_terminal() -> None:
    out = Tty()
    configure_logging("DEBUG", "auto", out)
    logging.getLogger("consumer.test").info("assigned %s", "t[0]", extra={"partitions": 1})
    line = out.getvalue()
    assert "INFO" in line and "assigned t[0] [partitions=1]" in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_is_one_line_then_one_summary(caplog) -> None:
    clock = Clock()
    incidents = Incidents(logging.getLogger("consumer.test"), 60, clock=clock)
    with caplog.at_level(logging.INFO):
        for offset in range(1000):
            incidents.report(
                "dl:json", logging.WARNING, "record dead-lettered", summary="bad records",
                topic="events", offset=offset, reason="invalid_json",
            )  # fmt: skip
            incidents.flush()
        assert len(caplog.records) == 1 and caplog.records[0].offset == 0
        clock.now = 61
        incidents.flush()
    assert len(caplog.records) == 2
    summary = caplog.records[1]
    assert summary.getMessage() == "999 more bad records in the last 61s"
    assert summary.count == 999 and summary.reason == "invalid_json"
    assert not hasattr(summary, "offset")  # a summary stands for many records


def test_a_single_occurrence_has_no_summary_and_a_new_burst_logs_again(caplog) -> None:
    clock = Clock()
    incidents = Incidents(logging.getLogger("consumer.test"), 60, clock=clock)
    with caplog.at_level(logging.INFO):
        incidents.report("k", logging.ERROR, "first", summary="things")
        clock.now = 100
        incidents.flush()
        incidents.report("k", logging.ERROR, "again", summary="things")
        incidents.flush(force=True)
    assert [r.getMessage() for r in caplog.records] == ["first", "again"]
