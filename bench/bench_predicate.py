"""Throughput of the seed rule's compiled KQL predicate, against a bare loop, Elastic's eql
library and a hand-written predicate, over the same pre-decoded events.

Run: ``.venv/bin/python bench/bench_predicate.py`` (needs the ``bench`` extra: ``eql``, AGPL,
benchmark-only). ``--events N`` scales the run down; ``--runs`` sets the repeats (median).

What is built, untimed: ``N`` events from :func:`consumer.generator.generate_events` (1 in
10,000 a real attack, as many near misses), as the nested dicts ``json.loads`` would give.
Identical sub-objects the predicates never read (``host``, ``agent``, ``user``...) are
shared between events (1M events: 2.6 GB peak RSS instead of over 5.5 GB); the objects the
predicates walk (``event``, ``process``, ``process.args``) are each event's own. The heap is
then frozen (``gc.freeze``) so that no full collection walks it inside a timed loop. eql's
``Event`` wrappers are also built before timing.

What is timed, per event:

a. bare loop: ``for event in events: n += 1``, the floor.
b. compiled KQL: ``consumer.kql.compile_query(QUERY)(event)`` in ``if pred(event): n += 1``.
c. eql engine: ``PythonEngine.stream_events(wrapped)`` for the equivalent EQL query, which
   per event does the engine's dispatch (type check, hook lookup by event type), the
   compiled query's closures (a ``Scope`` per event, three-valued and/or), and for a match
   an ``AnalyticOutput`` passed to our counting hook. eql 1.0 folds case by default
   (``==``, ``in``, ``arrayContains``); its only switch is the module global
   ``eql.utils.CASE_INSENSITIVE``, set to ``False`` here so it keeps KQL's exact keyword
   semantics. ECS arrays need ``arrayContains`` (``in`` and ``==`` do not look inside lists).
c2. eql predicate: the same compiled eql closure called directly on each wrapped event,
   without the engine's dispatch and output (a lower bound for eql).
d. hand-written: a plain Python function for this one query over nested dicts (scalar or
   list values; no dotted-key lookup, which the stream does not contain).

All of b, c, c2 and d must count the same matches (and the generator's expected count);
otherwise the script exits 1. It also prints, untimed, what eql counts with its default
case folding, to show why the switch matters.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from consumer.generator import expected_matches, generate_events

QUERY = (
    "event.category:process and event.type:(start or process_started) and "
    "process.name:kextunload and "
    'process.args:("/System/Library/Extensions/EndpointSecurity.kext" or "EndpointSecurity.kext")'
)
EQL_QUERY = (
    'any where arrayContains(event.category, "process")'
    ' and arrayContains(event.type, "start", "process_started")'
    ' and process.name == "kextunload"'
    ' and arrayContains(process.args, "/System/Library/Extensions/EndpointSecurity.kext",'
    ' "EndpointSecurity.kext")'
)
SEED_RULE = (
    Path(__file__).resolve().parent.parent
    / "consumer/rules/builtin/defense_evasion_unload_endpointsecurity_kext.toml"
)
KEXT_ARGS = frozenset(("/System/Library/Extensions/EndpointSecurity.kext", "EndpointSecurity.kext"))
START_TYPES = frozenset(("start", "process_started"))
PROCESS = frozenset(("process",))

Event = dict[str, Any]


def check_query_is_the_seed_rules() -> None:
    """QUERY is the built-in seed rule's query, whitespace aside."""
    if not SEED_RULE.exists():
        return
    rule = tomllib.loads(SEED_RULE.read_text(encoding="utf-8"))["rule"]
    if " ".join(rule["query"].split()) != QUERY:
        raise SystemExit(f"QUERY differs from the query in {SEED_RULE}")


# --------------------------------------------------------------------------------------------
# The hand-written reference
# --------------------------------------------------------------------------------------------


def _any_in(value: Any, wanted: frozenset[str]) -> bool:
    if isinstance(value, str):
        return value in wanted
    if isinstance(value, list):
        return any(isinstance(v, str) and v in wanted for v in value)
    return False


def hand_written(event: Mapping[str, Any]) -> bool:
    """The seed query for nested events: exact strings, scalar or list fields.

    Written as one would by hand for speed: the rare clause (``process.name``) first, the
    ones nearly every process event passes (``event.category``, ``event.type``) last.
    """
    proc = event.get("process")
    if not isinstance(proc, dict):
        return False
    name = proc.get("name")
    if not (name == "kextunload" or (isinstance(name, list) and "kextunload" in name)):
        return False
    if not _any_in(proc.get("args"), KEXT_ARGS):
        return False
    ev = event.get("event")
    if not isinstance(ev, dict):
        return False
    return _any_in(ev.get("category"), PROCESS) and _any_in(ev.get("type"), START_TYPES)


# --------------------------------------------------------------------------------------------
# Building the events
# --------------------------------------------------------------------------------------------

_SHARED_TOP = (
    "agent",
    "elastic",
    "data_stream",
    "ecs",
    "host",
    "user",
    "group",
    "@metadata",
    "service",
)
_SHARED_PROCESS = ("code_signature", "hash")


