"""Reading event files: NDJSON, gzip, bad lines."""

from __future__ import annotations

import gzip
from pathlib import Path

from consumer.events import BadLine, EventLine, open_event_file, read_events

LINES = '{"a": 1}\n\n[1, 2]\n{"b": \n"text"\n{"c": {"d": [1]}}\n'


def _read(path: Path) -> list[EventLine | BadLine]:
    with open_event_file(path) as stream:
        return list(read_events(stream))


def test_good_lines_are_events_and_bad_lines_carry_number_and_reason(tmp_path: Path) -> None:
    path = tmp_path / "events.ndjson"
    path.write_text(LINES, encoding="utf-8")
    items = _read(path)
    assert [type(i).__name__ for i in items] == [
        "EventLine", "BadLine", "BadLine", "BadLine", "EventLine",
    ]  # fmt: skip
    assert items[0] == EventLine(1, {"a": 1})
    assert items[4] == EventLine(6, {"c": {"d": [1]}})
    # The stream's decoder reads the file: the same reasons as the dead-letter topic.
    reasons = [(i.line, i.reason.split(":")[0]) for i in items if isinstance(i, BadLine)]
    assert reasons == [(3, "not_an_object"), (4, "invalid_json"), (5, "not_an_object")]


def test_values_the_pipeline_could_not_write_back_are_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.ndjson"
    path.write_text('{"n": 1' + "1" * 5000 + '}\n{"s": "\\ud800"}\n{"x": NaN}\n')
    reasons = [i.reason.split(":")[0] for i in _read(path)]
    assert reasons == ["invalid_json", "invalid_utf8", "invalid_json"]


def test_gzip_is_recognised_by_content_not_name(tmp_path: Path) -> None:
    plain = tmp_path / "events.ndjson"
    plain.write_text(LINES, encoding="utf-8")
    packed = tmp_path / "events.data"
    packed.write_bytes(gzip.compress(LINES.encode()))
    assert _read(packed) == _read(plain)


def test_invalid_utf8_only_spoils_its_own_line(tmp_path: Path) -> None:
    path = tmp_path / "events.ndjson"
    path.write_bytes(b'{"a": "\xff\xfe"}\n{"b": 2}\n')
    items = _read(path)
    assert items == [EventLine(1, {"a": "\ufffd\ufffd"}), EventLine(2, {"b": 2})]
