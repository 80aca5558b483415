"""Kibana rule ``filters``: the query-DSL pills a rule can carry beside its KQL query.

Kibana ANDs every enabled filter with the query, negating those with ``meta.negate``;
``meta.disabled`` filters are ignored. The clauses Elastic's rules use are compiled to
predicates over the same field lookup as KQL:

- ``wildcard`` (``value`` or ``wildcard``, optional ``case_insensitive``): Elasticsearch
  wildcard syntax on the whole value, ``*`` any run, ``?`` one character, ``\\`` escapes;
- ``exists``; ``term``, ``match`` and ``match_phrase`` (exact keyword values, as on
  ECS keyword fields); ``terms``;
- ``bool`` with ``must``, ``filter``, ``should`` and ``must_not`` of the above.

Anything else (scripts, ranges, geo...) raises ``ValueError`` naming the clause, so a
rule is refused rather than run with a filter silently dropped. A filter can only narrow
the query's matches, so the query's required literals stay sound.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from consumer.kql.fields import any_value, exists
from consumer.kql.fieldtypes import field_type
from consumer.kql.values import render

Pred = Callable[[Mapping[str, Any]], bool]
_SINGLE_FIELD_CLAUSES = ("wildcard", "term", "match", "match_phrase", "terms")


def compile_filters(filters: Sequence[Mapping[str, Any]]) -> Pred | None:
    """One predicate for a rule's filters (all must hold), or ``None`` when none apply."""
    preds: list[Pred] = []
    for index, item in enumerate(filters):
        if not isinstance(item, Mapping):
            raise ValueError(f"filters[{index}] is not an object")
        meta = item.get("meta") or {}
        if meta.get("disabled"):
            continue
        clause = item.get("query") or {k: v for k, v in item.items() if k not in ("meta", "$state")}
        try:
            pred = _clause(clause)
        except ValueError as exc:
            raise ValueError(f"filters[{index}]: {exc}") from None
        preds.append(_negate(pred) if meta.get("negate") else pred)
    if not preds:
        return None
    return preds[0] if len(preds) == 1 else lambda event: all(p(event) for p in preds)


def _negate(pred: Pred) -> Pred:
    return lambda event: not pred(event)


def _clause(clause: Any) -> Pred:
    if not isinstance(clause, Mapping) or len(clause) != 1:
        raise ValueError("a filter must hold exactly one query clause")
    [(kind, body)] = clause.items()
    if kind == "bool":
        return _bool(body)
    if kind == "exists":
        if not isinstance(body, Mapping) or not isinstance(body.get("field"), str):
            raise ValueError("exists needs a field")
        return exists(tuple(body["field"].split(".")))
    if kind in _SINGLE_FIELD_CLAUSES:
        if not isinstance(body, Mapping) or len(body) != 1:
            raise ValueError(f"{kind} must name exactly one field")
        [(field, spec)] = body.items()
        return any_value(tuple(field_type(field).path.split(".")), _value_test(kind, field, spec))
    raise ValueError(f"query clause {kind!r} is not supported in rule filters")


def _bool(body: Any) -> Pred:
    if not isinstance(body, Mapping):
        raise ValueError("bool must be an object")
    unknown = set(body) - {"must", "filter", "should", "must_not", "minimum_should_match"}
    if unknown:
        raise ValueError(f"bool option {sorted(unknown)[0]!r} is not supported")

    def clauses(key: str) -> list[Pred]:
        items = body.get(key, [])
        return [_clause(c) for c in (items if isinstance(items, list) else [items])]

    required = clauses("must") + clauses("filter")
    optional, excluded = clauses("should"), clauses("must_not")
    # Without must/filter, Elasticsearch requires one should clause to match.
    need_one = bool(optional) and (not required or body.get("minimum_should_match", 0) >= 1)

    def pred(event: Mapping[str, Any]) -> bool:
        return (
            all(p(event) for p in required)
            and not any(p(event) for p in excluded)
            and (not need_one or any(p(event) for p in optional))
        )

    return pred


def _value_test(kind: str, field: str, spec: Any) -> Callable[[object], bool]:
    if kind == "terms":
        if not isinstance(spec, list):
            raise ValueError("terms needs a list of values")
        wanted = frozenset(str(v) for v in spec)
        return lambda v: render(v) in wanted
    if isinstance(spec, Mapping):
        options = spec
        value = spec.get("value", spec.get("wildcard", spec.get("query")))
    else:
        options, value = {}, spec
    if not isinstance(value, str | int | float | bool):
        raise ValueError(f"{kind} on {field!r} needs a value")
    fold = bool(options.get("case_insensitive", False))
    if kind == "wildcard":
        pattern = re.compile(
            _wildcard_regex(str(value)), re.DOTALL | (re.IGNORECASE if fold else 0)
        )
        return lambda v: (s := render(v)) is not None and pattern.fullmatch(s) is not None
    wanted = render(value)
    if fold and wanted is not None:
        low = wanted.lower()
        return lambda v: (s := render(v)) is not None and s.lower() == low
    return lambda v: render(v) == wanted


def _wildcard_regex(pattern: str) -> str:
    """A regex for ``fullmatch`` that never backtracks more than once per ``*``.

    ``a*b*c`` as ``a.*b.*c`` would take time exponential in the stars on a value that
    almost matches. Each middle segment is found at its earliest place instead, in an
    atomic group: segments have a fixed length (``?`` is one character), so the earliest
    place never rules out a match a later one would allow.
    """
    segments: list[list[str]] = [[]]
    escaped = False
    for char in pattern:
        if escaped:
            segments[-1].append(re.escape(char))
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "*":
            segments.append([])
        elif char == "?":
            segments[-1].append(".")
        else:
            segments[-1].append(re.escape(char))
    if escaped:
        segments[-1].append(re.escape("\\"))
    parts = ["".join(segment) for segment in segments]
    if len(parts) == 1:
        return parts[0]
    first, *middle, last = parts
    return first + "".join(f"(?>.*?{m})" for m in middle if m) + ".*" + last
