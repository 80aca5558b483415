"""Event time: which timestamp places a candidate in time, and how it is parsed.

Time semantics (Elastic's primary timestamp, §1.3 of the semantics notes):

- The rule's ``timestamp_override`` field (``event.ingested`` for the seed rule) when the
  event has a parseable value there;
- else ``@timestamp``, unless the rule sets ``timestamp_override_fallback_disabled``;
- else the Kafka record timestamp the caller passes (CreateTime from Beats/Agent is the
  event's own time; LogAppendTime is broker arrival);
- else the injected clock, and the candidate is marked clamped (it had no time at all).

A value is parsed as RFC 3339 with any fraction length (Defend writes 7 digits), ``Z``
or a numeric offset, or as a date alone; a number, or a string of digits, is epoch
milliseconds (Elasticsearch's ``strict_date_optional_time||epoch_millis``). Times are
kept as integer epoch milliseconds, the precision of an Elasticsearch ``date``; finer
fractions are truncated. An unparseable value counts as missing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from consumer.alerting.fields import MISSING, first_value
from consumer.rules.model import Rule

SOURCE_OVERRIDE = "timestamp_override"
SOURCE_TIMESTAMP = "@timestamp"
SOURCE_KAFKA = "kafka"
SOURCE_CLOCK = "clock"

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?"
    r"\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?$"
)
_DIGITS = re.compile(r"^-?\d{1,16}$")
# What a datetime can hold (years 1 to 9999), in epoch ms: a time outside it is no time.
# A hostile event must not be able to make alert building or metrics raise.
_MIN_MS, _MAX_MS = -62_135_596_800_000, 253_402_300_799_999


@dataclass(frozen=True, slots=True)
class EventTime:
    """An event's time in epoch milliseconds and where it came from."""

    ms: int
    source: str


def parse_timestamp(value: Any) -> int | None:
    """Epoch milliseconds of an RFC 3339 string or epoch-millis number, else ``None``.

    Times outside years 1 to 9999 are ``None``, as if the field were absent.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return _in_range(value)
    if isinstance(value, float):
        return _in_range(int(value)) if value == value and abs(value) < 1e18 else None
    if isinstance(value, str):
        return _parse_text(value.strip())
    return None


def _in_range(ms: int) -> int | None:
    return ms if _MIN_MS <= ms <= _MAX_MS else None


def _parse_text(text: str) -> int | None:
    # Defend writes 7 fraction digits, so whole texts seldom repeat, but events of one
    # second share the text before the fraction: the regex and calendar work is cached
    # by second, the fraction added. Only the plain UTC form (``...THH:MM:SS.fffZ``)
    # is split: with every separator in place, the regex can read its first 19
    # characters only as date and time to the second, in the whole text as alone.
    if (
        len(text) > 21
        and text[19] in ".,"
        and text[-1] in "Zz"
        and text[4] == text[7] == "-"
        and text[10] in "Tt "
        and text[13] == text[16] == ":"
        and text[20:-1].isdecimal()
    ):
        second = _parse_whole(text[:19] + "Z")
        return None if second is None else second + int(text[20:-1][:3].ljust(3, "0"))
    return _parse_whole(text)


# A bounded cache keeps the regex and calendar arithmetic off the per-event path
# without holding memory per event.
@lru_cache(maxsize=8192)
def _parse_whole(text: str) -> int | None:
    if _DIGITS.match(text):
        return _in_range(int(text))
    match = _RFC3339.match(text)
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        moment = datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            tzinfo=UTC,
        )
    except ValueError:
        return None
    ms = _epoch_ms(moment) + (int((fraction or "0")[:3].ljust(3, "0")))
    if zone and zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        offset_min = int(digits[:2]) * 60 + int(digits[2:4] or 0)
        ms -= sign * offset_min * 60_000
    return _in_range(ms)


def _epoch_ms(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000


def to_iso(ms: int) -> str:
    """Epoch milliseconds as ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (JavaScript's toISOString)."""
    moment = datetime.fromtimestamp(ms // 1000, tz=UTC)
    # strftime's %Y does not pad years below 1000, which Elasticsearch would not parse.
    return f"{moment.year:04d}" + moment.strftime("-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"


def event_time(
    rule: Rule, event: dict[str, Any], kafka_timestamp_ms: int | None
) -> EventTime | None:
    """The candidate's event time by the rule's precedence; ``None`` if it has none."""
    if rule.timestamp_override:
        ms = parse_timestamp(_scalar(event, rule.timestamp_override))
        if ms is not None:
            return EventTime(ms, SOURCE_OVERRIDE)
        if rule.timestamp_override_fallback_disabled:
            return _kafka_time(kafka_timestamp_ms)
    ms = parse_timestamp(_scalar(event, "@timestamp"))
    if ms is not None:
        return EventTime(ms, SOURCE_TIMESTAMP)
    return _kafka_time(kafka_timestamp_ms)


def original_time(event: dict[str, Any]) -> str | None:
    """``kibana.alert.original_time``: the event's ``@timestamp`` as ISO, never the override."""
    ms = parse_timestamp(_scalar(event, "@timestamp"))
    return None if ms is None else to_iso(ms)


def _kafka_time(kafka_timestamp_ms: int | None) -> EventTime | None:
    # Kafka uses -1 for "no timestamp".
    if kafka_timestamp_ms is None or kafka_timestamp_ms < 0:
        return None
    return EventTime(int(kafka_timestamp_ms), SOURCE_KAFKA)


def _scalar(event: dict[str, Any], path: str) -> Any:
    value = first_value(event, path)
    return None if value is MISSING else value
