"""The consumer against the raw Kafka client: throughput, latency, memory, CPU per event.

One run, one Apache Kafka node (started here, on loopback), the seed rule:

1. load topics: ~1 KB-2 KB realistic endpoint events, JSON and Avro (Confluent framing),
   at 1 match in 10,000 and 1 in 100, into 4 partitions each;
2. bare consume: a confluent-kafka consumer reading every record (touching its value)
   as fast as it can: the baseline every figure is divided by;
3. the consumer (``python -m consumer run``, exactly-once) from the start of each topic
   until its committed offsets reach the end: events/s, ratio to bare, peak RSS, CPU
   microseconds per event;
4. latency: events produced at half the measured JSON rate (at most 20,000/s) with 1
   match in 100, their event times spread so no window reaches the 100-alert limit; for
   each alert, alert readable on the alerts topic (read_committed) minus the event
   record's broker timestamp: p50 and p99.

Machines are noisy: compare the ratios of one run, not figures across runs.

    .venv/bin/python bench/bench_pipeline.py [--events 500000] [--skip-latency]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from consumer.brokers import KafkaNode
from consumer.codecs import encode_event_avro, encode_event_json
from consumer.generator import generate_events

PARTITIONS = 4
CONSUMER_TUNING = {"fetch.wait.max.ms": 50, "fetch.queue.backoff.ms": 5}


@dataclass
class Result:
    name: str
    events: int
    seconds: float
    rss_kib: int | None = None
    cpu_seconds: float | None = None

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def load(bootstrap: str, topic: str, count: int, match_every: int, fmt: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result()
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 500_000,
        }
    )
    encode = (
        encode_event_json
        if fmt == "json"
        else (lambda e: encode_event_avro(e, confluent_schema_id=1, drop_unknown=True))
    )
    for i, event in enumerate(generate_events(count, match_every=match_every, seed=3)):
        while True:
            try:
                producer.produce(topic, encode(event), key=str(i % 64).encode())
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(120)


def bare_consume(bootstrap: str, topic: str, count: int) -> Result:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bare-{topic}-{time.time()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **CONSUMER_TUNING,
        }
    )
    consumer.subscribe([topic])
    seen = size = 0
    started = None
    while seen < count:
        batch = consumer.consume(500, 1.0)
        if started is None and batch:
            started = time.perf_counter()
        for message in batch:
            if message.error() is None:
                size += len(message.value())
                seen += 1
    elapsed = time.perf_counter() - (started or time.perf_counter())
    consumer.close()
    return Result(f"bare consume {topic}", seen, elapsed)


def _start_member(
    bootstrap: str, group: str, topic: str, log_path: Path, *extra: str
) -> subprocess.Popen[bytes]:
    """``python -m consumer run`` on ``topic`` with its defaults (exactly-once)."""
    return subprocess.Popen(
        [sys.executable, "-m", "consumer", "run", "--bootstrap-servers", bootstrap,
         "--group-id", group, "--instance-id", "bench", "--input-topics", topic,
         "--metrics-port", "0", "--log-level", "WARNING", *extra],
        stdout=log_path.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def consumer_run(bootstrap: str, topic: str, count: int, workdir: Path) -> Result:
    group = f"bench-{topic}"
    process = _start_member(bootstrap, group, topic, workdir / f"{group}.log")
    admin = AdminClient({"bootstrap.servers": bootstrap})
    request = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    started = cpu_start = None
    try:
        while True:
            done = _committed(admin, group, topic, request)
            if started is None and done > 0:
                started, cpu_start = time.perf_counter(), _cpu_seconds(process.pid)
                first = done
            if done >= count:
                elapsed = time.perf_counter() - started
                cpu = _cpu_seconds(process.pid) - cpu_start
                rss = _peak_rss_kib(process.pid)
                return Result(f"consumer {topic}", count - first, elapsed, rss, cpu)
            if process.poll() is not None:
                raise RuntimeError(f"consumer exited {process.returncode}; see {workdir}")
            time.sleep(0.05)
    finally:
        process.terminate()
        process.wait(60)


def _committed(admin: AdminClient, group: str, topic: str, request) -> int:
    from confluent_kafka import ConsumerGroupTopicPartitions

    try:
        result = admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group, request)], require_stable=True
        )[group].result(timeout=5)
    except Exception:
        return 0
    return sum(tp.offset for tp in result.topic_partitions if tp.offset > 0)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def latency(bootstrap: str, rate: float, seconds: float, workdir: Path) -> tuple[float, float, int]:
    """p50 and p99 of (alert readable) - (source record's broker timestamp), in ms."""
    topic, group = "latency-json", "bench-latency"
    alerts = f"{group}-alerts"
    # The admin client must outlive its futures, or they fail as "handle destroyed".
    admin = AdminClient({"bootstrap.servers": bootstrap})
    # One partition: event times stay in order, so none is late against the watermark
    # (late events share the newest window's budget, and would be cut by its limit).
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result()
    process = _start_member(
        bootstrap, group, topic, workdir / "latency.log", "--alerts-topic", alerts
    )
    reader = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "latency-reader",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "fetch.wait.max.ms": 5,
            "fetch.queue.backoff.ms": 1,
        }
    )
    sent: dict[tuple[int, int], float] = {}

    def delivered(error, message) -> None:
        if error is None:
            sent[(message.partition(), message.offset())] = message.timestamp()[1] / 1000

    samples: list[float] = []
    reading = threading.Event()

    def read_alerts() -> None:
        # Its own thread, so an alert is timed when it becomes readable, not when the
        # producing loop has a moment to spare.
        while not reading.is_set():
            for message in reader.consume(100, 0.05):
                if message.error() is None:
                    source = json.loads(message.value())["kibana.alert.ancestors"][0]
                    sent_at = sent.get((source["partition"], source["offset"]))
                    if sent_at is not None:
                        samples.append((time.time() - sent_at) * 1000)

    try:
        reader.subscribe([alerts])
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1})
        count, interval = int(rate * seconds), 1.0 / rate
        # Event times are spread so that no 5-minute window holds 100 matches: past the
        # limit no alert is made, and the latency of the rest could not be measured.
        # They end now, in order, so none is late or clamped.
        spread = 30.0
        start = datetime.now(UTC) - timedelta(seconds=count / spread)
        _warm_up(producer, reader, topic, start - timedelta(seconds=1))
        thread = threading.Thread(target=read_alerts, daemon=True)
        thread.start()
        # Encoded before the clock starts: on two cores, generating events at the
        # measured rate would take the CPU the consumer is being measured on.
        values = [
            encode_event_json(e)
            for e in generate_events(
                count, match_every=100, seed=5, start=start, events_per_second=spread
            )
        ]
        next_at = time.perf_counter()
        for i, value in enumerate(values):
            producer.produce(topic, value, key=str(i % 64).encode(), on_delivery=delivered)
            producer.poll(0)
            next_at += interval
            delay = next_at - time.perf_counter()
            if delay > 0.001:
                time.sleep(delay)
        producer.flush(30)
        deadline = time.monotonic() + 15
        while len(samples) < count // 100 and time.monotonic() < deadline:
            time.sleep(0.1)
        reading.set()
        thread.join(5)
        samples.sort()
        return samples[len(samples) // 2], samples[int(len(samples) * 0.99)], len(samples)
    finally:
        reader.close()
        process.terminate()
        process.wait(60)


def _warm_up(producer: Producer, reader: Consumer, topic: str, at: datetime) -> None:
    """One attack through the whole pipeline first, so the measured stream does not
    include the member joining its group and being assigned. Its time ``at`` is just
    before the stream's, so it does not move the rule's watermark past it."""
    [attack] = generate_events(1, match_every=1, seed=99, start=at)
    producer.produce(topic, encode_event_json(attack))
    producer.flush(30)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if any(m.error() is None for m in reader.consume(10, 0.5)):
            return
    raise RuntimeError("the warm-up alert never arrived")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--formats", default="json,avro", help="comma-separated: json, avro")
    parser.add_argument("--match-every", default="10000,100", help="comma-separated rates")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    rows: list[tuple[str, Result, Result]] = []
    with KafkaNode(workdir / "kafka", heap="1g") as node:
        bootstrap = node.bootstrap_servers
        for fmt in args.formats.split(","):
            for match_every in (int(m) for m in args.match_every.split(",")):
                topic = f"{fmt}-{match_every}"
                started = time.perf_counter()
                load(bootstrap, topic, args.events, match_every, fmt)
                print(
                    f"loaded {topic}: {args.events} events in {time.perf_counter() - started:.0f}s",
                    flush=True,
                )
                bare = bare_consume(bootstrap, topic, args.events)
                ours = consumer_run(bootstrap, topic, args.events, workdir)
                rows.append((topic, bare, ours))
                print(
                    f"  bare {bare.rate:,.0f}/s  consumer {ours.rate:,.0f}/s  "
                    f"ratio {ours.rate / bare.rate:.2f}",
                    flush=True,
                )
        print()
        print(
            "| topic (format, 1 match in N) | bare consume ev/s | consumer ev/s | ratio | "
            "peak RSS MiB | CPU us/event |"
        )
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for topic, bare, ours in rows:
            print(
                f"| {topic} | {bare.rate:,.0f} | {ours.rate:,.0f} | {ours.rate / bare.rate:.2f} "
                f"| {ours.rss_kib / 1024:.0f} | {ours.cpu_seconds / ours.events * 1e6:.1f} |"
            )
        if not args.skip_latency:
            json_rate = rows[0][2].rate
            p50, p99, n = latency(bootstrap, min(json_rate / 2, 20_000), 20, workdir)
            print(
                f"\nlatency at {min(json_rate / 2, 20_000):,.0f} ev/s (1 match in 100, {n} alerts):"
                f" p50 {p50:.0f} ms, p99 {p99:.0f} ms"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
