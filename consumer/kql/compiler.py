"""Compile a KQL tree into a predicate over one event (nested closures, built once).

Steps: value groups are distributed over their field (``f:(a or not b)`` is
``f:a or not f:b``, Kibana's translation); ``or`` branches that compare the same field
with plain values are merged into one set test; ``and`` conjuncts are ordered so the
cheapest and most selective run first (predicates are pure, so order does not change
the result). Per event, only dict lookups and the precompiled tests run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from consumer.kql import ast
from consumer.kql import fieldtypes as ft
from consumer.kql.fields import any_value, exists, leaves, objects_at
from consumer.kql.ranges import range_test
from consumer.kql.values import glob, literal_test, wildcard_test

Pred = Callable[[Mapping[str, Any]], bool]

#: ECS fields with few distinct values: tests on them select little, so they run late.
LOW_CARDINALITY = (
    "event.",
    "host.os.",
    "data_stream.",
    "agent.type",
    "ecs.",
    "cloud.provider",
    "observer.",
)
_CACHE_LIMIT = 4096


def _never(_event: Mapping[str, Any]) -> bool:
    return False


def _always(_event: Mapping[str, Any]) -> bool:
    return True


def distribute(node: ast.Query) -> ast.Query:
    """Rewrite value groups as boolean queries on single values."""
    if isinstance(node, ast.Or | ast.And):
        return type(node)(tuple(distribute(i) for i in node.items))
    if isinstance(node, ast.Not):
        return ast.Not(distribute(node.item))
    if isinstance(node, ast.Nested):
        return ast.Nested(node.field, distribute(node.query))
    if isinstance(node, ast.FieldMatch):
        return _spread(node.field, node.value)
    return node


def _spread(field: ast.Field, value: ast.ValueExpr) -> ast.Query:
    if isinstance(value, ast.ValueOr):
        return ast.Or(tuple(_spread(field, v) for v in value.items))
    if isinstance(value, ast.ValueAnd):
        return ast.And(tuple(_spread(field, v) for v in value.items))
    if isinstance(value, ast.ValueNot):
        return ast.Not(_spread(field, value.item))
    return ast.FieldMatch(field, value)


def _full(prefix: str, field: ast.Field) -> str:
    return f"{prefix}.{field.name}" if prefix else field.name


def cost(node: ast.Query, prefix: str = "") -> float:
    """Estimated cost per event, lower is tried first (selective exact tests lowest)."""
    if isinstance(node, ast.FieldMatch):
        name = _full(prefix, node.field)
        if node.field.pattern is not None:
            return 15.0
        base = 1.0
        if isinstance(node.value, ast.Wildcard):
            base = 4.0 if node.value.is_exists else 2.5
        if ft.field_type(name).kind == ft.TEXT:
            base += 4.0
        return base + (3.0 if name.startswith(LOW_CARDINALITY) else 0.0)
    if isinstance(node, ast.Range):
        return 5.0
    if isinstance(node, ast.Not):
        return cost(node.item, prefix) + 2.0
    if isinstance(node, ast.Or):
        return max(cost(i, prefix) for i in node.items) + 0.1 * len(node.items)
    if isinstance(node, ast.And):
        return min(cost(i, prefix) for i in node.items)
    if isinstance(node, ast.Nested):
        return 8.0
    if isinstance(node, ast.FreeText):
        return 20.0
    return 0.0


class _Compiler:
    def __init__(self, now: Callable[[], float]) -> None:
        self.now = now

    def compile(self, node: ast.Query, prefix: str) -> Pred:
        if isinstance(node, ast.MatchAll):
            return _always
        if isinstance(node, ast.And):
            ordered = sorted(node.items, key=lambda n: cost(n, prefix))
            return _all([self.compile(i, prefix) for i in ordered])
        if isinstance(node, ast.Or):
            return _any([self.compile(i, prefix) for i in _merge_values(node.items)])
        if isinstance(node, ast.Not):
            inner = self.compile(node.item, prefix)
            return lambda event: not inner(event)
        if isinstance(node, ast.FieldMatch):
            return self.field_match(node.field, [node.value], prefix)
        if isinstance(node, _SetMatch):
            return self.field_match(node.field, list(node.values), prefix)
        if isinstance(node, ast.Range):
            return self.on_field(
                node.field, prefix, lambda kind: range_test(kind, node.op, node.value, self.now)
            )
        if isinstance(node, ast.Nested):
            return self.nested(node, prefix)
        if isinstance(node, ast.FreeText):
            return self.free_text(node.value, prefix)
        if isinstance(node, _FreeTextSet):
            values = list(node.values)
            return self.by_path(
                lambda p: True, prefix, lambda kind: literal_test(kind, values, self.now)
            )
        raise TypeError(f"unknown KQL node {node!r}")

    def value_test(self, kind: ft.FieldType, values: list[ast.Value]):
        if len(values) == 1 and isinstance(values[0], ast.Wildcard):
            return wildcard_test(kind, values[0])
        return literal_test(kind, values, self.now)  # type: ignore[arg-type]

    def field_match(self, field: ast.Field, values: list[ast.Value], prefix: str) -> Pred:
        if len(values) == 1 and isinstance(values[0], ast.Wildcard) and values[0].is_exists:
            if field.pattern is None:
                path = ft.field_type(_full(prefix, field)).path
                return exists(_relative(path, prefix))
            return self.on_field(field, prefix, lambda kind: lambda v: True)
        return self.on_field(field, prefix, lambda kind: self.value_test(kind, values))

    def on_field(self, field: ast.Field, prefix: str, make_test) -> Pred:
        """A predicate testing the values of ``field`` with a test built for its type."""
        if field.pattern is not None:
            return self.by_path(glob(field.pattern), prefix, make_test)
        kind = ft.field_type(_full(prefix, field))
        test = make_test(kind)
        if test is None:
            return _never
        return any_value(_relative(kind.path, prefix), test)

    def by_path(self, path_matches: Callable[[str], bool], prefix: str, make_test) -> Pred:
        """Test every value whose dotted path is accepted, each with its own field type."""
        cache: dict[str, Callable[[object], bool] | None] = {}
        # Tests depend on the field's kind and keyword limit only, never on its path: one
        # test per kind, so an event of ever-new field names cannot make a long query
        # rebuild its tests (the path cache below is bounded and may be full).
        by_kind: dict[tuple[str, int | None], Callable[[object], bool] | None] = {}

        def test_for(path: str):
            if path in cache:
                return cache[path]
            test = None
            if path_matches(path):
                kind = ft.field_type(f"{prefix}.{path}" if prefix else path)
                key = (kind.kind, kind.ignore_above)
                if key not in by_kind:
                    by_kind[key] = make_test(kind)
                test = by_kind[key]
            if len(cache) < _CACHE_LIMIT:
                cache[path] = test
            return test

        def pred(event: Mapping[str, Any]) -> bool:
            for path, value in leaves(event):
                test = test_for(path)
                if test is not None and test(value):
                    return True
            return False

        return pred

    def free_text(self, value: ast.Value, prefix: str) -> Pred:
        if isinstance(value, ast.Wildcard) and value.is_exists:
            return self.by_path(lambda p: True, prefix, lambda kind: lambda v: True)
        return self.by_path(lambda p: True, prefix, lambda kind: self.value_test(kind, [value]))

    def nested(self, node: ast.Nested, prefix: str) -> Pred:
        full = _full(prefix, node.field)
        inner = self.compile(node.query, full)
        objects = objects_at(_relative(full, prefix))
        return lambda event: any(inner(obj) for obj in objects(event))


class _SetMatch:
    """Internal: ``field`` equal to any of ``values`` (merged ``or`` branches)."""

    __slots__ = ("field", "values")

    def __init__(self, field: ast.Field, values: tuple[ast.Literal, ...]) -> None:
        self.field = field
        self.values = values


class _FreeTextSet:
    """Internal: any field equal to any of ``values`` (merged free-text ``or`` branches).

    One walk of the event's values tests them all, where one walk per term would make a
    long ``w1 or w2 or ...`` cost terms x fields per event.
    """

    __slots__ = ("values",)

    def __init__(self, values: tuple[ast.Literal, ...]) -> None:
        self.values = values


def _merge_values(items: tuple[ast.Query, ...]) -> list:
    merged: list = []
    by_field: dict[ast.Field, int] = {}
    free_text: int | None = None
    for item in items:
        if isinstance(item, ast.FreeText) and isinstance(item.value, ast.Literal):
            if free_text is None:
                free_text = len(merged)
                merged.append(_FreeTextSet((item.value,)))
            else:
                merged[free_text] = _FreeTextSet((*merged[free_text].values, item.value))
            continue
        if isinstance(item, ast.FieldMatch) and isinstance(item.value, ast.Literal):
            at = by_field.get(item.field)
            if at is not None:
                prev = merged[at]
                merged[at] = _SetMatch(item.field, (*prev.values, item.value))
                continue
            by_field[item.field] = len(merged)
            merged.append(_SetMatch(item.field, (item.value,)))
        else:
            merged.append(item)
    return merged


def _relative(path: str, prefix: str) -> tuple[str, ...]:
    if prefix and path.startswith(prefix + "."):
        path = path[len(prefix) + 1 :]
    return tuple(path.split("."))


def _all(preds: list[Pred]) -> Pred:
    preds = [p for p in preds if p is not _always]
    if any(p is _never for p in preds):
        return _never
    if not preds:
        return _always
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:
        a, b = preds
        return lambda e: a(e) and b(e)
    if len(preds) == 3:
        a, b, c = preds
        return lambda e: a(e) and b(e) and c(e)
    if len(preds) == 4:
        a, b, c, d = preds
        return lambda e: a(e) and b(e) and c(e) and d(e)
    return lambda e: all(p(e) for p in preds)


def _any(preds: list[Pred]) -> Pred:
    preds = [p for p in preds if p is not _never]
    if any(p is _always for p in preds):
        return _always
    if not preds:
        return _never
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:
        a, b = preds
        return lambda e: a(e) or b(e)
    return lambda e: any(p(e) for p in preds)


def compile_tree(tree: ast.Query, now: Callable[[], float] | None = None) -> Pred:
    """Compile a parsed query into a predicate over one event."""
    return _Compiler(now or time.time).compile(distribute(tree), "")
