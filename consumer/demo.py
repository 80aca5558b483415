"""``python -m consumer demo``: the whole job on one machine, no Docker, in about a minute.

What it does, in order, and what it stops again (also on Ctrl+C, SIGTERM or an error):

1. starts an embedded Kafka-compatible broker (Tansu, ``consumer.brokers.EmbeddedBroker``)
   on a free loopback port, and creates the input topic
   ``logs-endpoint.events.process-default`` (4 partitions);
2. starts the pipeline as a child process, ``python -m consumer run`` with group ``demo``
   (:func:`start_pipeline`), its output in a log file shown if it fails;
3. produces generated ECS process events at a few thousand per second (default 20,000,
   with 8 kextunload attacks, as many near misses, 40 duplicates among which every attack
   is re-sent once, and 2 records that are not events at all);
4. reads ``security-alerts`` (``read_committed``) and prints each alert as it arrives,
   until every expected alert and dead letter is in, the pipeline dies, or ``timeout``
   seconds pass after the last event was sent;
5. prints a summary (events, attacks, alerts, duplicates suppressed, dead letters, time,
   and a few lines of the pipeline's ``/metrics`` when it serves them), then SIGTERMs the
   pipeline and stops the broker.

Exit code 0 when exactly one alert per attack arrived and every bad record was
dead-lettered; 1 otherwise (the summary says what is missing).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import logging
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, Producer, TopicPartition

from consumer.brokers import EmbeddedBroker, free_port
from consumer.produce import (
    DEFAULT_TOPIC,
    EventPlan,
    PlanCounts,
    PlanSpec,
    ProduceStats,
    ensure_topic,
    produce_events,
)

__all__ = [
    "ALERTS_TOPIC",
    "DEAD_LETTER_TOPIC",
    "DemoOptions",
    "DemoResult",
    "add_demo_parser",
    "alert_line",
    "demo_plan",
    "run_demo",
    "run_demo_command",
    "start_pipeline",
    "stop_pipeline",
    "summary_rows",
]

ALERTS_TOPIC = "security-alerts"
DEAD_LETTER_TOPIC = "security-alerts-dead-letter"
INPUT_PARTITIONS = 4
GROUP_ID = "demo"
INSTANCE_ID = "demo-1"
#: Records that are not events: the pipeline must dead-letter them and carry on.
BAD_RECORDS: tuple[bytes, ...] = (
    b'{"@timestamp":"2026-12-04T09:00:00Z","event":{"kind":"event"',  # cut off mid-object
    b"kextunload /System/Library/Extensions/EndpointSecurity.kext",  # plain text, not JSON
)
_PIPELINE_STOP_GRACE = 20.0


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """The demo's knobs; the defaults are what ``python -m consumer demo`` runs."""

    count: int = 20_000
    rate: float = 4000.0
    attacks: int = 8
    bad_records: int = len(BAD_RECORDS)
    seed: int = 0
    timeout: float = 60.0  # wait for alerts after the last event was sent
    metrics: bool = True


@dataclass(slots=True)
class DemoResult:
    """What the demo sent and saw; ``ok`` when the alerts are exactly the attacks."""

    sent: PlanCounts = field(default_factory=PlanCounts)  # the generated events
    bad_records: int = 0
    alerts: int = 0  # distinct alert ids
    alert_records: int = 0  # records on the alerts topic (a repeat id is a duplicate alert)
    dead_letters: int = 0
    seconds: float = 0.0
    pipeline_exit: int | None = None
    alert_ids: list[str] = field(default_factory=list)

    @property
    def duplicates_suppressed(self) -> int:
        """Re-sent attacks that did not produce a second alert record."""
        return max(0, self.sent.attack_duplicates - (self.alert_records - self.alerts))

    @property
    def ok(self) -> bool:
        return (
            self.alerts == self.sent.attacks
            and self.alert_records == self.alerts
            and self.dead_letters == self.bad_records
        )


# --------------------------------------------------------------------------- pure helpers


def demo_plan(options: DemoOptions, start: datetime | None = None) -> EventPlan:
    """The events of the demo: about ``attacks`` attacks spread over ``count`` events.

    ``match_every`` is rounded to a multiple of 5 and duplicates come every fifth of it,
    so ``duplicate_every`` divides ``match_every`` and every attack is re-sent once.
    """
    per_attack = options.count // max(1, options.attacks)
    match_every = max(10, per_attack - per_attack % 5)
    return EventPlan(
        PlanSpec(
            count=options.count,
            seed=options.seed,
            match_every=match_every,
            duplicate_every=match_every // 5,
            start=start,
            events_per_second=options.rate or 1000.0,
        )
    )


