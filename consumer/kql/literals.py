"""What a query needs from an event: its fields, and strings every match must contain.

``required_literals`` is a prefilter aid, so it must be sound: only values that a
match compares exactly and case-sensitively against a string on a keyword-like field,
in a positive position, give literals. Numeric-looking values and ``true``/``false``/
``null`` are left out (a number can match with another spelling, ``42`` for ``42.0``).
"""

from __future__ import annotations

from consumer.kql import ast
from consumer.kql import fieldtypes as ft
from consumer.kql.compiler import LOW_CARDINALITY, distribute
from consumer.kql.values import as_number

Alternatives = frozenset[str]

_EXACT_KINDS = (ft.KEYWORD, ft.UNKNOWN)


def _full(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _value_literal(field: str, value: ast.Value) -> str | None:
    kind = ft.field_type(field)
    if kind.kind not in _EXACT_KINDS:
        return None
    if isinstance(value, ast.Wildcard):
        best = max(value.segments, key=len)
    elif isinstance(value.value, str) and as_number(value.value) is None:
        best = value.value
    else:
        return None
    if not best or (kind.ignore_above is not None and len(best) > kind.ignore_above):
        return None
    return best


# A literal set and whether it tests a low-cardinality field (event.category:process):
# such a set holds for most events, so it is a poor anchor for a prefilter.
_Ranked = tuple[Alternatives, bool]


def _conjuncts(node: ast.Query, prefix: str) -> list[_Ranked]:
    """Sets such that every match contains a member of each (empty list: nothing known)."""
    if isinstance(node, ast.FieldMatch):
        if node.field.pattern is not None:
            return []
        field = _full(prefix, node.field.name)
        lit = _value_literal(field, node.value)  # type: ignore[arg-type]
        return [(frozenset((lit,)), field.startswith(LOW_CARDINALITY))] if lit else []
    if isinstance(node, ast.And):
        out: list[_Ranked] = []
        for item in node.items:
            out.extend(_conjuncts(item, prefix))
        return out
    if isinstance(node, ast.Or):
        union: set[str] = set()
        weak = False
        for item in node.items:
            sets = _conjuncts(item, prefix)
            if not sets:
                return []
            best, best_weak = _ranked(sets)[0]
            union |= best
            weak |= best_weak
        return [(frozenset(union), weak)]
    if isinstance(node, ast.Nested):
        return _conjuncts(node.query, _full(prefix, node.field.name))
    return []


def _score(ranked: _Ranked) -> tuple[bool, int, int]:
    alternatives, weak = ranked
    # Strong fields first; then the shortest member decides how often a prefilter lets
    # events through.
    return (weak, -min(map(len, alternatives)), len(alternatives))


def _ranked(sets: list[_Ranked]) -> list[_Ranked]:
    return sorted(set(sets), key=lambda s: (*_score(s), sorted(s[0])))


def literals_of(tree: ast.Query) -> tuple[Alternatives, ...]:
    """Required literal sets of a parsed query, most selective first."""
    ranked: dict[Alternatives, None] = {}
    for alternatives, _weak in _ranked(_conjuncts(distribute(tree), "")):
        ranked.setdefault(alternatives)
    return tuple(ranked)


def fields_of(tree: ast.Query) -> frozenset[str]:
    """Field names a parsed query reads (nested sub-fields as full paths)."""
    names: set[str] = set()
    stack: list[tuple[object, str]] = [(tree, "")]
    while stack:
        node, prefix = stack.pop()
        if isinstance(node, ast.FieldMatch | ast.Range):
            names.add(_full(prefix, node.field.name))
        elif isinstance(node, ast.Nested):
            full = _full(prefix, node.field.name)
            names.add(full)
            stack.append((node.query, full))
        elif isinstance(node, ast.Or | ast.And):
            stack.extend((i, prefix) for i in node.items)
        elif isinstance(node, ast.Not):
            stack.append((node.item, prefix))
    return frozenset(names)
