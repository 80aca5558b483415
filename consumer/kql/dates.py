"""Dates for KQL: ISO-8601 values, epoch milliseconds and Elasticsearch date math.

Time semantics, following Elasticsearch for ``date`` fields (format
``strict_date_optional_time||epoch_millis``, time zone UTC because the engine sends
``dateFormatTZ: 'Zulu'``):

- A date without an offset is UTC. Fractions of any length are accepted; precision is
  the millisecond (extra digits are truncated).
- A partial date is a period: ``2024-01`` is the whole of January. Comparisons use its
  first millisecond for ``>=`` and ``<``, its last for ``>`` and ``<=``, and ``f:2024-01``
  matches any instant within it (Elasticsearch turns a term on a date field into an
  inclusive range with the same rounding).
- Date math: ``now`` or ``<date>||`` followed by ``+N<unit>``, ``-N<unit>`` and ``/<unit>``
  (round), units ``y M w d h H m s``. ``now`` is read when the predicate runs, so a
  long-running consumer's window moves with the clock. Rounding follows the same
  first/last millisecond rule; weeks start on Monday.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

_ISO = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?)?)?)?"
    r"(Z|[+-]\d{2}(?::?\d{2})?)?",
    re.ASCII,
)
_EPOCH = re.compile(r"-?\d{1,15}(?:\.\d+)?", re.ASCII)
_MATH_OP = re.compile(r"([+-])(\d{1,9})([yMwdhHms])|/([yMwdhHms])", re.ASCII)
_MAX_MS = 253402300799999  # 9999-12-31T23:59:59.999Z

Bounds = tuple[int, int]


def _offset_ms(zone: str | None) -> int:
    if not zone or zone == "Z":
        return 0
    sign = -1 if zone[0] == "-" else 1
    digits = zone[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    return sign * (hours * 60 + minutes) * 60000


def parse_iso(text: str) -> Bounds | None:
    """First and last millisecond (epoch ms, UTC) of an ISO-8601 date, or ``None``."""
    m = _ISO.fullmatch(text)
    if m is None:
        return None
    year, month, day, hour, minute, second, frac, zone = m.groups()
    parts = [int(year), int(month or 1), int(day or 1), int(hour or 0), int(minute or 0)]
    parts.append(int(second or 0))
    try:
        start = datetime(*parts, tzinfo=UTC)  # validates month/day/hour ranges
    except ValueError:
        return None
    ms = calendar.timegm(start.timetuple()) * 1000 - _offset_ms(zone)
    if frac is not None:
        ms += int(frac[:3].ljust(3, "0"))
        return ms, ms
    if second is not None:
        return ms, ms + 999
    if minute is not None:
        return ms, ms + 59_999
    if hour is not None:
        return ms, ms + 3_599_999
    if day is not None:
        return ms, ms + 86_399_999
    end = _add(start, 1, "M" if month else "y")
    return ms, calendar.timegm(end.timetuple()) * 1000 - _offset_ms(zone) - 1


def event_millis(value: object) -> int | float | None:
    """An event's date value as epoch ms: ISO strings, epoch-ms numbers or numeric strings."""
    cls = value.__class__
    if cls is int or cls is float:
        return value  # type: ignore[return-value]
    if cls is str:
        bounds = parse_iso(value)  # type: ignore[arg-type]
        if bounds is not None:
            return bounds[0]
        if _EPOCH.fullmatch(value):  # type: ignore[arg-type]
            return float(value)  # type: ignore[arg-type]
    return None


def _add(dt: datetime, amount: int, unit: str) -> datetime:
    if unit in ("y", "M"):
        months = dt.month - 1 + amount * (12 if unit == "y" else 1)
        year, month = dt.year + months // 12, months % 12 + 1
        if not 1 <= year <= 9999:
            raise OverflowError
        day = min(dt.day, calendar.monthrange(year, month)[1])
        return dt.replace(year=year, month=month, day=day)
    seconds = {"w": 604800, "d": 86400, "h": 3600, "H": 3600, "m": 60, "s": 1}[unit]
    return dt + timedelta(seconds=seconds * amount)


def _round_down(dt: datetime, unit: str) -> datetime:
    if unit == "y":
        return dt.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    if unit == "M":
        return dt.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if unit == "w":
        monday = dt - timedelta(days=dt.weekday())
        return monday.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "d":
        return dt.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit in ("h", "H"):
        return dt.replace(minute=0, second=0, microsecond=0)
    if unit == "m":
        return dt.replace(second=0, microsecond=0)
    return dt.replace(microsecond=0)


def _apply(ms: int, ops: list[tuple[str, str, str, str]], up: bool) -> int:
    dt = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    for sign, amount, unit, round_unit in ops:
        if round_unit:
            start = _round_down(dt, round_unit)
            dt = _add(start, 1, round_unit) if up else start
            if up:
                dt -= timedelta(milliseconds=1)
        else:
            dt = _add(dt, int(amount) * (-1 if sign == "-" else 1), unit)
    return (calendar.timegm(dt.timetuple()) * 1000) + dt.microsecond // 1000


def compile_date(text: str) -> Callable[[float], Bounds | None] | None:
    """Compile a query date into ``bounds(now_seconds) -> (first_ms, last_ms) | None``.

    Returns ``None`` when ``text`` is neither a date, epoch milliseconds nor date math.
    """
    anchor, sep, math = text.partition("||")
    if not sep:
        if text.startswith("now"):
            anchor, math = "now", text[3:]
        else:
            fixed = parse_iso(text)
            if fixed is None and _EPOCH.fullmatch(text):
                ms = int(float(text))
                fixed = (ms, ms)
            return None if fixed is None else (lambda _now, b=fixed: b)
    ops = [m.groups() for m in _MATH_OP.finditer(math)]
    if "".join(m.group() for m in _MATH_OP.finditer(math)) != math:
        return None
    if anchor == "now":
        base: Bounds | None = None
    else:
        base = parse_iso(anchor)
        if base is None:
            return None

    def bounds(now: float) -> Bounds | None:
        lo, hi = base if base is not None else (int(now * 1000),) * 2
        try:
            lo, hi = _apply(lo, ops, False), _apply(hi, ops, True)
        except (OverflowError, ValueError):
            return None
        return (lo, hi) if -_MAX_MS <= lo <= _MAX_MS else None

    return bounds
