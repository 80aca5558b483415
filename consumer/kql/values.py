"""Value tests: for one field type and one query value, a function over one event value.

Tests take a single scalar from the event (``str``, ``int``, ``float``, ``bool``; lists are
flattened by the caller; a ``dict`` never matches a value) and return a bool. ``None``
in place of a test means "can never match" (for example a keyword longer than
``ignore_above``, or ``pid:abc`` on a numeric field, which Elasticsearch would reject
with an error, so no alert either).

Where KQL is ambiguous, these follow what Elasticsearch does with Kibana's translation:

- keyword-like fields (and fields of unknown type): the whole value, case-sensitive.
  A JSON number also matches a numerically equal query value (``pid:42`` matches
  ``42.0``), as dynamic mapping would index it as a number.
- text fields: Kibana sends ``match`` (any word of the value) for unquoted values and
  ``match_phrase`` (consecutive words) for quoted ones; words come from an approximation
  of the standard analyzer (Unicode word characters, ``.`` and ``'`` joining letters and
  digits, lowercased).
- wildcards are sent as ``query_string``; on keyword fields they are case-sensitive
  globs over the whole value; on text fields a glob over one lowercased word; on other
  types (where Elasticsearch would refuse them) a glob over the value rendered as JSON.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from functools import lru_cache

from consumer.kql import fieldtypes as ft
from consumer.kql.ast import Literal, Wildcard

Test = Callable[[object], bool]

# Possessive: a long run of digits that is not a number ("1111...1x", from an event)
# fails in linear time; with "\d+\.?\d*" the engine would try every split of the run.
_NUMBER = re.compile(r"-?+(?:\d++(?:\.\d*+)?+|\.\d++)(?:[eE][+-]?+\d++)?+", re.ASCII)
_WORD = re.compile(r"\w+(?:[.'\u2019]\w+)*")


def render(value: object) -> str | None:
    """A scalar as the keyword Elasticsearch indexes for it (its JSON text)."""
    cls = value.__class__
    if cls is str:
        return value  # type: ignore[return-value]
    if cls is bool:
        return "true" if value else "false"
    if cls is int or cls is float:
        return repr(value)
    return None


def as_number(value: object) -> float | int | None:
    """A JSON number, or a numeric string, as a number (booleans are not numbers)."""
    cls = value.__class__
    if cls is int or cls is float:
        return value  # type: ignore[return-value]
    if cls is str and _NUMBER.fullmatch(value):  # type: ignore[arg-type]
        return float(value)  # type: ignore[arg-type]
    return None


def analyze(text: str) -> list[str]:
    """Approximate the standard analyzer: lowercased Unicode word tokens."""
    return _WORD.findall(text.lower())


def glob(segments: tuple[str, ...]) -> Callable[[str], bool]:
    """A whole-string glob for ``*``-separated ``segments``, without regex backtracking."""
    if len(segments) == 2:
        first, last = segments
        if not first:
            return (lambda s: True) if not last else (lambda s: s.endswith(last))
        if not last:
            return lambda s: s.startswith(first)
        need = len(first) + len(last)
        return lambda s: len(s) >= need and s.startswith(first) and s.endswith(last)
    first, *middle, last = segments
    if len(segments) == 3 and not first and not last:
        inner = middle[0]
        return lambda s: inner in s
    need = sum(map(len, segments))
    tail = len(last)

    def match(s: str) -> bool:
        if len(s) < need or not s.startswith(first) or not s.endswith(last):
            return False
        pos, end = len(first), len(s) - tail
        for seg in middle:  # leftmost match of each segment is always safe for "*" globs
            pos = s.find(seg, pos, end)
            if pos < 0:
                return False
            pos += len(seg)
        return True

    return match


@lru_cache(maxsize=4096)
def ip_value(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    mapped = getattr(addr, "ipv4_mapped", None)
    return mapped or addr


def _exact_keyword(texts: list[str], limit: int | None, fold: bool) -> Test | None:
    if fold:
        texts = [t.lower() for t in texts]
    if limit is not None:
        texts = [t for t in texts if len(t) <= limit]
    if not texts:
        return None
    strings = frozenset(texts)
    numbers = frozenset(float(t) for t in texts if _NUMBER.fullmatch(t))

    def test(v: object) -> bool:
        cls = v.__class__
        if cls is str:
            return (v.lower() if fold else v) in strings  # type: ignore[attr-defined]
        if cls is bool:
            return ("true" if v else "false") in strings
        if cls is int or cls is float:
            return v in numbers
        return False

    test.strings = strings  # type: ignore[attr-defined]  # lets the field walker inline str tests
    test.folded = fold  # type: ignore[attr-defined]
    return test


def _text_test(value: Literal) -> Test | None:
    tokens = analyze(value.text)
    if not tokens:
        return None
    if not value.quoted or len(tokens) == 1:
        wanted = frozenset(tokens)
        return lambda v: (s := render(v)) is not None and not wanted.isdisjoint(analyze(s))
    # Consecutive words, found as a substring of the words joined by a separator no word
    # holds: linear in the value, where comparing slices at every position would cost
    # words x phrase length (a long quoted phrase against a long message).
    needle = "\x00" + "\x00".join(tokens) + "\x00"

    def phrase(v: object) -> bool:
        s = render(v)
        if s is None:
            return False
        return needle in "\x00" + "\x00".join(analyze(s)) + "\x00"

    return phrase


def _text_tests(values: list[Literal]) -> Test | None:
    """``_text_test`` of several values: the any-word ones share one set and one analysis
    of the event value, so a long ``or`` of words costs one pass, not one per word."""
    words: set[str] = set()
    phrases: list[Test | None] = []
    for value in values:
        tokens = analyze(value.text)
        if not value.quoted or len(tokens) == 1:
            words.update(tokens)
        else:
            phrases.append(_text_test(value))
    if words:
        wanted = frozenset(words)
        phrases.append(lambda v: (s := render(v)) is not None and not wanted.isdisjoint(analyze(s)))
    return any_of(phrases)


def _number_test(value: Literal) -> Test | None:
    n = as_number(value.text)
    if n is None:
        return None
    return lambda v: v.__class__ is not bool and as_number(v) == n


def _boolean_test(value: Literal) -> Test | None:
    if value.text not in ("true", "false"):
        return None
    b = value.text == "true"
    return lambda v: v is b or v == value.text


def _ip_test(value: Literal) -> Test | None:
    text = value.text
    if "/" in text:
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            return None
        return lambda v: v.__class__ is str and (a := ip_value(v)) is not None and a in net
    addr = ip_value(text)
    if addr is None:
        return None
    return lambda v: v.__class__ is str and ip_value(v) == addr


def _date_test(value: Literal, now: Callable[[], float]) -> Test | None:
    from consumer.kql.dates import compile_date, event_millis

    bounds = compile_date(value.text)
    if bounds is None:
        return None

    def test(v: object) -> bool:
        ms = event_millis(v)
        b = bounds(now())
        return ms is not None and b is not None and b[0] <= ms <= b[1]

    return test


def literal_test(
    kind: ft.FieldType, values: list[Literal], now: Callable[[], float]
) -> Test | None:
    """A test true when an event value equals any of ``values`` for a field of type ``kind``."""
    k = kind.kind
    if k in (ft.KEYWORD, ft.UNKNOWN, ft.CASELESS):
        return _exact_keyword([v.text for v in values], kind.ignore_above, k == ft.CASELESS)
    if k == ft.TEXT:
        return _text_tests(values)
    builder: Callable[[Literal], Test | None]
    if k == ft.NUMBER:
        builder = _number_test
    elif k == ft.BOOLEAN:
        builder = _boolean_test
    elif k == ft.IP:
        builder = _ip_test
    else:
        return any_of([_date_test(v, now) for v in values])
    return any_of([builder(v) for v in values])


def any_of(tests: list[Test | None]) -> Test | None:
    """Combine tests with "or", dropping the never-matching ones."""
    live = [t for t in tests if t is not None]
    if not live:
        return None
    if len(live) == 1:
        return live[0]
    return lambda v: any(t(v) for t in live)


def wildcard_test(kind: ft.FieldType, value: Wildcard) -> Test | None:
    """A test for an unquoted value containing ``*`` (not ``field:*``, which is exists)."""
    k = kind.kind
    if k == ft.TEXT:
        match = glob(tuple(s.lower() for s in value.segments))
        return lambda v: (s := render(v)) is not None and any(map(match, analyze(s)))
    fold = k == ft.CASELESS
    match = glob(tuple(s.lower() for s in value.segments) if fold else value.segments)
    limit = kind.ignore_above if k in (ft.KEYWORD, ft.CASELESS) else None
    if fold:
        return lambda v: (s := render(v)) is not None and match(s.lower())
    if limit is not None:
        return lambda v: (s := render(v)) is not None and len(s) <= limit and match(s)
    if k == ft.UNKNOWN:
        # Dynamic mapping indexes JSON numbers and booleans as such, not as keywords.
        return lambda v: v.__class__ is str and match(v)  # type: ignore[arg-type]
    return lambda v: (s := render(v)) is not None and match(s)
