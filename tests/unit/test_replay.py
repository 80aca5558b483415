"""Replay end to end: the bundled sample events through the built-in rule.

The golden file holds the reviewed output with the times that depend on when the
replay ran masked. To accept a deliberate change of the alert document, regenerate it
with ``UPDATE_GOLDEN=1 pytest tests/unit/test_replay.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from consumer.cli import main
from consumer.samples import sample_events_path

GOLDEN = Path(__file__).parents[1] / "vectors" / "replay" / "sample_events_alerts.ndjson"
# Set from the replay's own clock: the time the alert was made, not anything in the event.
RUN_TIME_FIELDS = ("@timestamp", "kibana.alert.start", "kibana.alert.last_detected")
MASK = "<replay time>"


def _masked(path: Path) -> list[dict]:
    docs = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for doc in docs:
        for field in RUN_TIME_FIELDS:
            if field in doc:
                doc[field] = MASK
    return docs


def test_replay_of_the_samples_gives_the_reviewed_alerts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "alerts.ndjson"
    assert main(["replay", "--input", str(sample_events_path()), "--output", str(output)]) == 0
    produced = _masked(output)
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text("".join(json.dumps(d, sort_keys=True) + "\n" for d in produced))
    expected = [json.loads(line) for line in GOLDEN.read_text(encoding="utf-8").splitlines()]
    assert len(produced) == len(expected) == 6
    for got, want in zip(produced, expected, strict=True):
        assert sorted(got) == sorted(want)
        for field in want:
            assert got[field] == want[field], field
    err = capsys.readouterr().err
    assert "events read: 300, bad lines: 0, matched: 7, alerts: 6, duplicates: 1, limited: 0" in err


def test_replay_alert_ids_do_not_depend_on_when_or_where_it_runs(tmp_path: Path) -> None:
    first, second = tmp_path / "a.ndjson", tmp_path / "b.ndjson"
    samples = sample_events_path()
    copy = tmp_path / "renamed.ndjson"
    copy.write_bytes(samples.read_bytes())
    assert main(["replay", "--input", str(samples), "--output", str(first)]) == 0
    assert main(["replay", "--input", str(copy), "--output", str(second)]) == 0
    ids = [[d["kibana.alert.uuid"] for d in _masked(p)] for p in (first, second)]
    assert ids[0] == ids[1]
    assert len(set(ids[0])) == 6


def test_replay_limits_a_flood_to_max_signals_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    attack = json.loads(sample_events_path().read_text().splitlines()[20])
    assert attack["process"]["name"] == "kextunload"
    events = tmp_path / "flood.ndjson"
    with events.open("w") as out:
        for i in range(150):
            event = json.loads(json.dumps(attack))
            event["event"]["id"] = f"flood-{i}"
            event["@timestamp"] = f"2026-12-04T09:01:{i % 60:02d}.000Z"
            out.write(json.dumps(event) + "\n")
    output = tmp_path / "alerts.ndjson"
    assert main(["replay", "--input", str(events), "--output", str(output)]) == 0
    docs = _masked(output)
    alerts = [d for d in docs if "kibana.alert.uuid" in d]
    statuses = [d for d in docs if "kibana.alert.rule.execution.status" in d]
    assert len(alerts) == 100
    assert len(statuses) == 1
    assert statuses[0]["message"] == (
        "This rule reached the maximum alert limit for the rule execution. "
        "Some alerts were not created."
    )
    err = capsys.readouterr().err
    assert "alerts: 100, duplicates: 0, limited: 50" in err
    assert "warning: rule 70fa1af4-27fd-4f26-bd03-50b6af6b9e24 window 2026-12-04T09:00:00" in err
