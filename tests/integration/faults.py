"""Fault injection for the streaming pipeline: a TCP proxy, workloads, scenario runners.

Shared by ``tests/integration/test_faults.py`` (small sizes, CI) and ``scripts/reliability``
(full sizes, prints the README table). Every scenario:

- builds a known input (``Workload``): attacks, redeliveries of them (duplicates), near
  misses, benign filler and a flood of matches in one window, with the exact alert set the
  pure core decides for it (``Workload.expected``, the oracle);
- runs real members (``python -m consumer run``) against a real Apache Kafka, injects its
  fault, and waits on conditions (alerts seen, offsets committed); it sleeps only to make
  a fault last or to pick a random moment for it;
- where the fault allows, checks ``Lab.check_committed_work``: nothing is committed
  (input offsets, matches offsets) that was not turned into its candidate or alert;
- reads the alerts topic ``read_committed`` and returns a ``Row``: events, alerts,
  duplicates, missing, time to recover. ``Row.check()`` asserts the promise: no alert
  missing, none twice, nothing unexpected, at most ``max_signals`` per rule and window.

Event times. All workload events lie within one look-back (9m) of each other, so none is
ever late whatever order partitions are read in: the flood fills window W1 = [T0, T0+5m)
and goes to input partition 0 only (so which 100 of it win is the order of that partition,
deterministic), the attacks lie in W2 = [T0+5m, T0+8m) and stay under the limit. The
clock scenario builds its own input around the wall clock.

Helpers: ``TcpProxy`` (cut and restore every connection), ``ProxiedKafka`` (a node whose
advertised client listener is the proxy, so clients cannot bypass it), ``Supervisor``
(restarts a member that exits or fails its liveness probe, as Kubernetes would).
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import os
import random
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
)

from consumer.alerting import AlertingCore, Candidate
from consumer.alerting.identity import alert_uuid
from consumer.brokers import LOOPBACK, KafkaNode, free_port
from consumer.codecs import default_codec, encode_event_json
from consumer.detection import Detector
from consumer.generator import generate_events, labeled_events
from consumer.pipeline.records import decode_candidates
from consumer.rules import builtin_rules_path, load_rules

from .members import MemberProcess, Stream, with_id

RULES = load_rules([builtin_rules_path()]).rules
RULE = RULES[0]
MAX_SIGNALS = RULE.max_signals
INPUT_PARTITIONS = 4
ALERT_PARTITIONS = 3
FLOOD_PARTITION = 0
# W1 = [T0, T0 + 5m) holds the flood, W2 = [T0 + 5m, T0 + 8m) the attacks: all within 9m.
T0 = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=5)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _window_of(doc: dict[str, Any]) -> str:
    """The window (start, ISO) an alert was counted in, from its effective time."""
    effective = doc.get("kibana.alert.streaming.effective_time")
    if not effective:
        return "?"
    moment = datetime.fromisoformat(effective.replace("Z", "+00:00"))
    start = int(moment.timestamp()) // 300 * 300
    return _iso(datetime.fromtimestamp(start, tz=UTC))


# --------------------------------------------------------------------------- TCP proxy


class TcpProxy:
    """A TCP forwarder on a loopback port of its own, to break the path to a broker.

    ``start()`` listens and forwards every connection to ``target``; ``cut()`` closes the
    listener (new connections are refused) and resets every open connection; ``restore()``
    listens again on the same port. Before ``start()`` the port refuses connections, like a
    broker that is not up yet.
    """

    def __init__(self, target: tuple[str, int], port: int | None = None) -> None:
        self.target = target
        self.port = port or free_port()
        self._listener: socket.socket | None = None
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.connections = 0  # accepted so far

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def listening(self) -> bool:
        return self._listener is not None

    def start(self) -> TcpProxy:
        if self._listener is not None:
            return self
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + 10
        while True:
            try:
                listener.bind((LOOPBACK, self.port))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        listener.listen(128)
        listener.settimeout(0.1)
        self._listener = listener
        thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    restore = start

    def cut(self) -> None:
        """Refuse new connections and reset every open one."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            pairs, self._pairs = self._pairs, set()
        for pair in pairs:
            for sock in pair:
                _reset(sock)

    def stop(self) -> None:
        self.cut()

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            pair = (client, upstream)
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    _reset(client)
                    _reset(upstream)
                    return
                self._pairs.add(pair)
                self.connections += 1
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst, pair), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, pair: tuple) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        with self._lock:
            self._pairs.discard(pair)
        for sock in pair:
            _reset(sock)


