"""Peak memory of one member is flat in the number of events it processed.

The bar (performance issue): a 10-million-event run ends within 10% of the memory of a
1-million-event run. One run here shows both: ``--events`` (10,000,000) JSON events in one
4-partition topic on an Apache Kafka node of its own, ``python -m consumer run`` (seed
rule, exactly-once) once over it, and the member's peak RSS (``VmHWM``) read when its
committed offsets pass ``--checkpoint`` (1,000,000), each multiple of it, and the end.

Events: a pool of ``--pool`` distinct generated events (1 match in ``--match-every``) is
encoded once and cycled. Each record gets its own ``event.id`` and event time (advancing
``--events-per-second``, so windows open, fill, hit the 100-alert limit at 1 match in 100
and close), written over the pool event's in the encoded bytes with values of the same
length. lz4 on the wire and on disk: 10 million events take about 4 GB.

    .venv/bin/python bench/bench_memory.py [--events 10000000] [--checkpoint 1000000]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from bench_pipeline import (
    check_running,
    committed,
    loader,
    offsets_reader,
    peak_rss_kib,
    produce,
    start_member,
)
from stream import Template, records, templates

from consumer.brokers import KafkaNode

TOPIC = "memory-json"
#: Disk a record takes on the broker, lz4-compressed, with room to spare.
BYTES_PER_EVENT_ON_DISK = 600
def load(bootstrap: str, count: int, pool: list[Template], events_per_second: int) -> None:
    """Create the topic and produce ``count`` records into it, lz4-compressed."""
    producer = loader(bootstrap, TOPIC)
    for i, value in enumerate(records(count, pool, events_per_second)):
        produce(producer, TOPIC, value, str(i % 64).encode())
        if i % 1_000_000 == 999_999:
            print(f"  produced {i + 1:,}", flush=True)
    producer.flush(300)


def watch(bootstrap: str, count: int, checkpoint: int, workdir: Path) -> tuple[list[int], float]:
    """Run the member over the topic: its peak RSS (KiB) each time its committed offsets
    pass a multiple of ``checkpoint``, the last at ``count``; and the seconds it took."""
    group = "bench-memory"
    process = start_member(bootstrap, group, TOPIC, workdir / "member.log")
    reader = offsets_reader(bootstrap, group)
    started = time.perf_counter()
    peaks: list[int] = []
    try:
        while True:
            done = committed(reader, TOPIC)
            if done >= min(count, checkpoint * (len(peaks) + 1)):
                peaks.append(peak_rss_kib(process.pid))
                print(f"  {done:,} committed: peak RSS {peaks[-1] / 1024:.0f} MiB", flush=True)
            if done >= count:
                return peaks, time.perf_counter() - started
            check_running(process, "member", workdir)
            time.sleep(0.2)
    finally:
        reader.close()
        process.terminate()
        process.wait(60)


def check_disk(directory: Path, count: int) -> None:
    """Refuse to start when the broker's data would not fit on ``directory``'s disk."""
    need, free = count * BYTES_PER_EVENT_ON_DISK, shutil.disk_usage(directory).free
    if free < need * 1.2:
        raise SystemExit(f"{count:,} events need ~{need / 1e9:.0f} GB; {free / 1e9:.0f} GB free")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--checkpoint", type=int, default=1_000_000)
    parser.add_argument("--match-every", type=int, default=100)
    parser.add_argument("--pool", type=int, default=20_000, help="distinct events cycled")
    parser.add_argument("--events-per-second", type=int, default=1000, help="of event time")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    check_disk(workdir, args.events)
    pool = templates(args.pool, args.match_every)
    try:
        with KafkaNode(workdir / "kafka", heap="1g") as node:
            started = time.perf_counter()
            load(node.bootstrap_servers, args.events, pool, args.events_per_second)
            on_disk = sum(f.stat().st_size for f in node.data_dir.rglob("*") if f.is_file())
            print(
                f"loaded {args.events:,} events in {time.perf_counter() - started:.0f}s,"
                f" {on_disk / 1e9:.1f} GB on disk",
                flush=True,
            )
            peaks, seconds = watch(node.bootstrap_servers, args.events, args.checkpoint, workdir)
    finally:
        shutil.rmtree(workdir / "kafka", ignore_errors=True)  # the topic's data: GBs
    first, last = peaks[0], peaks[-1]
    print(
        f"\npeak RSS at {args.checkpoint:,} events: {first / 1024:.0f} MiB;"
        f" at {args.events:,}: {last / 1024:.0f} MiB; ratio {last / first:.3f}"
        f" (bar: at most 1.10); {args.events / seconds:,.0f} ev/s, start-up included;"
        f" log {workdir}"
    )
    return 0 if last <= first * 1.10 else 1


if __name__ == "__main__":
    raise SystemExit(main())