def _field(doc: dict[str, Any], path: str) -> Any:
    """``doc[path]`` as a flat dotted key, else by walking nested objects; None if absent."""
    if path in doc:
        return doc[path]
    node: Any = doc
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def alert_line(alert: dict[str, Any]) -> str:
    """One readable line per alert: event time, host, user, reason, alert id prefix."""
    when = str(_field(alert, "kibana.alert.original_time") or _field(alert, "@timestamp") or "?")
    clock = when[11:23] if len(when) >= 23 else when  # HH:MM:SS.mmm of an ISO time
    host = _field(alert, "host.name") or "-"
    user = _field(alert, "user.name") or "-"
    reason = _field(alert, "kibana.alert.reason") or _field(alert, "kibana.alert.rule.name")
    alert_id = str(_field(alert, "kibana.alert.uuid") or "")[:12]
    return f"  ALERT {clock}  {host:<16} {user:<8} {reason}  [{alert_id}]"


# --------------------------------------------------------------------------- processes


def _exit_with_parent() -> Callable[[], None] | None:
    """A pre-exec hook: Linux SIGTERMs the child if the demo itself is killed outright."""
    if sys.platform != "linux":
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


def start_pipeline(
    bootstrap_servers: str, metrics_port: int, log_path: Path
) -> subprocess.Popen[bytes]:
    """Start ``python -m consumer run`` against the demo broker; output goes to ``log_path``."""
    argv = [
        sys.executable,
        "-m",
        "consumer",
        "run",
        "--bootstrap-servers",
        bootstrap_servers,
        "--group-id",
        GROUP_ID,
        "--instance-id",
        INSTANCE_ID,
        "--metrics-port",
        str(metrics_port),
        "--log-level",
        "WARNING",
    ]
    with log_path.open("ab") as log:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl+C reaches only us; we stop it with SIGTERM
            preexec_fn=_exit_with_parent(),
        )


def stop_pipeline(process: subprocess.Popen[bytes], grace: float = _PIPELINE_STOP_GRACE) -> int:
    """SIGTERM the pipeline (it commits and exits 0), kill it after ``grace``; exit code."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    return int(process.returncode)


def _log_tail(path: Path, lines: int = 20) -> str:
    text = path.read_text(errors="replace").splitlines() if path.exists() else []
    return "\n".join(text[-lines:]) or "(no output)"


# --------------------------------------------------------------------------- Kafka parts


class _Producing(threading.Thread):
    """Sends the plan, then the bad records, on its own thread; keeps any exception."""

    def __init__(self, bootstrap: str, plan: EventPlan, options: DemoOptions) -> None:
        super().__init__(name="demo-producer", daemon=True)
        self.bootstrap = bootstrap
        self.plan = plan
        self.options = options
        self.stop = threading.Event()
        self.stats: ProduceStats | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.stats = produce_events(
                self.bootstrap, DEFAULT_TOPIC, self.plan, rate=self.options.rate, stop=self.stop
            )
            if not self.stop.is_set():
                _send_bad_records(self.bootstrap, BAD_RECORDS[: self.options.bad_records])
        except BaseException as exc:  # reported by the main thread
            self.error = exc


def _send_bad_records(bootstrap: str, values: tuple[bytes, ...]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "logger": _quiet_logger()})
    for value in values:
        producer.produce(DEFAULT_TOPIC, value, key=b"demo-bad-record")
    if producer.flush(30):
        raise RuntimeError("bad records were not delivered")


def _quiet_logger() -> logging.Logger:
    # librdkafka logs every closed connection at shutdown; the demo's screen is for alerts.
    return logging.getLogger("consumer.demo.kafka")


def _open_reader(bootstrap: str) -> Consumer:
    """A group-less ``read_committed`` reader of the alerts and dead-letter topics."""
    reader = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"demo-reader-{uuid.uuid4().hex[:8]}",  # required; never joined
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "logger": _quiet_logger(),
        }
    )
    metadata = reader.list_topics(timeout=10).topics
    reader.assign(
        [
            TopicPartition(topic, partition, OFFSET_BEGINNING)
            for topic in (ALERTS_TOPIC, DEAD_LETTER_TOPIC)
            for partition in metadata[topic].partitions
        ]
    )
    return reader


def _records(reader: Consumer, timeout: float) -> Iterator[Message]:
    for message in reader.consume(500, timeout):
        if message.error() is None:
            yield message


def _fetch_metrics(port: int, limit: int = 12) -> list[str]:
    """A few sample lines of the pipeline's ``/metrics``; [] when nothing serves them."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode("utf-8", "replace")
    except (OSError, ValueError):  # not served (yet): the summary goes on without it
        return []
    lines = [
        line
        for line in text.splitlines()
        if line and not line.startswith(("#", "python_", "process_"))
    ]
    return lines[:limit]


