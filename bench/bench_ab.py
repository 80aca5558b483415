"""Two checkouts of the consumer, in turn on one loaded topic: which is faster, by how much.

On these shared two-core machines bare consume drifts by up to 1.3x between minutes, so
two runs of ``bench_pipeline.py`` cannot tell a 5% change from the drift. This loads
one topic on one Apache Kafka node and runs, per round, bare consume and then both
members (``python -m consumer run`` from each checkout, each in a fresh group), A then
B in even rounds and B then A in odd ones. It prints, per side, the median events/s,
ratio to the round's bare consume and CPU microseconds per event, each run's rate,
and B's median rate over A's.

    git worktree add /tmp/before HEAD~1
    .venv/bin/python bench/bench_ab.py /tmp/before . --format json --match-every 100
    git worktree remove /tmp/before

A checkout is a directory holding ``consumer/``; its member runs there, with it on
``PYTHONPATH`` (checked first: the ``consumer`` it imports must be the checkout's). The
bench code, the broker and the loaded records are this tree's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_pipeline import Result, bare_consume, consumer_run, load

from consumer.brokers import KafkaNode


def run_side(
    checkout: Path, bootstrap: str, topic: str, count: int, workdir: Path, name: str
) -> Result:
    """One run of the member of ``checkout`` over the whole topic, in a group of its own.

    Started in the checkout: ``python -m`` puts the working directory first on the
    path, before ``PYTHONPATH``, so run from this tree both sides would be this tree's.
    """
    previous, here = os.environ.get("PYTHONPATH"), Path.cwd()
    os.environ["PYTHONPATH"] = str(checkout)
    os.chdir(checkout)
    try:
        return consumer_run(bootstrap, topic, count, workdir, name=name)
    finally:
        os.chdir(here)
        if previous is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = previous


def imported_from(checkout: Path) -> Path:
    """Where ``consumer`` comes from for a member run as ``run_side`` runs it."""
    found = subprocess.run(
        [sys.executable, "-c", "import consumer; print(consumer.__file__)"],
        cwd=checkout,
        env={**os.environ, "PYTHONPATH": str(checkout)},
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(found.stdout.strip()).parent.parent


def compare(
    checkouts: dict[str, Path], bootstrap: str, topic: str, count: int, rounds: int, workdir: Path
) -> dict[str, list[tuple[Result, Result]]]:
    """Per side, each round's (bare consume, member) results."""
    runs: dict[str, list[tuple[Result, Result]]] = {side: [] for side in checkouts}
    for i in range(rounds):
        bare = bare_consume(bootstrap, topic, count)
        order = list(checkouts) if i % 2 == 0 else list(reversed(checkouts))
        for side in order:
            ours = run_side(checkouts[side], bootstrap, topic, count, workdir, f"-{side}{i}")
            runs[side].append((bare, ours))
            print(
                f"  round {i + 1} {side}: {ours.rate:,.0f} ev/s, bare {bare.rate:,.0f}",
                flush=True,
            )
    return runs


def report(checkouts: dict[str, Path], runs: dict[str, list[tuple[Result, Result]]]) -> None:
    """Print each side's medians and runs, the bare consume median, and B over A."""
    medians = {}
    for side, pairs in runs.items():
        rate = statistics.median(ours.rate for _, ours in pairs)
        ratio = statistics.median(ours.rate / bare.rate for bare, ours in pairs)
        cpu = statistics.median((ours.cpu_seconds or 0.0) / ours.events * 1e6 for _, ours in pairs)
        medians[side] = rate
        each = ", ".join(f"{ours.rate / 1000:,.0f}k" for _, ours in pairs)
        print(
            f"{side} ({checkouts[side]}): median {rate:,.0f} ev/s, {ratio:.2f} of bare consume, "
            f"CPU {cpu:.2f} us/event (runs: {each})"
        )
    bare = statistics.median(b.rate for pairs in runs.values() for b, _ in pairs)
    print(f"bare consume: median {bare:,.0f} ev/s")
    print(f"B / A: {medians['B'] / medians['A']:.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path, help="checkout A (e.g. a worktree of the old commit)")
    parser.add_argument("b", type=Path, help="checkout B")
    parser.add_argument("--format", choices=("json", "avro"), default="json")
    parser.add_argument("--match-every", type=int, default=100)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=6, help="each runs A and B once")
    args = parser.parse_args()
    checkouts = {"A": args.a.resolve(), "B": args.b.resolve()}
    for side, path in checkouts.items():
        if not (path / "consumer" / "__init__.py").is_file():
            parser.error(f"checkout {side}: {path} holds no consumer/ package")
        if imported_from(path) != path:
            parser.error(f"checkout {side}: its member would import {imported_from(path)}")
    workdir = Path(tempfile.mkdtemp(prefix="bench-ab-"))
    print(f"logs: {workdir}", flush=True)
    topic = f"{args.format}-{args.match_every}"
    try:
        with KafkaNode(workdir / "kafka", heap="1g") as node:
            load(node.bootstrap_servers, topic, args.events, args.match_every, args.format)
            runs = compare(
                checkouts, node.bootstrap_servers, topic, args.events, args.rounds, workdir
            )
    finally:
        shutil.rmtree(workdir / "kafka", ignore_errors=True)
    report(checkouts, runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
