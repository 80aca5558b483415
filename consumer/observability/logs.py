"""Structured logs: one JSON object per line on stdout, or text on a terminal.

Each line carries ``time`` (UTC, RFC 3339 with milliseconds), ``level``, ``logger``,
``message`` and any context the call passed as ``extra`` (``topic``, ``partition``,
``offset``, ``rule``, ``reason``, ``error``, ``count``...), plus ``exception`` with the
traceback when there is one. ``auto`` picks text when stdout is a terminal (a person is
watching) and JSON otherwise (a container runtime is collecting).

One line per incident, not per record: ``Incidents`` logs the first occurrence of a kind
of trouble at once and folds the repeats into one summary line when the burst is over.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}


def _context(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """A record as one line of JSON; context from ``extra`` becomes top-level keys."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, tz=UTC)
        line: dict[str, Any] = {
            "time": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _context(record).items():
            line.setdefault(key, value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """A record for a person: time, level, logger, message, then context as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        context = _context(record)
        if not context:
            return text
        head, sep, tail = text.partition("\n")  # context before any traceback
        pairs = " ".join(f"{k}={v}" for k, v in context.items())
        return f"{head} [{pairs}]{sep}{tail}"


def configure_logging(level: str, fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Send every log record at ``level`` and above to ``stream`` (default stdout).

    ``fmt`` is ``json``, ``text`` or ``auto`` (text when the stream is a terminal).
    Replaces handlers set up earlier, so calling it twice does not double the lines.
    """
    stream = stream if stream is not None else sys.stdout
    if fmt == "auto":
        fmt = "text" if stream.isatty() else "json"
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


class Incidents:
    """Log the first of a burst at once; count the rest; summarise once it is over.

    ``report(kind, ...)`` logs when no incident of ``kind`` is open and opens one;
    while it is open, reports only count. ``flush()`` (called once per batch) closes
    incidents older than ``window_s`` and logs one summary line for those that had
    repeats. So a flood of bad records costs at most two lines per kind and window.
    """

    def __init__(
        self,
        logger: logging.Logger,
        window_s: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self.window_s = window_s
        self._clock = clock
        # kind -> [opened at, repeats, level, summary text, context]
        self._open: dict[str, list[Any]] = {}

    def report(
        self, kind: str, level: int, message: str, *args: Any, summary: str, **context: Any
    ) -> None:
        """One occurrence of ``kind``; ``summary`` names it in the repeat count line."""
        incident = self._open.get(kind)
        if incident is not None:
            incident[1] += 1
            return
        self._open[kind] = [self._clock(), 0, level, summary, context]
        self._log.log(level, message, *args, extra=context)

    def flush(self, *, force: bool = False) -> None:
        """Close the incidents whose window is over (all of them with ``force``)."""
        if not self._open:
            return
        now = self._clock()
        for kind, (opened, repeats, level, summary, context) in list(self._open.items()):
            if force or now - opened >= self.window_s:
                del self._open[kind]
                if repeats:
                    self._log.log(
                        level,
                        "%d more %s in the last %.0fs",
                        repeats,
                        summary,
                        now - opened,
                        extra={**_burst(context), "count": repeats},
                    )


def _burst(context: dict[str, Any]) -> dict[str, Any]:
    # A summary stands for many records: the first one's position would mislead.
    return {k: v for k, v in context.items() if k not in ("partition", "offset")}