# --------------------------------------------------------------------------- the demo


def run_demo(
    options: DemoOptions | None = None,
    out: TextIO | None = None,
    *,
    pipeline: Callable[[str, int, Path], subprocess.Popen[bytes]] = start_pipeline,
) -> DemoResult:
    """Run the demo end to end (see the module docstring); everything started is stopped.

    ``pipeline`` starts the detection pipeline (bootstrap servers, metrics port, log
    path); tests may pass another starter.
    """
    options = options or DemoOptions()
    out = out or sys.stdout
    result = DemoResult(bad_records=options.bad_records)
    started = time.monotonic()
    # The log folder outlives the ExitStack: the pipeline writes until it is stopped.
    with tempfile.TemporaryDirectory(prefix="demo-") as tmp, contextlib.ExitStack() as stack:
        broker = stack.enter_context(EmbeddedBroker())
        bootstrap = broker.bootstrap_servers
        _say(out, f"broker: Tansu on {bootstrap}")
        ensure_topic(bootstrap, DEFAULT_TOPIC, INPUT_PARTITIONS)
        # Created here (as the pipeline would: 1 partition) so the reader can assign them
        # before the pipeline is up, instead of waiting on a group for topics to appear.
        for topic in (ALERTS_TOPIC, DEAD_LETTER_TOPIC):
            ensure_topic(bootstrap, topic, 1)

        metrics_port = free_port() if options.metrics else 0
        log_path = Path(tmp) / "pipeline.log"
        # Started before the reader and the producer thread exist: the pre-exec hook
        # (parent-death signal) runs in the forked child, which is only safe without threads.
        process = pipeline(bootstrap, metrics_port, log_path)
        stack.callback(_record_exit, result, process)
        _say(out, f"pipeline: python -m consumer run (pid {process.pid}, group {GROUP_ID})")

        reader = _open_reader(bootstrap)
        stack.callback(reader.close)
        plan = demo_plan(options)
        producing = _Producing(bootstrap, plan, options)
        stack.callback(_stop_thread, producing)
        _say(
            out,
            f"producing {plan.expected_records} events at {options.rate:.0f}/s to "
            f"{DEFAULT_TOPIC} ({plan.expected_attacks} attacks) ...",
        )
        producing.start()

        _watch(reader, producing, process, plan, options, result, out)
        result.sent = plan.counts
        result.seconds = time.monotonic() - started
        if process.poll() is not None:
            _say(out, f"pipeline exited early (code {process.returncode}); its output:")
            _say(out, _log_tail(log_path))
        _print_summary(result, metrics_port, out)
    return result


def _watch(
    reader: Consumer,
    producing: _Producing,
    process: subprocess.Popen[bytes],
    plan: EventPlan,
    options: DemoOptions,
    result: DemoResult,
    out: TextIO,
) -> None:
    """Print alerts as they arrive until all are in, the pipeline dies, or time is up."""
    seen: Counter[str] = Counter()
    deadline: float | None = None
    while process.poll() is None:
        for message in _records(reader, 0.2):
            _take(message, seen, result, out)
        if producing.error is not None:
            raise producing.error
        if deadline is None and not producing.is_alive():
            stats = producing.stats
            if stats is not None:
                _say(
                    out,
                    f"produced {stats.records} events in {stats.seconds:.1f}s; "
                    "waiting for alerts ...",
                )
            deadline = time.monotonic() + options.timeout
        done = result.alerts >= plan.expected_attacks and (
            result.dead_letters >= options.bad_records
        )
        if deadline is not None and (done or time.monotonic() > deadline):
            return


