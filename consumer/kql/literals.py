"""What a query needs from an event: its fields, and strings every match must contain.

``required_literals`` is a prefilter aid, so it must be sound. A literal says how a
matching event contains its text:

- ``VALUE``: a string value equal to it, from an exact test on a keyword-like field;
- ``PART``: a string value containing it, from a wildcard test on such a field;
- ``KEY``: a key ending in it (the last name of a field the query tests positively: a
  field a match must have). JSON spells keys in the record; Avro does not, so keys are
  asked for only where the records are JSON;
- ``KEY_PART``: a key containing it, from ``field:*``, which an object meets too: the
  event may spell the field's name inside a dotted key (``process.parent`` exists in
  ``{"process.parent.name": ...}``, whose key ends in ``name``).

Only case-sensitive tests in positive positions give values; numeric-looking values and
``true``/``false``/``null`` are left out (a number can match with another spelling,
``42`` for ``42.0``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from consumer.kql import ast
from consumer.kql import fieldtypes as ft
from consumer.kql.compiler import LOW_CARDINALITY, distribute
from consumer.kql.values import as_number

VALUE, PART, KEY, KEY_PART = "value", "part", "key", "key part"


class Literal(NamedTuple):
    """A string every match contains, as a whole value, part of a value or a key."""

    text: str
    kind: str


Alternatives = frozenset[Literal]

_EXACT_KINDS = (ft.KEYWORD, ft.UNKNOWN)
# How good an anchor a set of alternatives is, best first: values of fields with many
# values; keys of fields most events lack (powershell.file.script_block_text); values of
# low-cardinality fields such as event.category, which most events share, and values
# spelled like a field's last name; keys many events hold (a key is found by its last
# name: "name" ends hundreds of fields).
_STRONG, _RARE_KEY, _WEAK, _COMMON_KEY = 0, 1, 2, 3
# A last name this many known fields share makes a common key.
_COMMON_NAME = 3


def _full(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _value_literal(field: str, value: ast.Value) -> Literal | None:
    kind = ft.field_type(field)
    if kind.kind not in _EXACT_KINDS:
        return None
    if isinstance(value, ast.Wildcard):
        best, how = max(value.segments, key=len), PART
    elif isinstance(value.value, str) and as_number(value.value) is None:
        best, how = value.value, VALUE
    else:
        return None
    if not best or (kind.ignore_above is not None and len(best) > kind.ignore_above):
        return None
    return Literal(best, how)


def _is_exists(value: object) -> bool:
    return isinstance(value, ast.Wildcard) and value.is_exists


def _key_literal(field: str) -> Literal:
    # A multi-field (process.name.text) reads its parent's values: the parent's key.
    return Literal(ft.field_type(field).path.rpartition(".")[2], KEY)


# A literal set and how good an anchor it is (_STRONG ... _COMMON_KEY).
_Ranked = tuple[Alternatives, int]


def _conjuncts(node: ast.Query, prefix: str, keys: bool) -> list[_Ranked]:
    """Sets such that every match contains a member of each (empty list: nothing known)."""
    if isinstance(node, ast.FieldMatch | ast.Range):
        if node.field.pattern is not None or not node.field.name:
            return []
        field = _full(prefix, node.field.name)
        out: list[_Ranked] = []
        if keys:
            key = _key_literal(field)
            if isinstance(node, ast.FieldMatch) and _is_exists(node.value):
                key = Literal(key.text, KEY_PART)
            common = (
                "." not in field  # message, tags, @timestamp: on most events
                or field.startswith(LOW_CARDINALITY)
                or ft.fields_named(key.text) >= _COMMON_NAME
            )
            out.append((frozenset((key,)), _COMMON_KEY if common else _RARE_KEY))
        lit = _value_literal(field, node.value) if isinstance(node, ast.FieldMatch) else None
        if lit is not None:
            # A value that is also a field's last name ("user", "kernel") is found in
            # every record holding that key, where records spell their keys.
            weak = field.startswith(LOW_CARDINALITY) or (keys and ft.fields_named(lit.text) > 0)
            out.append((frozenset((lit,)), _WEAK if weak else _STRONG))
        return out
    if isinstance(node, ast.And):
        out = []
        for item in node.items:
            out.extend(_conjuncts(item, prefix, keys))
        return out
    if isinstance(node, ast.Or):
        union: set[Literal] = set()
        rank = _STRONG
        for item in node.items:
            sets = _conjuncts(item, prefix, keys)
            if not sets:
                return []
            best, best_rank = _ranked(sets)[0]
            union |= best
            rank = max(rank, best_rank)
        return [(frozenset(union), rank)]
    if isinstance(node, ast.Nested):
        return _conjuncts(node.query, _full(prefix, node.field.name), keys)
    return []


def _score(ranked: _Ranked) -> tuple[int, int, int]:
    alternatives, rank = ranked
    # Then the shortest member decides how often a prefilter lets events through.
    return (rank, -min(len(lit.text) for lit in alternatives), len(alternatives))


def _ranked(sets: list[_Ranked]) -> list[_Ranked]:
    return sorted(set(sets), key=lambda s: (*_score(s), sorted(s[0])))


def literals_of(tree: ast.Query, *, keys: bool = False) -> tuple[Alternatives, ...]:
    """Required literal sets of a parsed query, most selective first; with ``keys``,
    the fields a match must have count too (for records that spell their keys)."""
    ranked: dict[Alternatives, None] = {}
    for alternatives, _rank in _ranked(_conjuncts(distribute(tree), "", keys)):
        ranked.setdefault(alternatives)
    return tuple(ranked)


def satisfiable(node: ast.Query, field_present: Callable[[str], bool], prefix: str = "") -> bool:
    """False when every match of the query needs a field that ``field_present`` (given
    a full dotted path) says no event holds: a positive test on it, in each branch of
    an ``or``. True whenever in doubt (negations, free text, wildcard field names)."""
    if isinstance(node, ast.FieldMatch | ast.Range):
        if node.field.pattern is not None or not node.field.name:
            return True
        # A multi-field (process.name.text) reads its parent's values.
        return field_present(ft.field_type(_full(prefix, node.field.name)).path)
    if isinstance(node, ast.And):
        return all(satisfiable(item, field_present, prefix) for item in node.items)
    if isinstance(node, ast.Or):
        return any(satisfiable(item, field_present, prefix) for item in node.items)
    if isinstance(node, ast.Nested):
        if node.field.pattern is not None:
            return True
        return satisfiable(node.query, field_present, _full(prefix, node.field.name))
    return True


def fields_of(tree: ast.Query) -> frozenset[str]:
    """Field names a parsed query reads (nested sub-fields as full paths)."""
    return _fields(tree)[0]


def named_fields(tree: ast.Query) -> frozenset[str] | None:
    """``fields_of``, or None when the query may read fields it does not name: a field
    name with a wildcard, or a value without a field (free text, any field)."""
    names, complete = _fields(tree)
    return names if complete else None


def _fields(tree: ast.Query) -> tuple[frozenset[str], bool]:
    """The fields named, and whether they are all the query reads."""
    names: set[str] = set()
    complete = True
    stack: list[tuple[object, str]] = [(tree, "")]
    while stack:
        node, prefix = stack.pop()
        if isinstance(node, ast.FieldMatch | ast.Range | ast.Nested):
            complete &= node.field.pattern is None
            full = _full(prefix, node.field.name)
            names.add(full)
            if isinstance(node, ast.Nested):
                stack.append((node.query, full))
        elif isinstance(node, ast.Or | ast.And):
            stack.extend((i, prefix) for i in node.items)
        elif isinstance(node, ast.Not):
            stack.append((node.item, prefix))
        elif isinstance(node, ast.FreeText):
            complete = False
    return frozenset(names), complete
