"""A real member's health endpoints, metrics and logs (Tansu: no transaction semantics
are checked here, only what an operator sees)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import Producer

from consumer.brokers import free_port
from consumer.generator import generate_events

from .members import MemberProcess, Stream

pytestmark = [pytest.mark.tansu, pytest.mark.timeout(120)]


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _sample(text: str, line_start: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _until(check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)
    return result


def test_health_metrics_and_json_logs_of_a_running_member(
    broker, topic_factory, group_id, tmp_path: Path
) -> None:
    stream = Stream(broker.bootstrap_servers, group_id, topic_factory(partitions=2))
    port = free_port()
    args = stream.member_args("obs-1")
    args[args.index("--metrics-port") + 1] = str(port)
    member = MemberProcess(
        [*args, "--metrics-host", "127.0.0.1", "--log-format", "json"], tmp_path / "m.log"
    ).start()
    try:
        member.wait_for_log("assigned")
        assert _get(port, "/healthz")[0] == 200
        _until(lambda: _get(port, "/readyz")[0] == 200)
        start = datetime.now(UTC)
        good = [json.dumps(e).encode() for e in generate_events(40, match_every=10, start=start)]
        bad = [b"{not json %d" % i for i in range(25)]
        producer = Producer({"bootstrap.servers": stream.bootstrap})
        for i, value in enumerate(good + bad):
            producer.produce(stream.input_topic, value, key=str(i).encode())
        assert producer.flush(30) == 0

        def metrics() -> str | None:
            text = _get(port, "/metrics")[1]
            consumed = _sample(text, "detection_consumer_events_consumed_total{")
            return text if consumed == 65 and "detection_consumer_alerts_total{" in text else None

        text = _until(metrics)
        assert _sample(text, 'detection_consumer_dead_letters_total{reason="invalid_json"}') == 25
        assert _sample(text, "detection_consumer_alerts_total{") == 4
        assert _sample(text, "detection_consumer_ready ") == 1
        assert _sample(text, "process_resident_memory_bytes ") > 0
        assert member.terminate() == 0
    finally:
        member.stop_quietly()
    lines = [line for line in member.log().splitlines() if line.startswith("{")]
    records = [json.loads(line) for line in lines]  # every log line is one JSON object
    assert {"time", "level", "logger", "message"} <= set(records[0])
    dead = [r for r in records if "dead-lettered" in r["message"]]
    # 25 bad records: the first is logged with its position, the rest in one summary.
    assert len(dead) == 2, dead
    assert dead[0]["reason"] == "invalid_json" and dead[0]["topic"] == stream.input_topic
    assert dead[1]["count"] == 24
