"""Replay: run rules over a file of events, the detection engineer's backtest.

It reads the file as a stream (memory does not grow with it), reports bad lines with
their number and goes on, and writes one NDJSON record per output.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from consumer.detection import Detector
from consumer.events import BadLine, open_event_file, read_events
from consumer.rules import Rule


def run_replay(
    rules: Sequence[Rule],
    input_path: str,
    output_path: str | None,
    stdout: TextIO,
    stderr: TextIO,
) -> int:
    """Replay ``rules`` over the events in ``input_path``; returns the exit code."""
    detector = Detector(rules)
    matched: Counter[str] = Counter()
    read = bad = 0
    try:
        stream = open_event_file(input_path)
    except OSError as exc:
        print(f"error: cannot read {input_path}: {exc.strerror or exc}", file=stderr)
        return 2
    with stream, _output(output_path, stdout) as out:
        for item in read_events(stream):
            if isinstance(item, BadLine):
                bad += 1
                print(f"{input_path}:{item.line}: skipped: {item.reason}", file=stderr)
                continue
            read += 1
            for rule in detector.matching_rules(item.event):
                matched[rule.rule_id] += 1
                record = {
                    "rule_id": rule.rule_id,
                    "rule_name": rule.name,
                    "line": item.line,
                    "event": item.event,
                }
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
    print(f"events read: {read}, bad lines: {bad}, matched: {sum(matched.values())}", file=stderr)
    return 0


@contextmanager
def _output(path: str | None, stdout: TextIO) -> Iterator[TextIO]:
    if path is None:
        yield stdout
        return
    with Path(path).open("w", encoding="utf-8") as out:
        yield out
