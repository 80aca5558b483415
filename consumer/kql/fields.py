"""Reading field values out of an event decoded from JSON.

An event may spell a path nested (``{"process": {"name": ...}}``), dotted
(``{"process.name": ...}``) or mixed at any level; every spelling present is read, so a
field can hold values from several of them (their union). Lists are traversed along
the path and flattened at the end (lists of lists too), ``None`` and empty lists are
missing values. Paths are split and every joined key is built once, when the query is
compiled; traversal of event data is iterative where its depth is not bounded by the
query, so deeply nested events cannot exhaust the stack.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

Test = Callable[[object], bool]
Pred = Callable[[Mapping[str, Any]], bool]


def _is_map(obj: object) -> bool:
    return obj.__class__ is dict or isinstance(obj, Mapping)


def _dicts_in(items: list) -> list:
    """The mappings inside a (possibly nested) list."""
    found, stack = [], [items]
    while stack:
        for x in stack.pop():
            if x.__class__ is list:
                stack.append(x)
            elif _is_map(x):
                found.append(x)
    return found


def _leaf_any(value: object, test: Test) -> bool:
    if value.__class__ is not list:
        return test(value)
    stack = [value]
    while stack:
        for x in stack.pop():
            if x is None:
                continue
            if x.__class__ is list:
                stack.append(x)
            elif test(x):
                return True
    return False


def _keys(parts: tuple[str, ...]) -> list[list[str]]:
    n = len(parts)
    return [[".".join(parts[i:j]) if j > i else "" for j in range(n + 1)] for i in range(n)]


def any_value(parts: tuple[str, ...], test: Test) -> Pred:
    """A predicate: some value at ``parts`` satisfies ``test``."""
    n, keys = len(parts), _keys(parts)
    strings = getattr(test, "strings", None) if not getattr(test, "folded", False) else None

    if strings is not None:
        # Exact keyword sets: decide plain strings with one set lookup, no call.
        def leaf(v: object) -> bool:
            if v.__class__ is str:
                return v in strings
            return _leaf_any(v, test)
    else:

        def leaf(v: object) -> bool:
            return _leaf_any(v, test)

    def walk(obj: Mapping, i: int) -> bool:
        row = keys[i]
        for j in range(i + 1, n + 1):
            sub = obj.get(row[j])
            if sub is None:
                continue
            if j == n:
                if leaf(sub):
                    return True
            elif sub.__class__ is dict or _is_map(sub):
                if walk(sub, j):
                    return True
            elif sub.__class__ is list and any(walk(d, j) for d in _dicts_in(sub)):
                return True
        return False

    if n == 1:
        key = parts[0]

        def one(event: Mapping[str, Any]) -> bool:
            v = event.get(key)
            return v is not None and leaf(v)

        return one
    if n == 2:
        head, tail, joined = parts[0], parts[1], keys[0][2]
        if strings is not None:
            return _two_exact(head, tail, joined, strings, leaf, walk)

        def two(event: Mapping[str, Any]) -> bool:
            sub = event.get(head)
            if sub is not None:
                if sub.__class__ is dict:
                    v = sub.get(tail)
                    if v is not None and leaf(v):
                        return True
                elif walk({head: sub}, 0):
                    return True
            v = event.get(joined)
            return v is not None and leaf(v)

        return two
    return lambda event: walk(event, 0)


def _two_exact(
    head: str,
    tail: str,
    joined: str,
    strings: frozenset[str],
    leaf: Test,
    walk: Callable[[Mapping, int], bool],
) -> Pred:
    """``any_value`` for a two-part path tested against exact strings: the hot case.

    Most rule clauses look like ``process.name:kextunload`` and most events fail them on
    a nested string, so that case is decided inline, without a call per value.
    """

    def two_exact(event: Mapping[str, Any]) -> bool:
        sub = event.get(head)
        if sub is not None:
            if sub.__class__ is dict:
                v = sub.get(tail)
                if v is not None:
                    if v.__class__ is str:
                        if v in strings:
                            return True
                    elif leaf(v):
                        return True
            elif walk({head: sub}, 0):
                return True
        v = event.get(joined)
        return v is not None and leaf(v)

    return two_exact


def _exists(v: object) -> bool:
    return v.__class__ is not dict or bool(v)


def exists(parts: tuple[str, ...]) -> Pred:
    """A predicate: the field has a value (not missing, not null, not an empty list)."""
    return any_value(parts, _exists)


def objects_at(parts: tuple[str, ...]) -> Callable[[Mapping[str, Any]], list[Mapping]]:
    """A function giving the objects at ``parts`` (lists flattened), for nested queries."""
    n, keys = len(parts), _keys(parts)

    def objects(event: Mapping[str, Any]) -> list[Mapping]:
        found: list[Mapping] = []
        stack: list[tuple[Mapping, int]] = [(event, 0)]
        while stack:
            obj, i = stack.pop()
            row = keys[i]
            for j in range(i + 1, n + 1):
                sub = obj.get(row[j])
                if sub is None:
                    continue
                subs = _dicts_in(sub) if sub.__class__ is list else [sub] if _is_map(sub) else []
                if j == n:
                    found.extend(subs)
                else:
                    stack.extend((d, j) for d in subs)
        return found

    return objects


def leaves(event: Mapping[str, Any]) -> Iterator[tuple[str, object]]:
    """Every scalar of the event with its dotted path (lists flattened, nulls skipped)."""
    stack: list[tuple[str, object]] = [("", event)]
    while stack:
        prefix, obj = stack.pop()
        if obj is None:
            continue
        if obj.__class__ is list:
            stack.extend((prefix, x) for x in obj)  # type: ignore[attr-defined]
        elif _is_map(obj):
            for key, value in obj.items():  # type: ignore[attr-defined]
                stack.append((f"{prefix}.{key}" if prefix else str(key), value))
        else:
            yield prefix, obj
