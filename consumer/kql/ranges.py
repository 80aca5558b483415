"""Range tests (``<``, ``<=``, ``>``, ``>=``) for one field type.

- numeric fields: numbers and numeric strings compare numerically;
- date fields: see :mod:`consumer.kql.dates` for rounding of partial dates and date math;
- ip fields: addresses of the same family compare in address order;
- keyword-like fields compare strings lexicographically (Unicode code point order, which
  is the UTF-8 byte order Elasticsearch uses); caseless fields lowercase both sides;
- fields of unknown type follow dynamic mapping: a JSON number compares numerically
  (with a numeric bound), a string that is an ISO date compares as a date (with a date
  bound), any other string lexicographically.
"""

from __future__ import annotations

import operator
from collections.abc import Callable

from consumer.kql import fieldtypes as ft
from consumer.kql.ast import Literal
from consumer.kql.dates import compile_date, event_millis, parse_iso
from consumer.kql.values import Test, analyze, as_number, ip_value, render

_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
# Which end of a period a bound uses: ">" and "<=" its last millisecond.
_USE_LAST = {"<": False, "<=": True, ">": True, ">=": False}


def _date_range(op: str, text: str, now: Callable[[], float]) -> Test | None:
    bounds = compile_date(text)
    if bounds is None:
        return None
    cmp, index = _OPS[op], 1 if _USE_LAST[op] else 0

    def test(v: object) -> bool:
        ms = event_millis(v)
        if ms is None:
            return False
        b = bounds(now())
        return b is not None and cmp(ms, b[index])

    return test


def _lexical(op: str, bound: str, fold: bool, limit: int | None) -> Test:
    cmp = _OPS[op]
    if fold:
        bound = bound.lower()

    def test(v: object) -> bool:
        s = render(v)
        if s is None or (limit is not None and len(s) > limit):
            return False
        return cmp(s.lower() if fold else s, bound)

    return test


def _dynamic(op: str, text: str, now: Callable[[], float]) -> Test:
    cmp = _OPS[op]
    number = as_number(text)
    dates = _date_range(op, text, now)
    lexical = _lexical(op, text, False, None)

    def test(v: object) -> bool:
        cls = v.__class__
        if cls is int or cls is float:
            return number is not None and cmp(v, number)
        if cls is not str:
            return False
        if dates is not None and parse_iso(v) is not None:  # type: ignore[arg-type]
            return dates(v)
        return lexical(v)

    return test


def range_test(
    kind: ft.FieldType, op: str, value: Literal, now: Callable[[], float]
) -> Test | None:
    """A test true when an event value compares ``op`` to ``value`` on a field of ``kind``."""
    k, text, cmp = kind.kind, value.text, _OPS[op]
    if k == ft.NUMBER:
        bound = as_number(text)
        if bound is None:
            return None
        return lambda v: (
            v.__class__ is not bool and (n := as_number(v)) is not None and cmp(n, bound)
        )
    if k == ft.DATE:
        return _date_range(op, text, now)
    if k == ft.IP:
        addr = ip_value(text)
        if addr is None:
            return None
        return lambda v: (
            v.__class__ is str
            and (a := ip_value(v)) is not None
            and a.version == addr.version
            and cmp(a, addr)
        )
    if k == ft.TEXT:
        low = text.lower()
        return lambda v: (s := render(v)) is not None and any(cmp(w, low) for w in analyze(s))
    if k == ft.UNKNOWN:
        return _dynamic(op, text, now)
    return _lexical(op, text, k == ft.CASELESS, kind.ignore_above)
