"""``python -m consumer run`` refuses bad settings at start, naming the setting."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from consumer.cli import main


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (
            ["--input-format", "xml"],
            "setting input_format (--input-format / CONSUMER_INPUT_FORMAT)",
        ),
        (["--rules", "/nonexistent/rules"], "setting rules (--rules / CONSUMER_RULES)"),
        (["--guarantee", "maybe"], "setting guarantee (--guarantee / CONSUMER_GUARANTEE)"),
        (["--alerts-topic", "a", "--dead-letter-topic", "a"], "use distinct topics"),
    ],
)
def test_bad_setting_fails_at_start_naming_it(args, words, capsys) -> None:
    assert main(["run", *args]) == 2
    assert words in capsys.readouterr().err


def test_unreachable_broker_fails_after_the_startup_budget(capsys) -> None:
    servers = f"127.0.0.1:{_closed_port()}"
    code = main(
        ["run", "--bootstrap-servers", servers, "--startup-timeout-s", "2", "--metrics-port", "0"]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "setting bootstrap_servers (--bootstrap-servers / KAFKA_BOOTSTRAP_SERVERS)" in err
    assert "no Kafka broker answered within 2s" in err


def test_sigterm_while_the_brokers_are_away_ends_the_wait() -> None:
    import signal
    import time

    servers = f"127.0.0.1:{_closed_port()}"
    process = subprocess.Popen(
        [sys.executable, "-m", "consumer", "run", "--bootstrap-servers", servers,
         "--startup-timeout-s", "120", "--metrics-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    time.sleep(3)  # imported, and waiting for a broker
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output.decode()
    assert time.monotonic() - started < 10  # not the 120 s budget
    assert b"stopped before the brokers answered" in output


def test_secrets_never_reach_the_log() -> None:
    servers = f"127.0.0.1:{_closed_port()}"
    env = {**os.environ, "KAFKA_CONFIG_SASL_PASSWORD": "hunter2-secret"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "consumer",
            "run",
            "--bootstrap-servers",
            servers,
            "--startup-timeout-s",
            "1",
            "--log-level",
            "DEBUG",
            "--metrics-port",
            "0",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    # The settings are logged, with the password masked.
    assert "'sasl.password': '****'" in result.stdout
    assert "hunter2-secret" not in result.stderr + result.stdout
