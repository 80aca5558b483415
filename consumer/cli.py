"""The command line: ``python -m consumer <command>``.

Commands:
- ``check-rules PATH...``: load, validate and compile rules; list them and the refusals.
- ``replay``: run rules over a file of events, as the stream would, and write the output.
- ``run``: one member of the consumer group (the streaming pipeline).
- ``generate``: produce realistic generated endpoint events to a topic.
- ``demo``: an embedded broker, generated events, the pipeline, and the alerts it writes.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from datetime import timedelta
from typing import TextIO

from consumer.rules import LoadResult, builtin_rules_path, load_rules, rule_topics
from consumer.rules.model import parse_duration
from consumer.settings import Settings, SettingsError, add_arguments

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_FATAL = 3


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    return int(args.command(args))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m consumer",
        description="Run Elastic Security KQL query rules over endpoint events.",
    )
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    check = commands.add_parser(
        "check-rules", help="load, validate and compile rules; exit 1 if any given file fails"
    )
    check.add_argument("paths", nargs="+", metavar="PATH", help="rule files or directories")
    check.set_defaults(command=_check_rules)

    replay = commands.add_parser(
        "replay", help="run rules over a file of ECS events and write what the stream would emit"
    )
    replay.add_argument(
        "--rules",
        action="append",
        metavar="PATH",
        help="rule file or directory (repeatable; default: the built-in rules)",
    )
    replay.add_argument(
        "--input", required=True, metavar="FILE", help="NDJSON events, optionally gzip; - for stdin"
    )
    replay.add_argument(
        "--output", metavar="FILE", help="where to write NDJSON output (default: stdout)"
    )
    replay.add_argument(
        "--space-id", default="default", help="Kibana space of the alerts (default: default)"
    )
    replay.add_argument(
        "--dedup-horizon",
        type=_duration,
        metavar="DURATION",
        help="how long an alerted event is remembered, e.g. 9m (default: each rule's look-back)",
    )
    replay.set_defaults(command=_replay)

    run = commands.add_parser(
        "run",
        help="run one member of the consumer group: events in, alerts out",
        description="Settings come from flags, else the environment, else defaults.",
    )
    add_arguments(run)
    run.set_defaults(command=_run)

    # Imported here: they load the Kafka client, which check-rules and replay do not need.
    from consumer.demo import add_demo_parser
    from consumer.produce import add_generate_parser

    add_generate_parser(commands)
    add_demo_parser(commands)
    return parser


def _check_rules(args: argparse.Namespace) -> int:
    result = load_rules(args.paths)
    _print_rule_table(result, sys.stdout)
    _print_refusals(result, sys.stdout)
    return EXIT_FAILED if result.failures else EXIT_OK


def _print_rule_table(result: LoadResult, out: TextIO) -> None:
    rows = [("RULE ID", "NAME", "TYPE", "SEVERITY", "TOPICS")]
    rows += [
        (r.rule_id, r.name, r.type, r.severity, ", ".join(rule_topics([r])) or "-")
        for r in result.rules
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[4]]), file=out)
    print(f"{len(result.rules)} rule(s) loaded", file=out)


def _print_refusals(result: LoadResult, out: TextIO) -> None:
    for skipped in result.skipped:
        print(f"skipped: {skipped}", file=out)
    if result.skipped:
        print(f"{len(result.skipped)} rule(s) skipped: type or language not supported", file=out)
    for failure in result.failures:
        print(f"refused: {failure}", file=out)
    if result.failures:
        print(f"{len(result.failures)} rule file(s) or rule(s) refused", file=out)


def load_rules_or_exit(paths: Sequence[str] | None, err: TextIO) -> LoadResult | None:
    """Load ``paths`` (default: the built-in rules) for a command that runs them.

    Skipped rules are warned about on ``err``; any failure is printed there and ``None``
    is returned: a command never runs with a rule set other than the one asked for.
    """
    result = load_rules(list(paths) if paths else [builtin_rules_path()])
    for skipped in result.skipped:
        print(f"warning: skipped {skipped}", file=err)
    if result.skipped:
        print(f"warning: {len(result.skipped)} rule(s) of unsupported types skipped", file=err)
    for failure in result.failures:
        print(f"error: {failure}", file=err)
    if result.failures:
        return None
    if not result.rules:
        print("error: no rules to run", file=err)
        return None
    return result


def _run(args: argparse.Namespace) -> int:
    """One group member, with metrics and health served on ``--metrics-port`` (0: none).

    Logs go to stdout (``--log-format``: JSON lines, or text on a terminal); usage errors
    and the final fatal line go to stderr, where they were before logging is set up.
    """
    from prometheus_client import (
        CollectorRegistry,
        GCCollector,
        PlatformCollector,
        ProcessCollector,
    )

    from consumer.errors import ConsumerError
    from consumer.observability import Health, ObservabilityServer, configure_logging
    from consumer.pipeline import Member

    try:
        settings = Settings.from_args(args, os.environ)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(settings.log_level, settings.log_format)
    log = logging.getLogger(__name__)
    log.info("settings: %s", settings.redacted())
    loaded = load_rules_or_exit([str(p) for p in settings.rules], sys.stderr)
    if loaded is None:
        return EXIT_USAGE
    # One registry per process, passed to every component (never the global default).
    registry = CollectorRegistry()
    for collector in (ProcessCollector, PlatformCollector, GCCollector):
        collector(registry=registry)
    health = Health(settings.liveness_timeout_s)
    try:
        member = Member(settings, loaded.rules, registry=registry, health=health)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    server = ObservabilityServer(registry, health, settings.metrics_host, settings.metrics_port)
    if settings.metrics_port:
        try:
            server.start()
        except OSError as exc:
            address = f"{settings.metrics_host}:{settings.metrics_port}"
            print(f"error: cannot serve metrics on {address}: {exc}", file=sys.stderr)
            return EXIT_USAGE
        log.info(
            "serving /metrics, /healthz and /readyz on %s:%d", settings.metrics_host, server.port
        )
    try:
        member.install_signal_handlers()
        return member.run()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ConsumerError as exc:
        log.critical("fatal: %s", exc)
        print(f"fatal: {exc}", file=sys.stderr)
        return EXIT_FATAL
    finally:
        server.stop()


def _duration(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _replay(args: argparse.Namespace) -> int:
    from consumer.replay import ReplayOptions, run_replay

    loaded = load_rules_or_exit(args.rules, sys.stderr)
    if loaded is None:
        return EXIT_USAGE
    options = ReplayOptions(space_id=args.space_id, dedup_horizon=args.dedup_horizon)
    return run_replay(loaded.rules, args.input, args.output, sys.stdout, sys.stderr, options)
