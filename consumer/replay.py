"""Replay: run rules over a file of events, the detection engineer's backtest.

Each event goes through the same two steps as in the stream: the ``Detector`` decides
which rules match, and the ``AlertingCore`` turns matches into alerts (dedup, per-window
limits, suppression, in event time). The output is what the stream would publish, one
NDJSON document a line, in order:

- alert documents (``kibana.alert.uuid`` set), bulk-indexable into
  ``.alerts-security.alerts-<space>``;
- suppression updates: the same alert document again, with the new count;
- rule-status records (``kibana.alert.rule.execution.status``), also reported on stderr.

The file is read as a stream (memory does not grow with it); a bad line is reported with
its number and skipped. The alert's source reference names the file as its topic and
the line number as its offset. ``@timestamp`` of an alert is the time of the replay.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TextIO

from consumer.alerting import RULE_STATUS, AlertingCore, Candidate
from consumer.detection import Detector
from consumer.events import BadLine, open_event_file, read_events
from consumer.rules import Rule

EXIT_OK = 0
EXIT_INPUT_ERROR = 2


@dataclass(frozen=True)
class ReplayOptions:
    """How to build alerts: the Kibana space and the dedup horizon (None: each rule's)."""

    space_id: str = "default"
    dedup_horizon: timedelta | None = None


def run_replay(
    rules: Sequence[Rule],
    input_path: str,
    output_path: str | None,
    stdout: TextIO,
    stderr: TextIO,
    options: ReplayOptions | None = None,
) -> int:
    """Replay ``rules`` over the events in ``input_path``; returns the exit code."""
    options = options or ReplayOptions()
    detector = Detector(rules)
    core = AlertingCore(rules, space_id=options.space_id, horizon=options.dedup_horizon)
    topic = Path(input_path).name
    read = bad = 0
    try:
        stream = open_event_file(input_path)
    except OSError as exc:
        print(f"error: cannot read {input_path}: {exc.strerror or exc}", file=stderr)
        return EXIT_INPUT_ERROR
    with stream, _output(output_path, stdout) as out:
        for item in read_events(stream):
            if isinstance(item, BadLine):
                bad += 1
                print(f"{input_path}:{item.line}: skipped: {item.reason}", file=stderr)
                continue
            read += 1
            for rule in detector.matching_rules(item.event):
                candidate = Candidate(rule, item.event, topic=topic, offset=item.line)
                for output in core.process(candidate):
                    out.write(json.dumps(output.value, ensure_ascii=False) + "\n")
                    if output.kind == RULE_STATUS:
                        _report_status(output.value, stderr)
    _print_summary(read, bad, core, stderr)
    return EXIT_OK


def _report_status(status: dict, stderr: TextIO) -> None:
    print(
        f"warning: rule {status['kibana.alert.rule.rule_id']} window "
        f"{status['window']['start']}: {status['message']} "
        f"(alerts {status['alerts']}, not created {status['limited']})",
        file=stderr,
    )


def _print_summary(read: int, bad: int, core: AlertingCore, stderr: TextIO) -> None:
    summary = core.summary().values()
    total = {
        key: sum(rule[key] for rule in summary)
        for key in ("matched", "alerts", "duplicates", "limited", "late", "suppressed")
    }
    print(
        f"events read: {read}, bad lines: {bad}, "
        + ", ".join(f"{key}: {value}" for key, value in total.items()),
        file=stderr,
    )
    for rule in summary:
        print(
            f"  {rule['rule_id']} {rule['name']}: matched {rule['matched']}, "
            f"alerts {rule['alerts']}, duplicates {rule['duplicates']}, "
            f"limited {rule['limited']}, late {rule['late']}, suppressed {rule['suppressed']}",
            file=stderr,
        )


@contextmanager
def _output(path: str | None, stdout: TextIO) -> Iterator[TextIO]:
    if path is None:
        yield stdout
        return
    with Path(path).open("w", encoding="utf-8") as out:
        yield out
