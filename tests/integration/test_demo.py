"""``python -m consumer demo`` end to end, and that it stops everything it started.

The first test runs the real thing: Tansu, ``python -m consumer run`` as a child process,
generated events, alerts read back. The others replace the pipeline with a stand-in
process (one that never alerts, one that dies at once) to check the demo's own duties:
timeouts, reporting a dead pipeline, and cleaning up after Ctrl+C.
"""

from __future__ import annotations

import io
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from consumer.brokers import BrokerUnavailable, find_tansu
from consumer.demo import DemoOptions, run_demo, start_pipeline

pytestmark = [pytest.mark.tansu, pytest.mark.timeout(240)]

Starter = Callable[[str, int, Path], "subprocess.Popen[bytes]"]


@pytest.fixture(autouse=True)
def _tansu_available() -> None:
    """The demo starts its own Tansu: skip without one, but fail under CI."""
    try:
        find_tansu()
    except BrokerUnavailable as exc:
        if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
            pytest.fail(f"Tansu unavailable (CI=true, so this fails): {exc}", pytrace=False)
        pytest.skip(f"Tansu unavailable: {exc}")


def _recording(starter: Starter, started: list[subprocess.Popen[bytes]]) -> Starter:
    def start(bootstrap: str, metrics_port: int, log_path: Path) -> subprocess.Popen[bytes]:
        process = starter(bootstrap, metrics_port, log_path)
        started.append(process)
        return process

    return start


def _fake_pipeline(code: str) -> Starter:
    def start(bootstrap: str, metrics_port: int, log_path: Path) -> subprocess.Popen[bytes]:
        with log_path.open("ab") as log:
            return subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=log)

    return start


def _broker_port(output: str) -> int:
    match = re.search(r"broker: Tansu on [\d.]+:(\d+)", output)
    assert match, output
    return int(match.group(1))


def _port_closed(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_demo_end_to_end() -> None:
    out = io.StringIO()
    started: list[subprocess.Popen[bytes]] = []
    options = DemoOptions(count=2000, rate=2000.0, timeout=90.0)

    result = run_demo(options, out, pipeline=_recording(start_pipeline, started))

    text = out.getvalue()
    assert result.ok, text
    assert (result.sent.attacks, result.alerts, result.alert_records) == (8, 8, 8)
    assert (result.sent.events, result.sent.duplicates, result.sent.attack_duplicates) == (
        2040,
        40,
        8,
    )
    assert result.duplicates_suppressed == 8
    assert result.dead_letters == 2
    alert_lines = [line for line in text.splitlines() if line.lstrip().startswith("ALERT")]
    assert len(alert_lines) == 8
    assert all("kextunload" in line for line in alert_lines)
    assert "result" in text and "ok: one alert per attack" in text
    # Everything it started is stopped: the pipeline exited 0 on SIGTERM, the broker is gone.
    (process,) = started
    assert process.returncode == 0 == result.pipeline_exit
    assert _port_closed(_broker_port(text))


def test_demo_times_out_when_no_alert_comes() -> None:
    out = io.StringIO()
    started: list[subprocess.Popen[bytes]] = []
    options = DemoOptions(count=200, rate=0.0, timeout=1.0, metrics=False)

    result = run_demo(
        options, out, pipeline=_recording(_fake_pipeline("import time; time.sleep(120)"), started)
    )

    assert not result.ok
    assert (result.sent.attacks, result.alerts) == (8, 0)
    assert "NOT OK" in out.getvalue()
    (process,) = started
    assert process.returncode is not None  # terminated by the demo
    assert _port_closed(_broker_port(out.getvalue()))


def test_demo_reports_a_pipeline_that_dies() -> None:
    out = io.StringIO()
    code = "import sys; print('cannot start: no rules'); sys.exit(3)"

    result = run_demo(
        DemoOptions(count=200, rate=0.0, metrics=False), out, pipeline=_fake_pipeline(code)
    )

    text = out.getvalue()
    assert result.pipeline_exit == 3
    assert not result.ok
    assert "pipeline exited early (code 3)" in text
    assert "cannot start: no rules" in text


class _InterruptOn(io.StringIO):
    """Output that raises KeyboardInterrupt when a line starting with ``marker`` is written."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = marker

    def write(self, text: str) -> int:
        if text.startswith(self.marker):
            raise KeyboardInterrupt
        return super().write(text)


def test_ctrl_c_stops_everything() -> None:
    out = _InterruptOn("producing")
    started: list[subprocess.Popen[bytes]] = []

    with pytest.raises(KeyboardInterrupt):
        run_demo(
            DemoOptions(count=500, rate=0.0),
            out,
            pipeline=_recording(_fake_pipeline("import time; time.sleep(120)"), started),
        )

    (process,) = started
    assert process.returncode is not None
    assert _port_closed(_broker_port(out.getvalue()))