def build_events(count: int, seed: int, match_every: int) -> list[Event]:
    """``count`` generated events, with identical unread sub-objects shared (see module doc)."""
    cache: dict[tuple[str, str], Any] = {}
    out: list[Event] = []
    append = out.append
    for event in generate_events(count, seed=seed, match_every=match_every):
        for key in _SHARED_TOP:
            value = event.get(key)
            if value is not None:
                event[key] = cache.setdefault((key, repr(value)), value)
        proc = event["process"]
        for key in _SHARED_PROCESS:
            value = proc.get(key)
            if value is not None:
                proc[key] = cache.setdefault((key, repr(value)), value)
        append(event)
    return out


# --------------------------------------------------------------------------------------------
# Timed loops
# --------------------------------------------------------------------------------------------


def bare_loop(events: list[Any]) -> int:
    n = 0
    for _event in events:
        n += 1
    return n


def predicate_loop(pred: Callable[[Any], Any], events: list[Any]) -> int:
    n = 0
    for event in events:
        if pred(event):
            n += 1
    return n


def make_eql() -> tuple[
    Callable[[list[Any]], int], Callable[[Any], Any], Callable[[list[Any]], int]
]:
    """(engine run, bare compiled predicate, case-folding engine run) for EQL_QUERY."""
    import eql
    import eql.utils

    def compile_engine(case_insensitive: bool) -> tuple[Callable[[list[Any]], int], Any]:
        eql.utils.CASE_INSENSITIVE = case_insensitive
        query = eql.parse_query(EQL_QUERY)
        engine = eql.PythonEngine()
        hits: list[Any] = []
        engine.add_output_hook(hits.append)
        engine.add_query(query)

        def run(wrapped: list[Any]) -> int:
            eql.utils.CASE_INSENSITIVE = case_insensitive
            hits.clear()
            engine.stream_events(wrapped)
            return len(hits)

        return run, (engine, query)

    folding_run, _ = compile_engine(True)
    run, (engine, query) = compile_engine(False)
    # The closure stream_events calls for an `any where` query, minus dispatch and output.
    predicate = engine.convert(query.first.query, scoped=True)
    return run, predicate, folding_run


def measure(label: str, fn: Callable[[], int], runs: int, n: int) -> tuple[float, int]:
    times: list[float] = []
    count = -1
    for _ in range(runs):
        t0 = time.perf_counter()
        count = fn()
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    spread = ", ".join(f"{t:.2f}" for t in times)
    rate = n / median
    print(f"  {label:<18} {rate:>12,.0f} ev/s  median {median:6.2f} s  [{spread}]  count {count}")
    return rate, count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--match-every", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    check_query_is_the_seed_rules()

    import eql

    from consumer.kql import compile_query

    n = args.events
    print(f"python {sys.version.split()[0]}, eql {eql.__version__}")
    print(
        f"building {n:,} events (seed {args.seed}, 1 match in {args.match_every:,})...", flush=True
    )
    t0 = time.perf_counter()
    events = build_events(n, args.seed, args.match_every)
    wrapped = [eql.Event("generic", 0, e) for e in events]  # what Event.from_data gives
    gc.collect()
    gc.freeze()
    print(f"  built in {time.perf_counter() - t0:.1f} s", flush=True)

    compiled = compile_query(QUERY)
    eql_run, eql_pred, eql_folding_run = make_eql()
    expected = expected_matches(n, args.match_every)

    print(f"timing, median of {args.runs} runs:")
    results: dict[str, tuple[float, int]] = {}
    results["a bare loop"] = measure("a bare loop", lambda: bare_loop(events), args.runs, n)
    results["b compiled KQL"] = measure(
        "b compiled KQL", lambda: predicate_loop(compiled, events), args.runs, n
    )
    results["c eql engine"] = measure("c eql engine", lambda: eql_run(wrapped), args.runs, n)
    results["c2 eql predicate"] = measure(
        "c2 eql predicate", lambda: predicate_loop(eql_pred, wrapped), args.runs, n
    )
    results["d hand-written"] = measure(
        "d hand-written", lambda: predicate_loop(hand_written, events), args.runs, n
    )

    folded = eql_folding_run(wrapped)
    rate = {k: v[0] for k, v in results.items()}
    print("ratios (events/s):")
    print(f"  compiled / eql engine    {rate['b compiled KQL'] / rate['c eql engine']:6.2f}x")
    print(f"  compiled / eql predicate {rate['b compiled KQL'] / rate['c2 eql predicate']:6.2f}x")
    print(f"  compiled / hand-written  {rate['b compiled KQL'] / rate['d hand-written']:6.2f}x")
    counts = {k: v[1] for k, v in results.items() if not k.startswith("a ")}
    print("matches:")
    for label, count in counts.items():
        print(f"  {label:<24} {count}")
    print(f"  {'generator expects':<24} {expected}")
    print(f"  {'(eql, case folding on)':<24} {folded}  <- eql 1.0's default; not KQL semantics")
    if len(set(counts.values()) | {expected}) != 1:
        print("MISMATCH: match counts disagree", file=sys.stderr)
        return 1
    print("match counts agree")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
