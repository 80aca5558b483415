"""Coverage-guided fuzzing with atheris (libFuzzer for Python): decoders, KQL, rule files.

Run one target for as long as you like (libFuzzer flags pass through)::

    .venv/bin/python -m tests.unit.hostile.fuzz decode -max_total_time=300
    .venv/bin/python -m tests.unit.hostile.fuzz kql -max_total_time=300 -max_len=4096
    .venv/bin/python -m tests.unit.hostile.fuzz rules -runs=100000

A target fails (libFuzzer writes the crashing input to ``crash-<sha1>``) when anything
but the expected error escapes: ``DecodeError`` for records, ``KqlSyntaxError`` for
queries, refusals (never exceptions) for rule files. ``-timeout=N`` turns a slow input
into a failure too. test_fuzz.py runs each target briefly in the test suite.

atheris ships as a manylinux wheel with libFuzzer built in (no clang needed); Python code
is instrumented at import time (``atheris.instrument_imports``).
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["consumer"]):
    from consumer.codecs import (
        DECODE_REASONS,
        DecodeError,
        EventCodec,
        default_codec,
        default_schema_dir,
        encode_event_json,
    )
    from consumer.kql import KqlSyntaxError, compile_query
    from consumer.rules import load_rules

_CODECS: list[EventCodec] = []
_RULE_DIR = Path(tempfile.mkdtemp(prefix="fuzz-rules-"))
_EVENTS = [
    {},
    {"process": {"name": "kextunload", "pid": 42, "args": ["a", "b"]}},
    {"process.name": "x", "@timestamp": "2024-01-01T00:00:00Z", "message": "a b c"},
    {"source": {"ip": "10.1.2.3"}, "user": [{"name": "root"}, {"name": "x"}]},
]


def decode(data: bytes) -> None:
    """Any bytes, every codec and format: an event that can be written back, or a reason."""
    if not _CODECS:
        _CODECS.append(default_codec())
        _CODECS.append(
            EventCodec.from_schema_dir(default_schema_dir(), raw_writer_schema="ecs_process_event")
        )
    for codec in _CODECS:
        for fmt in ("json", "avro", "auto"):
            try:
                event = codec.decode(data, format=fmt)  # type: ignore[arg-type]
            except DecodeError as exc:
                if exc.reason not in DECODE_REASONS:
                    raise
                continue
            encode_event_json(event)


def kql(data: bytes) -> None:
    """Any text as a query: compiles or ``KqlSyntaxError``; predicates return a bool."""
    text = atheris.FuzzedDataProvider(data).ConsumeUnicodeNoSurrogates(len(data))
    try:
        predicate = compile_query(text, now=lambda: 1_700_000_000.0)
    except KqlSyntaxError as exc:
        assert 0 <= exc.position <= len(text)
        return
    for event in _EVENTS:
        assert predicate(event) in (True, False)


def rules(data: bytes) -> None:
    """Any bytes as a TOML, NDJSON and JSON rule file: loaded or refused, never raised."""
    for suffix in (".toml", ".ndjson", ".json"):
        path = _RULE_DIR / f"rule{suffix}"
        path.write_bytes(data)
        result = load_rules([path])
        for refusal in result.refused:
            assert refusal.path == str(path)


TARGETS: dict[str, Callable[[bytes], None]] = {"decode": decode, "kql": kql, "rules": rules}


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] not in TARGETS:
        sys.exit(
            f"usage: python -m tests.unit.hostile.fuzz {{{','.join(TARGETS)}}} [libFuzzer flags]"
        )
    target = TARGETS[argv[1]]
    atheris.Setup([argv[0], *argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