def _reset(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


class ProxiedKafka:
    """An Apache Kafka node whose client listener is reached only through a ``TcpProxy``.

    Kafka tells clients where to connect in its metadata (the advertised listener), so a
    proxy in front of an ordinary node is bypassed after the first request. This node has
    two client listeners: ``INTERNAL`` (broker-to-broker, and the test's own clients:
    ``direct``) and ``PROXIED``, advertised at the proxy's port and reached through it
    (``proxied``, the members' bootstrap). Cutting the proxy cuts every member connection
    and nothing else.
    """

    def __init__(self, directory: Path, heap: str = "512m") -> None:
        self.internal_port, self.external_port, controller = (free_port() for _ in range(3))
        self.proxy = TcpProxy((LOOPBACK, self.external_port))
        host = LOOPBACK
        self.node = KafkaNode(
            directory,
            self.internal_port,
            controller_port=controller,
            heap=heap,
            overrides={
                "listeners": f"INTERNAL://{host}:{self.internal_port},"
                f"PROXIED://{host}:{self.external_port},CONTROLLER://{host}:{controller}",
                "advertised.listeners": f"INTERNAL://{host}:{self.internal_port},"
                f"PROXIED://{host}:{self.proxy.port}",
                "listener.security.protocol.map": "INTERNAL:PLAINTEXT,PROXIED:PLAINTEXT,"
                "CONTROLLER:PLAINTEXT",
                "inter.broker.listener.name": "INTERNAL",
            },
        )

    @property
    def direct(self) -> str:
        return self.node.bootstrap_servers

    @property
    def proxied(self) -> str:
        return self.proxy.address

    def start(self) -> ProxiedKafka:
        self.node.start()
        self.proxy.start()
        return self

    def stop(self) -> None:
        self.proxy.stop()
        self.node.stop()


# --------------------------------------------------------------------------- workloads


def _attack_templates() -> list[dict[str, Any]]:
    return [c.event for c in labeled_events().values() if c.matches]


def _near_miss_templates() -> list[dict[str, Any]]:
    return [c.event for c in labeled_events().values() if not c.matches]


def event_id(event: dict[str, Any]) -> str:
    return str(event["event.id"] if "event.id" in event else event["event"]["id"])


@dataclass
class Workload:
    """A known input: ``records`` in production order as ``(partition, value)``."""

    records: list[tuple[int, bytes]]
    expected: set[str]  # alert ids the pure core gives for the input in this order
    counts: dict[str, int]
    matching: int  # input records that match the rule (candidates)
    due: list[int] = field(default_factory=list)  # alerts owed after the first i+1 records

    @property
    def events(self) -> int:
        return len(self.records)

    def parts(self, fractions: Sequence[float]) -> list[list[tuple[int, bytes]]]:
        """Cut the records at the given fractions (0..1, ascending): contiguous parts."""
        cuts = [0, *(int(f * len(self.records)) for f in fractions), len(self.records)]
        return [self.records[a:b] for a, b in itertools.pairwise(cuts)]


def oracle(
    events: Iterable[dict[str, Any]],
    clock: Callable[[], float] = time.time,
    progress: list[int] | None = None,
) -> set[str]:
    """The alert ids the pure core gives for ``events`` processed in this order
    (``progress``, if given, gets the running count of alerts after each event)."""
    detector, core = Detector(RULES), AlertingCore(RULES, clock=clock)
    ids: set[str] = set()
    for event in events:
        for rule in detector.matching_rules(event):
            for output in core.process(Candidate(rule, event)):
                if output.kind == "alert":
                    ids.add(output.key)
        if progress is not None:
            progress.append(len(ids))
    return ids


def build_workload(
    seed: int,
    *,
    attacks: int = 90,
    duplicates: int = 30,
    near_misses: int = 40,
    flood: int = 400,
    benign: int = 2000,
    partitions: int = INPUT_PARTITIONS,
) -> Workload:
    """Attacks (W2, any partition), their redeliveries, near misses, benign filler, and a
    flood of distinct matches in W1 on partition 0, shuffled together (seeded)."""
    assert attacks < MAX_SIGNALS, "attacks must stay under the limit of their window"
    rng = random.Random(seed)
    templates, misses = _attack_templates(), _near_miss_templates()
    w2 = T0 + WINDOW
    attack_events = [
        with_id(
            rng.choice(templates),
            f"atk-{seed}-{i}",
            _iso(w2 + timedelta(seconds=170 * i / max(attacks, 1))),
        )
        for i in range(attacks)
    ]
    flood_events = [
        with_id(templates[i % len(templates)], f"flood-{seed}-{i}",
                _iso(T0 + timedelta(milliseconds=290_000 * i // max(flood, 1))))
        for i in range(flood)
    ]  # fmt: skip
    miss_events = [with_id(rng.choice(misses), f"miss-{seed}-{i}") for i in range(near_misses)]
    # Redeliveries: the same attack again, byte for byte or with its keys in another order.
    dup_events = []
    for i in range(duplicates):
        original = rng.choice(attack_events) if attack_events else rng.choice(templates)
        dup = copy.deepcopy(original)
        if i % 2:
            dup = json.loads(json.dumps(dup, sort_keys=True))
        dup_events.append(dup)
    benign_events = list(generate_events(benign, seed=seed, match_every=None))
    others = [1 + i % (partitions - 1) for i in range(partitions * 4)] if partitions > 1 else [0]
    # Attacks, misses and benign anywhere (any partition); the flood on partition 0, in order.
    loose: list[tuple[int, dict[str, Any]]] = [
        (rng.choice(others) if rng.random() < 0.8 else 0, e)
        for e in attack_events + miss_events + benign_events
    ]
    rng.shuffle(loose)
    # Redeliveries come after their original (a retry is later than the first delivery).
    for dup in dup_events:
        loose.insert(rng.randint(len(loose) // 2, len(loose)), (rng.choice(others), dup))
    order: list[tuple[int, dict[str, Any]]] = list(loose)
    slots = sorted(rng.sample(range(len(order) + flood), flood)) if flood else []
    for slot, event in zip(slots, flood_events, strict=True):
        order.insert(slot, (FLOOD_PARTITION, event))
    records = [(p, encode_event_json(e)) for p, e in order]
    # The oracle: W1 is only fed by partition 0 (ordered), W2 never reaches the limit, so the
    # set does not depend on how partitions interleave.
    due: list[int] = []
    expected = oracle((e for _, e in order), progress=due)
    assert len(expected) == min(flood, MAX_SIGNALS) + attacks
    counts = {
        "attacks": attacks,
        "duplicates": duplicates,
        "near_misses": near_misses,
        "flood": flood,
        "benign": benign,
    }
    return Workload(records, expected, counts, attacks + duplicates + flood, due)


def flood_workload(count: int, benign_every: int = 0) -> Iterator[bytes]:
    """``count`` distinct matching events in one window (W1), as JSON records, lazily."""
    templates = _attack_templates()
    encoded = [encode_event_json(t) for t in templates]
    for i in range(count):
        event = with_id(templates[i % len(templates)], f"big-{i}",
                        _iso(T0 + timedelta(milliseconds=(290_000 * i) // count)))  # fmt: skip
        yield encode_event_json(event)
        if benign_every and i % benign_every == 0:
            yield encoded[0].replace(b"kextunload", b"kextstat")  # a near miss
    del encoded


# --------------------------------------------------------------------------- reading


class AlertReader:
    """Reads the alerts topic ``read_committed`` in a thread of its own, from the start.

    ``records`` holds ``(key, value, arrival monotonic time)`` in arrival order.
    """

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self.records: list[tuple[str, bytes, float]] = []
        self._keys: Counter[str] = Counter()
        self._stop = threading.Event()
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"reader-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "fetch.wait.max.ms": 50,
            }
        )
        self._consumer.assign(
            [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)]
        )
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for message in self._consumer.consume(500, 0.1):
                if message.error() is None:
                    key = (message.key() or b"").decode()
                    self.records.append((key, message.value(), time.monotonic()))
                    self._keys[key] += 1
        self._consumer.close()

    def count(self) -> int:
        return len(self.records)

    def keys(self) -> Counter[str]:
        return Counter(self._keys)

    def has_all(self, expected: set[str]) -> bool:
        return len(self._keys) >= len(expected) and expected <= self._keys.keys()

    def last_arrival(self, ids: set[str]) -> float:
        return max((t for k, _, t in self.records if k in ids), default=0.0)

    def docs(self) -> list[dict[str, Any]]:
        return [json.loads(v) for _, v, _ in self.records]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


def read_all(
    bootstrap: str, topic: str, partitions: Sequence[int], *, committed: bool = True
) -> list[Any]:
    """Every record of ``topic``'s ``partitions`` present now: up to each partition's
    high watermark when asked, or its end, whichever comes first.

    The watermark, and not the end alone: a member aborting a transaction every few
    hundred ms (the alerts topic unwritable) appends an abort marker as often, and a
    ``read_committed`` fetch waiting for data (500 ms) then always returns one, so the
    end of the partition is never reported. The position moves past the markers.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"scan-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed" if committed else "read_uncommitted",
        }
    )
    highs = {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10.0)[1]
        for p in partitions
    }
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    left, found = {p for p in partitions if highs[p] > 0}, []
    deadline = time.monotonic() + 120
    try:
        while left and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.5):
                if message.error() is not None:
                    if message.error().code() == -191:  # _PARTITION_EOF
                        left.discard(message.partition())
                    continue
                found.append(message)
            for tp in consumer.position([TopicPartition(topic, p) for p in left]):
                if tp.offset >= highs[tp.partition]:
                    left.discard(tp.partition)
    finally:
        consumer.close()
    if left:
        raise TimeoutError(f"could not read {topic} {sorted(left)} to its end")
    return found


def wait_until(
    condition: Callable[[], bool],
    what: str,
    timeout: float,
    *,
    members: Sequence[MemberProcess] = (),
    interval: float = 0.1,
) -> float:
    """Poll ``condition`` until true; the seconds it took. Fails at once if a watched member
    exits, and after ``timeout`` with the tail of each watched member's log."""
    started = time.monotonic()
    while not condition():
        for member in members:
            assert member.process is not None
            if member.process.poll() is not None:
                raise AssertionError(
                    f"waiting for {what}: member exited {member.process.returncode}:\n"
                    + member.log()[-4000:]
                )
        if time.monotonic() - started > timeout:
            if os.environ.get("PYTHONFAULTHANDLER"):  # debugging a stall: dump their stacks
                for member in members:
                    if member.process is not None and member.process.poll() is None:
                        member.process.send_signal(signal.SIGABRT)
                        with contextlib.suppress(subprocess.TimeoutExpired):
                            member.process.wait(5)
            tails = "\n".join(f"--- {m.log_path.name}\n{m.log()[-3000:]}" for m in members)
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{tails}")
        time.sleep(interval)
    return time.monotonic() - started


def vm_hwm_kib(pid: int) -> int:
    """Peak resident memory of a process (``VmHWM`` in /proc/<pid>/status), KiB."""
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmHWM:\s+(\d+) kB", text, re.M)
    assert match, text
    return int(match.group(1))


# --------------------------------------------------------------------------- the lab


@dataclass
class Row:
    """One scenario's figures, for the assertion and the README table."""

    scenario: str
    events: int
    expected: int
    alerts: int = 0
    duplicates: int = 0
    missing: int = 0
    unexpected: int = 0
    max_per_window: int = 0
    recover_s: float | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        assert self.missing == 0, f"{self.scenario}: {self.missing} alert(s) missing"
        assert self.duplicates == 0, f"{self.scenario}: {self.duplicates} alert(s) twice"
        assert self.unexpected == 0, f"{self.scenario}: {self.unexpected} unexpected alert(s)"
        assert self.max_per_window <= MAX_SIGNALS, f"{self.scenario}: limit exceeded"
        assert self.alerts == self.expected

    def cells(self) -> list[str]:
        recover = "-" if self.recover_s is None else f"{self.recover_s:.1f} s"
        if self.notes.get("restarts"):
            recover += f" ({self.notes['restarts']} liveness restart(s))"
        return [
            self.scenario,
            f"{self.events:,}",
            f"{self.alerts:,} / {self.expected:,}",
            str(self.duplicates),
            str(self.missing),
            recover,
        ]


TABLE_HEADER = [
    "scenario",
    "events",
    "alerts / expected",
    "duplicates",
    "missing",
    "time to recover",
]


def table(rows: Sequence[Row]) -> str:
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + " --- |" * len(TABLE_HEADER)]
    lines += ["| " + " | ".join(r.cells()) + " |" for r in rows]
    return "\n".join(lines)


class Lab:
    """One scenario's topics, members, producer and alert reader on a broker.

    ``bootstrap`` is where the test's own clients go; ``member_bootstrap`` (default the
    same) is what members are told (a proxy, for the connection scenarios).
    """

    def __init__(
        self,
        bootstrap: str,
        workdir: Path,
        name: str,
        *,
        member_bootstrap: str | None = None,
        partitions: int = INPUT_PARTITIONS,
    ) -> None:
        self.bootstrap = bootstrap
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.partitions = partitions
        tag = uuid.uuid4().hex[:8]
        group = f"g-{name}-{tag}"
        self.stream = Stream(member_bootstrap or bootstrap, group, f"t-{name}-{tag}")
        self.admin = AdminClient({"bootstrap.servers": bootstrap})
        self._create(self.stream.input_topic, partitions)
        self._create(self.stream.alerts, ALERT_PARTITIONS)
        self.members: list[MemberProcess] = []
        self.reader = AlertReader(bootstrap, self.stream.alerts, ALERT_PARTITIONS)
        self._producer = Producer(
            {"bootstrap.servers": bootstrap, "linger.ms": 20, "enable.idempotence": True}
        )
        self.produced = 0

    @property
    def matches_topic(self) -> str:
        return f"{self.stream.group}-matches"

    def _create(self, topic: str, partitions: int) -> None:
        new = NewTopic(topic, num_partitions=partitions, replication_factor=1)
        self.admin.create_topics([new])[topic].result(30)
        deadline = time.monotonic() + 30
        while True:
            found = self.admin.list_topics(topic=topic, timeout=5).topics.get(topic)
            if (
                found
                and found.error is None
                and len(found.partitions) == partitions
                and all(p.leader >= 0 for p in found.partitions.values())
            ):
                return
            assert time.monotonic() < deadline, f"topic {topic} not ready"
            time.sleep(0.05)

    def member(
        self,
        instance: str,
        *extra: str,
        env: dict[str, str] | None = None,
        module: str = "consumer",
    ) -> MemberProcess:
        log = self.workdir / f"{instance}-{len(self.members)}.log"
        args = self.stream.member_args(instance, *extra)
        member = MemberProcess(args, log, dict(env or {}), module=module)
        self.members.append(member.start())
        return member

    def produce(self, records: Iterable[tuple[int, bytes]]) -> int:
        produced = 0
        for partition, value in records:
            while True:
                try:
                    self._producer.produce(self.stream.input_topic, value, partition=partition)
                    break
                except BufferError:
                    self._producer.poll(0.05)
            produced += 1
            if produced % 10_000 == 0:
                self._producer.poll(0)
        assert self._producer.flush(120) == 0, "the test producer could not deliver"
        self.produced += produced
        return produced

    # -- offsets and lag ------------------------------------------------------------------

    def committed(self, topic: str, partitions: int) -> dict[int, int]:
        request = ConsumerGroupTopicPartitions(
            self.stream.group, [TopicPartition(topic, p) for p in range(partitions)]
        )
        result = self.admin.list_consumer_group_offsets([request], require_stable=True)
        answer = result[self.stream.group].result(30)
        return {tp.partition: tp.offset for tp in answer.topic_partitions}

    def input_lag(self) -> int:
        """Records of the input topic not yet committed by the group."""
        try:
            committed = self.committed(self.stream.input_topic, self.partitions)
        except KafkaException:
            return -1
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "lag-probe"})
        try:
            lag = 0
            for p in range(self.partitions):
                _, high = consumer.get_watermark_offsets(
                    TopicPartition(self.stream.input_topic, p), timeout=10
                )
                lag += high - max(committed.get(p, 0), 0)
            return lag
        finally:
            consumer.close()

    # -- the invariant: committed input was turned into what it owes -------------------------

    def check_committed_work(self, expected: set[str]) -> dict[str, int]:
        """No input is committed that has not been turned into its output.

        - every matching input record below the group's committed input offset has its
          candidate in the matches topic (read_committed);
        - every candidate below the committed matches offset that the oracle alerts has its
          alert in the alerts topic (read_committed).

        Offsets are read first: everything they cover was committed with them.
        """
        matches_parts = 4
        committed_in = self.committed(self.stream.input_topic, self.partitions)
        committed_m = self.committed(self.matches_topic, matches_parts)
        codec, detector = default_codec(), Detector(RULES)
        owed: set[tuple[int, int]] = set()
        for message in read_all(self.bootstrap, self.stream.input_topic, range(self.partitions)):
            if message.offset() >= committed_in.get(message.partition(), 0):
                continue
            if detector.matching_rules(codec.decode(message.value())):
                owed.add((message.partition(), message.offset()))
        candidates = read_all(self.bootstrap, self.matches_topic, range(matches_parts))
        have = set()
        owed_alerts = set()
        for message in candidates:
            for record in decode_candidates(message.value()):
                if record.topic == self.stream.input_topic:
                    have.add((record.partition, record.offset))
                if message.offset() < committed_m.get(message.partition(), 0):
                    assert record.facts is not None  # written by this version
                    aid = alert_uuid("default", record.rule_uuid, record.facts.identity)
                    if aid in expected:
                        owed_alerts.add(aid)
        missing_candidates = owed - have
        alerts = {m.key().decode() for m in read_all(self.bootstrap, self.stream.alerts,
                                                      range(ALERT_PARTITIONS))}  # fmt: skip
        missing_alerts = owed_alerts - alerts
        assert not missing_candidates, (
            f"input committed without its candidate: {sorted(missing_candidates)[:10]}"
        )
        assert not missing_alerts, (
            f"candidates committed without their alert: {len(missing_alerts)}"
        )
        return {"committed_input": len(owed), "committed_alerts": len(owed_alerts)}

    # -- results ---------------------------------------------------------------------------

    def wait_for_alerts(
        self, expected: set[str], timeout: float, members: Sequence[MemberProcess] = ()
    ) -> float:
        return wait_until(
            lambda: self.reader.has_all(expected),
            f"{len(expected)} alerts (have {len(self.reader.keys())})",
            timeout,
            members=members,
            interval=0.2,
        )

    def settle(self, seconds: float = 3.0) -> None:
        """Wait until nothing new arrives for ``seconds`` (to see any late duplicate)."""
        last = -1
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < seconds:
            count = self.reader.count()
            if count != last:
                last, quiet_since = count, time.monotonic()
            time.sleep(0.1)

    def row(self, scenario: str, expected: set[str], recover_s: float | None = None) -> Row:
        keys = self.reader.keys()
        per_window = Counter(_window_of(d) for d in self.reader.docs())
        return Row(
            scenario=scenario,
            events=self.produced,
            expected=len(expected),
            alerts=sum(keys.values()),
            duplicates=sum(c - 1 for c in keys.values() if c > 1),
            missing=len(expected - keys.keys()),
            unexpected=len(keys.keys() - expected),
            max_per_window=max(per_window.values(), default=0),
            recover_s=recover_s,
        )

    def close(self) -> None:
        for member in self.members:
            member.stop_quietly()
        self.reader.close()
        self._producer.flush(10)


@contextlib.contextmanager
def lab(bootstrap: str, workdir: Path, name: str, **kwargs: Any) -> Iterator[Lab]:
    made = Lab(bootstrap, workdir, name, **kwargs)
    try:
        yield made
    finally:
        made.close()


def started(member: MemberProcess, timeout: float = 60.0) -> MemberProcess:
    member.wait_for_log("assigned", timeout)
    return member


# --------------------------------------------------------------------------- scenarios


def scenario_sigkill(bootstrap: str, workdir: Path, *, seed: int, kills: int = 2,
                     size: dict[str, int] | None = None) -> Row:  # fmt: skip
    """SIGKILL the member at random points (after a random number of alerts, a random
    extra delay), restart it under the same instance id each time; production goes on."""
    rng = random.Random(seed)
    work = build_workload(seed, **(size or {}))
    parts = work.parts(sorted(rng.uniform(0.1, 0.9) for _ in range(kills)))
    with lab(bootstrap, workdir, f"kill{seed}") as run:
        member = started(run.member("m1"))
        killed_at = time.monotonic()
        for index, part in enumerate(parts):
            run.produce(part)
            if index == len(parts) - 1:
                break
            # A random point: a random number of the alerts owed so far in, then a random
            # moment in the next second.
            owed = work.due[run.produced - 1]
            target = rng.randint(min(run.reader.count(), owed), owed)
            wait_until(lambda t=target: run.reader.count() >= t, f"{target} alerts", 90,
                       members=[member])  # fmt: skip
            time.sleep(rng.uniform(0, 1.0))
            member.kill()
            killed_at = time.monotonic()
            member = run.member("m1")  # restarted at once, as a supervisor would
            # The invariant holds at any moment, the restarted member's commits included.
            run.check_committed_work(work.expected)
        run.wait_for_alerts(work.expected, 90, [member])
        wait_until(lambda: run.input_lag() == 0, "input lag 0", 60, members=[member])
        recover = time.monotonic() - killed_at
        run.settle()
        row = run.row(f"SIGKILL x{kills}, restart (seed {seed})", work.expected, recover)
        assert member.terminate() == 0
        return row


def scenario_scale(bootstrap: str, workdir: Path, *, seed: int = 5,
                   size: dict[str, int] | None = None) -> Row:  # fmt: skip
    """1 -> 3 -> 1 members during the stream; the two extra leave with SIGTERM (exit 0)."""
    work = build_workload(seed, **(size or {}))
    first, second, third = work.parts([0.3, 0.7])
    with lab(bootstrap, workdir, "scale") as run:
        m1 = started(run.member("m1"))
        run.produce(first)
        wait_until(lambda: run.reader.count() >= 5, "first alerts", 60, members=[m1])
        m2, m3 = run.member("m2"), run.member("m3")
        run.produce(second)
        started(m2)
        started(m3)
        wait_until(lambda: run.input_lag() == 0, "3 members caught up", 120,
                   members=[m1, m2, m3])  # fmt: skip
        assert m2.terminate() == 0, m2.log()[-3000:]
        assert m3.terminate() == 0, m3.log()[-3000:]
        left_at = time.monotonic()
        run.produce(third)
        run.wait_for_alerts(work.expected, 120, [m1])
        wait_until(lambda: run.input_lag() == 0, "input lag 0", 60, members=[m1])
        recover = time.monotonic() - left_at
        run.settle()
        row = run.row("scale 1 -> 3 -> 1", work.expected, recover)
        assert m1.terminate() == 0
        return row


def readyz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def scenario_unreachable_at_start(bootstrap: str, workdir: Path, *, seed: int = 9,
                                  down_s: float = 8.0,
                                  size: dict[str, int] | None = None) -> Row:  # fmt: skip
    """The member starts while the broker is unreachable (a proxy not yet listening): it
    retries with backoff, reports not ready, does not exit; the proxy comes up and every
    alert is written."""
    host, _, port = bootstrap.partition(":")
    proxy = TcpProxy((host, int(port)))
    work = build_workload(seed, **(size or {}))
    metrics_port = free_port()
    try:
        with lab(bootstrap, workdir, "unreach", member_bootstrap=proxy.address) as run:
            run.produce(work.records)  # the backlog waits for the member
            member = run.member("m1", "--startup-timeout-s", "120",
                                "--metrics-port", str(metrics_port))  # fmt: skip
            began = time.monotonic()
            # Waiting with backoff: retries logged, not ready, still running.
            wait_until(lambda: "Retrying" in member.log(), "a retry", 60,
                       members=[member])  # fmt: skip
            while time.monotonic() - began < down_s:
                assert member.process is not None and member.process.poll() is None
                time.sleep(0.2)
            not_ready = readyz(metrics_port)
            retries = member.log().count("Retrying")
            proxy.start()
            up_at = time.monotonic()
            run.wait_for_alerts(work.expected, 120, [member])
            wait_until(lambda: run.input_lag() == 0, "input lag 0", 60, members=[member])
            recover = time.monotonic() - up_at
            wait_until(lambda: readyz(metrics_port) == 200, "ready", 30, members=[member])
            run.settle()
            row = run.row(f"broker unreachable {down_s:.0f} s at start", work.expected, recover)
            row.notes.update(retries=retries, readyz_while_down=not_ready)
            assert member.terminate() == 0
            return row
    finally:
        proxy.stop()


def healthz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


class Supervisor:
    """Kubernetes in miniature for one member: it is restarted (same instance id) when its
    process exits or its liveness probe (``/healthz``) fails, as the Helm chart's
    ``livenessProbe`` does. ``restarts`` says how often that was needed."""

    def __init__(self, run: Lab, instance: str, liveness_s: int = 40) -> None:
        self.run, self.instance, self.liveness_s = run, instance, liveness_s
        self.restarts = 0
        self.reasons: list[str] = []
        self.member = self._start()

    def _start(self) -> MemberProcess:
        self.port = free_port()
        return self.run.member(
            self.instance,
            "--metrics-port", str(self.port),
            "--liveness-timeout-s", str(self.liveness_s),
        )  # fmt: skip

    def check(self) -> None:
        """One probe round: restart the member if it is dead or stuck."""
        assert self.member.process is not None
        code = self.member.process.poll()
        reason = None
        if code is not None:
            reason = f"exited {code}"
        elif healthz(self.port) == 503:
            reason = "liveness probe failed"
        if reason is None:
            return
        self.reasons.append(reason + ": " + _last_lines(self.member.log()))
        self.member.stop_quietly()  # SIGKILL, as the kubelet does after the grace period
        self.restarts += 1
        self.member = self._start()

    def until(self, condition: Callable[[], bool], what: str, timeout: float) -> float:
        def probe() -> bool:
            self.check()
            return condition()

        return wait_until(probe, what, timeout, interval=0.5)


def _last_lines(log: str, count: int = 3) -> str:
    lines = [line for line in log.splitlines() if line.startswith(("{", "Traceback", "cimpl"))]
    return " / ".join(line[:300] for line in lines[-count:])


def scenario_connection_cut(kafka: ProxiedKafka, workdir: Path, *, seed: int = 13,
                            cut_s: float = 5.0, cuts: int = 1, liveness_s: int = 40,
                            size: dict[str, int] | None = None) -> Row:  # fmt: skip
    """Every connection of the member is reset mid-stream and refused for ``cut_s``,
    ``cuts`` times, while events keep arriving; then restored. The member runs under a
    ``Supervisor`` (restart on exit or failed liveness, like Kubernetes)."""
    work = build_workload(seed, **(size or {}))
    parts = work.parts([(i + 1) / (cuts + 1) for i in range(cuts)])
    with lab(kafka.direct, workdir, f"cut{int(cut_s)}", member_bootstrap=kafka.proxied) as run:
        sup = Supervisor(run, "m1", liveness_s)
        started(sup.member)
        restored_at = time.monotonic()
        for index, part in enumerate(parts):
            if index:
                kafka.proxy.cut()
                cut_at = time.monotonic()
                run.produce(part)  # the stream goes on while the member is cut off
                sup.until(lambda c=cut_at: time.monotonic() - c >= cut_s, "the cut", cut_s + 60)
                kafka.proxy.restore()
                restored_at = time.monotonic()
            else:
                run.produce(part)
                sup.until(lambda: run.reader.count() >= 10, "alerts before the cut", 60)
        sup.until(lambda: run.reader.has_all(work.expected), "every alert", 150)
        sup.until(lambda: run.input_lag() == 0, "input lag 0", 60)
        recover = time.monotonic() - restored_at
        run.settle()
        row = run.row(f"connection cut {cut_s:g} s mid-stream x{cuts}", work.expected, recover)
        row.notes.update(restarts=sup.restarts, restart_reasons=sup.reasons)
        assert sup.member.terminate() == 0, sup.member.log()[-3000:]
        return row


def _set_topic_config(admin: AdminClient, topic: str, name: str, value: str | None) -> None:
    op = AlterConfigOpType.SET if value is not None else AlterConfigOpType.DELETE
    resource = ConfigResource(
        "TOPIC",
        topic,
        incremental_configs=[ConfigEntry(name, value or "", incremental_operation=op)],
    )
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(30)


def scenario_alerts_unwritable(bootstrap: str, workdir: Path, *, seed: int = 17,
                               outage_s: float = 6.0, size: dict[str, int] | None = None,
                               member_module: str = "consumer",
                               name: str | None = None) -> Row:  # fmt: skip
    """The alerts topic refuses every alert for a while (its max.message.bytes cut to 256):
    nothing is committed that was not turned into its alert; after the fix every alert is
    there once. ``member_module``: the member's entry point (a fault-injecting one), and
    ``name`` the row's then."""
    work = build_workload(seed, **(size or {}))
    first, second = work.parts([0.4])
    with lab(bootstrap, workdir, "unwritable") as run:
        member = started(run.member("m1", module=member_module))
        run.produce(first)
        wait_until(lambda: run.input_lag() == 0, "part one committed", 90, members=[member])
        run.settle(1.0)
        _set_topic_config(run.admin, run.stream.alerts, "max.message.bytes", "256")
        broken_at = time.monotonic()
        before = run.reader.count()
        run.produce(second)
        # The member sees its alerts refused and its transactions fail, again and again.
        wait_until(lambda: member.log().count("commit failed") >= 2, "failed commits", 90,
                   members=[member])  # fmt: skip
        while time.monotonic() - broken_at < outage_s:
            time.sleep(0.2)
        invariant = run.check_committed_work(work.expected)
        during = run.reader.count() - before
        _set_topic_config(run.admin, run.stream.alerts, "max.message.bytes", None)
        fixed_at = time.monotonic()
        run.wait_for_alerts(work.expected, 90, [member])
        wait_until(lambda: run.input_lag() == 0, "input lag 0", 60, members=[member])
        recover = time.monotonic() - fixed_at
        run.settle()
        row = run.row(name or f"alerts topic unwritable {outage_s:g} s", work.expected, recover)
        row.notes.update(invariant, alerts_during_outage=during,
                         failed_commits=member.log().count("commit failed"),
                         producers_replaced=member.log().count("replacing it"))  # fmt: skip
        assert member.terminate() == 0
        return row


def scenario_alerts_deleted(bootstrap: str, workdir: Path, *, seed: int = 19,
                            size: dict[str, int] | None = None) -> Row:  # fmt: skip
    """The alerts topic is deleted while the member runs, then created again by an operator
    (the broker here auto-creates topics, so it may come back earlier): alerts of input
    committed before the deletion are gone with the topic and not redone; every alert of
    input after it is in the new topic once."""
    work = build_workload(seed, **(size or {}))
    first, second = work.parts([0.5])
    with lab(bootstrap, workdir, "deleted") as run:
        member = started(run.member("m1"))
        run.produce(first)
        # Idle point: everything of part one committed (alerts of what it owes are in).
        wait_until(lambda: run.input_lag() == 0, "part one committed", 90, members=[member])
        run.settle(2.0)
        before = set(run.reader.keys())
        run.reader.close()
        run.admin.delete_topics([run.stream.alerts])[run.stream.alerts].result(30)
        deleted_at = time.monotonic()
        run.produce(second)
        time.sleep(1.0)  # give the member time to try writing to the missing topic
        with contextlib.suppress(KafkaException):
            run._create(run.stream.alerts, ALERT_PARTITIONS)
        parts_now = len(run.admin.list_topics(run.stream.alerts, timeout=10)
                        .topics[run.stream.alerts].partitions)  # fmt: skip
        run.reader = AlertReader(run.bootstrap, run.stream.alerts, parts_now)
        owed = work.expected - before
        run.wait_for_alerts(owed, 90, [member])
        wait_until(lambda: run.input_lag() == 0, "input lag 0", 60, members=[member])
        recover = time.monotonic() - deleted_at
        run.settle()
        row = run.row("alerts topic deleted and re-created", owed, recover)
        row.notes.update(before_delete=len(before))
        assert member.terminate() == 0
        return row


def scenario_fenced(bootstrap: str, workdir: Path, *, seed: int = 23,
                    size: dict[str, int] | None = None) -> Row:  # fmt: skip
    """A second member starts with the same instance id: the first one's producer is fenced
    (it exits 3, fatal, naming the fencing), the second carries on, nothing lost or twice."""
    work = build_workload(seed, **(size or {}))
    first, second = work.parts([0.5])
    with lab(bootstrap, workdir, "fenced") as run:
        zombie = started(run.member("same"))
        run.produce(first)
        wait_until(lambda: run.reader.count() >= 10, "first alerts", 60, members=[zombie])
        successor = started(run.member("same"))
        twin_at = time.monotonic()
        # The first one learns it is fenced at its next transaction: give it work.
        run.produce(second)
        assert zombie.process is not None
        wait_until(lambda: zombie.process.poll() is not None, "the fenced member to exit", 90,
                   members=[successor])  # fmt: skip
        fenced_at = time.monotonic()
        code = zombie.process.returncode
        run.wait_for_alerts(work.expected, 90, [successor])
        wait_until(lambda: run.input_lag() == 0, "input lag 0", 60, members=[successor])
        recover = time.monotonic() - twin_at
        run.settle()
        row = run.row("producer fenced by a twin", work.expected, recover)
        row.notes.update(zombie_exit=code, zombie_log=zombie.log()[-2000:],
                         exit_after_s=fenced_at - twin_at)  # fmt: skip
        assert successor.terminate() == 0
        return row


def scenario_flood(bootstrap: str, workdir: Path, *, count: int) -> Row:
    """``count`` distinct matches in one window as a backlog: exactly 100 alerts (the first
    100 of the partition), memory flat (VmHWM), the lag back to 0."""
    with lab(bootstrap, workdir, f"flood{count}", partitions=1) as run:
        run.produce((0, value) for value in flood_workload(count))
        expected = {
            alert_uuid("default", RULE.uuid, f"big-{i}") for i in range(min(count, MAX_SIGNALS))
        }
        member = run.member("m1")
        assert member.process is not None
        pid = member.process.pid
        began = time.monotonic()
        samples: list[tuple[int, int]] = []  # (input lag, VmHWM KiB)

        def caught_up() -> bool:
            lag = run.input_lag()
            with contextlib.suppress(OSError):
                samples.append((lag, vm_hwm_kib(pid)))
            return lag == 0

        wait_until(caught_up, "the flood's lag back to 0", 60 + count / 500, members=[member],
                   interval=0.5)  # fmt: skip
        recover = time.monotonic() - began
        run.wait_for_alerts(expected, 60, [member])
        run.settle()
        row = run.row(f"flood: {count:,} matches in one window", expected, recover)
        # Peak memory once a tenth of the flood was processed, and at the end.
        progressed = [h for lag, h in samples if 0 <= lag <= count * 0.9]
        row.notes.update(
            hwm_early_mib=(progressed[0] if progressed else samples[0][1]) / 1024,
            hwm_end_mib=samples[-1][1] / 1024,
            throughput=count / recover,
        )
        statuses = read_all(bootstrap, run.stream.statuses, [0])
        row.notes["status_records"] = [json.loads(m.value()) for m in statuses]
        assert member.terminate() == 0
        return row


Events = list[dict[str, Any]]


def clock_workload(
    now: datetime, normal: int, absurd: int, benign: int, seed: int = 31
) -> tuple[Events, Events, Events, list[bytes]]:
    """Normal attacks in the last 4 minutes before ``now``, a warm-up of 5 of them, absurd
    ones (years 2000 and 1970, 9999 and ``now`` + 30 days), benign load."""
    rng = random.Random(seed)
    templates = _attack_templates()
    normals = [
        with_id(rng.choice(templates), f"normal-{i}",
                _iso(now - timedelta(seconds=240) + timedelta(seconds=230 * i / normal)))
        for i in range(normal)
    ]  # fmt: skip
    absurd_times = [
        "2000-01-01T00:00:00.000Z",
        "1970-01-01T00:00:00.001Z",
        "9999-12-31T23:59:59.999Z",
        _iso(now + timedelta(days=30)),
        _iso(now - timedelta(days=400)),
        _iso(now + timedelta(hours=2)),
    ]
    absurds = [
        with_id(rng.choice(templates), f"absurd-{i}", absurd_times[i % len(absurd_times)])
        for i in range(absurd)
    ]
    load = [encode_event_json(e) for e in generate_events(benign, seed=seed, match_every=None)]
    return normals[:5], normals[5:], absurds, load


def scenario_clock(bootstrap: str, workdir: Path, *, normal: int = 60, absurd: int = 30,
                   benign: int = 20_000) -> Row:  # fmt: skip
    """Far-future and far-past events interleaved with normal ones under load: the normal
    ones keep their own time and window (never late, never clamped); the absurd ones are
    alerted, marked late or clamped, and counted in the metrics."""
    now = datetime.now(UTC)
    warmup, normals, absurds, load = clock_workload(now, normal, absurd, benign)
    rng = random.Random(3)
    mixed: list[bytes] = [encode_event_json(e) for e in normals + absurds] + load
    rng.shuffle(mixed)
    metrics_port = free_port()
    expected = oracle(warmup + normals + absurds)
    assert len(expected) == normal + absurd
    with lab(bootstrap, workdir, "clock") as run:
        member = started(run.member("m1", "--metrics-port", str(metrics_port)))
        run.produce((i % INPUT_PARTITIONS, encode_event_json(e)) for i, e in enumerate(warmup))
        wait_until(lambda: run.reader.count() >= len(warmup), "warm-up alerts", 60,
                   members=[member])  # fmt: skip
        began = time.monotonic()
        run.produce((i % INPUT_PARTITIONS, v) for i, v in enumerate(mixed))
        run.wait_for_alerts(expected, 120, [member])
        wait_until(lambda: run.input_lag() == 0, "input lag 0", 60, members=[member])
        recover = time.monotonic() - began
        run.settle()
        row = run.row("clock: far future and far past under load", expected, recover)
        docs = {d["kibana.alert.uuid"]: d for d in run.reader.docs()}
        by_event = {d["kibana.alert.ancestors"][0]["id"]: d for d in docs.values()}
        row.notes["normal"] = [(e, by_event.get(event_id(e))) for e in warmup + normals]
        row.notes["absurd"] = [(e, by_event.get(event_id(e))) for e in absurds]
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
            row.notes["metrics"] = r.read().decode()
        assert member.terminate() == 0
        return row


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes"}
