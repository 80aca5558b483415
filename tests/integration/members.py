"""Run pipeline members as real processes and read what they wrote, for integration tests."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Message

# Faster failure detection than production defaults, so a killed member's partitions
# move on within seconds.
TEST_ENV = {
    "KAFKA_CONFIG_SESSION_TIMEOUT_MS": "6000",
    "KAFKA_CONFIG_HEARTBEAT_INTERVAL_MS": "500",
    "KAFKA_CONFIG_TRANSACTION_TIMEOUT_MS": "10000",
}


@dataclass
class Stream:
    """The topics and group of one test's pipeline."""

    bootstrap: str
    group: str
    input_topic: str

    @property
    def alerts(self) -> str:
        return f"{self.group}-alerts"

    @property
    def dead_letters(self) -> str:
        return f"{self.group}-dead-letters"

    @property
    def statuses(self) -> str:
        return f"{self.group}-status"

    def member_args(self, instance: str, *extra: str) -> list[str]:
        return [
            "--bootstrap-servers", self.bootstrap,
            "--group-id", self.group,
            "--instance-id", instance,
            "--input-topics", self.input_topic,
            "--alerts-topic", self.alerts,
            "--dead-letter-topic", self.dead_letters,
            "--status-topic", self.statuses,
            "--metrics-port", "0",
            "--commit-interval-ms", "100",
            "--startup-timeout-s", "20",
            *extra,
        ]  # fmt: skip


@dataclass
class MemberProcess:
    """``python -m consumer run`` as a child process, its log in a file (``module``: the
    same command line run by a fault-injecting entry point instead)."""

    args: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    module: str = "consumer"

    def start(self) -> MemberProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module, "run", *self.args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **TEST_ENV, **self.env},
        )
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, text: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"member exited {self.process.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} after {timeout}s:\n{self.log()[-3000:]}")
            time.sleep(0.1)

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def stop_quietly(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def with_id(event: dict[str, Any], event_id: str, timestamp: str | None = None) -> dict[str, Any]:
    """A copy of ``event`` with ``event.id`` (and ``@timestamp`` if given) replaced."""
    event = copy.deepcopy(event)
    if "event.id" in event:  # the flattened-keys case
        event["event.id"] = event_id
    else:
        event.setdefault("event", {})["id"] = event_id
    if timestamp is not None:
        event["@timestamp"] = timestamp
    return event


def read_topic(
    bootstrap: str,
    topic: str,
    *,
    expect: int | None = None,
    timeout: float = 60.0,
    settle: float = 3.0,
) -> list[Message]:
    """Every committed record of ``topic``: until ``expect`` arrived and ``settle`` seconds
    passed with nothing more (so extra records would be seen), or until ``timeout``."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{topic}-{time.monotonic_ns()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([topic])
    found: list[Message] = []
    deadline = time.monotonic() + timeout
    quiet_since = time.monotonic()
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None or message.error() is not None:
                done = expect is not None and len(found) >= expect
                if done and time.monotonic() - quiet_since >= settle:
                    break
                continue
            found.append(message)
            quiet_since = time.monotonic()
    finally:
        consumer.close()
    return found


def alert_ids(messages: Iterable[Message]) -> list[str]:
    """The alert id (record key) of each alert record."""
    return [m.key().decode() for m in messages]


def values(messages: Iterable[Message]) -> list[dict[str, Any]]:
    return [json.loads(m.value()) for m in messages]