def _take(message: Message, seen: Counter[str], result: DemoResult, out: TextIO) -> None:
    if message.topic() == DEAD_LETTER_TOPIC:
        result.dead_letters += 1
        return
    try:
        alert = json.loads(message.value() or b"")
    except ValueError:
        alert = {}
    alert_id = str(_field(alert, "kibana.alert.uuid") or (message.key() or b"").decode())
    seen[alert_id] += 1
    result.alert_records += 1
    if seen[alert_id] == 1:
        result.alerts += 1
        result.alert_ids.append(alert_id)
        _say(out, alert_line(alert))


def _stop_thread(thread: _Producing) -> None:
    thread.stop.set()
    if thread.is_alive():
        thread.join(timeout=35)  # produce_events flushes for at most 30 s


def _record_exit(result: DemoResult, process: subprocess.Popen[bytes]) -> None:
    result.pipeline_exit = stop_pipeline(process)


def summary_rows(result: DemoResult) -> list[tuple[str, str]]:
    """The summary as (label, value) rows."""
    repeated = result.alert_records - result.alerts
    return [
        (
            "events produced",
            f"{result.sent.events} ({result.sent.duplicates} duplicates, "
            f"{result.sent.near_misses} near misses)"
            f" + {result.bad_records} bad records",
        ),
        ("attacks sent", str(result.sent.attacks)),
        (
            "alerts received",
            str(result.alerts) + (f" (+{repeated} repeated ids)" if repeated else ""),
        ),
        (
            "duplicates suppressed",
            f"{result.duplicates_suppressed} of {result.sent.attack_duplicates} re-sent attacks",
        ),
        ("dead letters", str(result.dead_letters)),
        ("seconds", f"{result.seconds:.1f}"),
        ("result", "ok: one alert per attack" if result.ok else "NOT OK: see the counts above"),
    ]


def _print_summary(result: DemoResult, metrics_port: int, out: TextIO) -> None:
    rows = summary_rows(result)
    lines = _fetch_metrics(metrics_port) if metrics_port else []
    if metrics_port and not lines:
        rows.insert(-1, ("metrics", "not served"))
    width = max(len(label) for label, _ in rows)
    _say(out, "\nsummary")
    for label, value in rows[:-1]:
        _say(out, f"  {label:<{width}}  {value}")
    if lines:
        _say(out, f"  metrics (http://127.0.0.1:{metrics_port}/metrics, first lines):")
        for line in lines:
            _say(out, f"    {line}")
    label, value = rows[-1]
    _say(out, f"  {label:<{width}}  {value}")


def _say(out: TextIO, text: str) -> None:
    print(text, file=out, flush=True)


# --------------------------------------------------------------------------- command line


def add_demo_parser(subparsers: Any) -> None:
    """Add the ``demo`` command to ``subparsers`` (from ``add_subparsers``).

    Its ``command`` default takes the parsed namespace and returns the exit code.
    """
    defaults = DemoOptions()
    parser = subparsers.add_parser(
        "demo",
        help="run the whole job locally: embedded broker, generated events, live alerts",
        description=__doc__.split("\n\n")[0].split(": ", 1)[-1],
    )
    parser.add_argument(
        "--count",
        type=int,
        default=defaults.count,
        help=f"distinct events to produce (default {defaults.count})",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=defaults.rate,
        help=f"events per second; 0: as fast as possible (default {defaults.rate:.0f})",
    )
    parser.add_argument(
        "--attacks",
        type=int,
        default=defaults.attacks,
        help=f"about how many attacks to mix in (default {defaults.attacks})",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=defaults.timeout,
        help=f"seconds to wait for alerts after the last event (default {defaults.timeout:.0f})",
    )
    parser.set_defaults(command=run_demo_command)


def run_demo_command(args: argparse.Namespace) -> int:
    """The ``demo`` command: 0 when every attack gave exactly one alert."""
    if args.count < 1 or args.rate < 0 or args.attacks < 1 or args.timeout <= 0:
        print("error: --count and --attacks must be positive, --rate not negative", file=sys.stderr)
        return 2
    options = DemoOptions(
        count=args.count, rate=args.rate, attacks=args.attacks, timeout=args.timeout
    )
    with _sigterm_as_interrupt():
        try:
            result = run_demo(options)
        except KeyboardInterrupt:
            print("interrupted; everything the demo started is stopped", file=sys.stderr)
            return 130
        except Exception as exc:  # a demo reports; a traceback helps no new user
            print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
    if result.pipeline_exit:
        print(
            f"warning: the pipeline exited with code {result.pipeline_exit} when stopped",
            file=sys.stderr,
        )
        return 1
    return 0 if result.ok else 1


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl+C, so the broker and pipeline are stopped either way."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
