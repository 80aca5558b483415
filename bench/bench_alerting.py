"""Benchmark the alerting core alone: candidates per second and peak memory.

All candidates are distinct matching events in ONE window of the seed rule, so after the
first 100 every candidate is checked for duplicates and cut by the budget. Memory must
be flat in the number of candidates: only alerted identities (100) are kept.

Run: ``.venv/bin/python bench/bench_alerting.py [--sizes 100 100000 1000000]``.
Throughput is measured without tracing; peak memory in a second, traced run
(tracemalloc: Python allocations made while processing, the outputs discarded as a
publisher would after sending them). State changes are drained every 500 candidates, as
a pipeline would at each transaction.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

from consumer.alerting import AlertingCore, Candidate, InMemoryState
from consumer.rules import builtin_rules_path, load_toml_rule

ROOT = Path(__file__).resolve().parents[1]
EVENT = ROOT / "tests" / "vectors" / "alerting" / "defend_macos_kextunload_event.json"
WINDOW_START_MS = 1_660_140_000_000  # 2022-08-10T14:00:00Z, a 5m window boundary
DRAIN_EVERY = 500


def seed_rule():
    path = builtin_rules_path() / "defense_evasion_unload_endpointsecurity_kext.toml"
    return load_toml_rule(path.read_text(), str(path))


def candidates(rule, count: int) -> Iterator[Candidate]:
    """``count`` distinct Defend events spread over one 5-minute window."""
    template = json.loads(EVENT.read_text())
    event_part = template.pop("event")
    for i in range(count):
        ms = WINDOW_START_MS + (i * 7) % 300_000
        seconds, millis = divmod(ms, 1000)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"
        ev = dict(template)
        ev["@timestamp"] = stamp
        ev["event"] = {**event_part, "id": f"bench-{i}", "created": stamp}
        yield Candidate(rule, ev, "logs-endpoint.events.process-default", 0, i, ms)


def run(rule, count: int) -> tuple[float, dict[str, int], int]:
    state = InMemoryState()
    core = AlertingCore([rule], state=state, clock=lambda: (WINDOW_START_MS + 600_000) / 1000)
    alerts = 0
    started = time.perf_counter()
    for number, candidate in enumerate(candidates(rule, count)):
        alerts += sum(o.kind == "alert" for o in core.process(candidate))
        if number % DRAIN_EVERY == 0:
            core.drain_state_changes()
    core.drain_state_changes()
    elapsed = time.perf_counter() - started
    counters = core.counters[rule.uuid].as_dict()
    assert alerts == counters["alerts"] == min(count, rule.max_signals)
    return elapsed, counters, state.size()


def generation_cost(rule, count: int) -> float:
    started = time.perf_counter()
    for _ in candidates(rule, count):
        pass
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 100_000, 1_000_000])
    args = parser.parse_args()
    rule = seed_rule()
    print(f"rule: {rule.name} (max_signals {rule.max_signals}, interval {rule.interval})")
    print(
        f"{'candidates':>11} {'seconds':>8} {'cand/s':>9} {'core-only/s':>11} "
        f"{'peak KiB':>9} {'state entries':>13}  counters"
    )
    for count in args.sizes:
        gc.collect()
        elapsed, counters, entries = run(rule, count)
        gen = generation_cost(rule, count)
        gc.collect()
        tracemalloc.start()
        run(rule, count)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        core_only = count / max(elapsed - gen, 1e-9)
        print(
            f"{count:>11,} {elapsed:>8.2f} {count / elapsed:>9,.0f} {core_only:>11,.0f} "
            f"{peak / 1024:>9,.0f} {entries:>13}  {counters}"
        )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"max RSS of the whole process: {rss / 1024:,.0f} MiB")


if __name__ == "__main__":
    main()
