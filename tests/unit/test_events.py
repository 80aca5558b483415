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
    assert items == [
        EventLine(1, {"a": 1}),
        BadLine(3, "not a JSON object but a list"),
        BadLine(4, "not valid JSON: Expecting value"),
        BadLine(5, "not a JSON object but a str"),
        EventLine(6, {"c": {"d": [1]}}),
    ]


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
