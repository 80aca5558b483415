"""Field access on ECS events that may be nested, dotted, or both.

Elasticsearch treats ``{"event": {"ingested": t}}`` and ``{"event.ingested": t}`` as the
same field, and an array of objects as the union of its members' fields. Producers on
Kafka write either shape (Beats nest, some shippers flatten), so every lookup the
alerting step does goes through here.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

# A value that is absent, null or an empty list is "missing", as in Elasticsearch.
MISSING: Any = object()


def lookup(event: Mapping[str, Any], path: str) -> list[Any]:
    """Every leaf value at ``path``, arrays flattened, nulls dropped, in document order.

    Dotted keys and nested objects may be mixed at any depth; the longest matching key is
    tried first so ``{"a.b": 1, "a": {"b": 2}}`` gives ``[1, 2]``.
    """
    out: list[Any] = []
    _collect(event, path.split("."), 0, out)
    return out


def first_value(event: Mapping[str, Any], path: str) -> Any:
    """The first non-null value at ``path``, or ``MISSING``.

    The plain nested spelling is tried first (it is what Beats and Defend write, and
    this runs for every candidate); then every spelling in ``lookup`` order. The two
    orders differ only for an event that spells one field two ways with two values.
    """
    node: Any = event
    parts = _split(path)
    depth = 0
    for part in parts:
        if not (isinstance(node, dict) and part in node):
            break
        node = node[part]
        depth += 1
    else:
        if node is not None and not isinstance(node, (dict, list)):
            return node
    # Absent from the nested objects: as often as not the field is just missing (a
    # rule's ``event.ingested`` override before ingest), which a few dotted keys decide.
    if depth < len(parts) and isinstance(node, dict) and _no_dotted_key(event, parts, depth):
        return MISSING
    values = lookup(event, path)
    return values[0] if values else MISSING


def _no_dotted_key(event: dict[str, Any], parts: tuple[str, ...], depth: int) -> bool:
    """Whether none of the objects at ``parts[:depth]`` (each a dict holding the next
    part) has a key spelling two or more of the following parts: then, as the nested
    path stops at ``depth``, ``lookup`` finds nothing."""
    node = event
    dotted = _dotted_keys(parts)
    for start in range(depth + 1):
        for key in dotted[start]:
            if key in node:
                return False
        if start < depth:
            node = node[parts[start]]
    return True


@lru_cache(maxsize=256)
def _split(path: str) -> tuple[str, ...]:
    return tuple(path.split("."))


@lru_cache(maxsize=256)
def _dotted_keys(parts: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    """For each position, the dotted keys spelling two or more parts from there."""
    return tuple(
        tuple(".".join(parts[start:end]) for end in range(start + 2, len(parts) + 1))
        for start in range(len(parts))
    )


def _collect(node: Any, parts: list[str], start: int, out: list[Any]) -> None:
    if start == len(parts):
        _flatten_into(node, out)
        return
    if isinstance(node, list):
        for item in node:
            _collect(item, parts, start, out)
        return
    if not isinstance(node, Mapping):
        return
    # Both a dotted key and the nested spelling may hold the field: collect from each,
    # longest key first, so the order of values is stable.
    for end in range(len(parts), start, -1):
        key = parts[start] if end == start + 1 else ".".join(parts[start:end])
        if key in node:
            _collect(node[key], parts, end, out)


def _flatten_into(value: Any, out: list[Any]) -> None:
    if value is None:
        return
    if isinstance(value, list):
        for item in value:
            _flatten_into(item, out)
        return
    out.append(value)


def subtree(event: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """All fields under ``prefix`` as dotted keys relative to it (``event`` -> ``{"kind": ..}``).

    Nested and dotted spellings are merged; lists are kept as values (ECS arrays).
    Used to copy ``event.*`` into ``kibana.alert.original_event.*``.
    """
    flat: dict[str, Any] = {}
    for key, value in flatten(event).items():
        if key.startswith(prefix + "."):
            flat[key[len(prefix) + 1 :]] = value
    return flat


def flatten(obj: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A mapping as dotted leaf keys; lists and scalars are leaves, nulls are dropped."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        elif value is not None:
            out[name] = value
    return out


def expand(obj: Any) -> Any:
    """The canonical nested form of a JSON value.

    Dotted keys are expanded into nested objects and merged with nested spellings of the
    same field; nulls, empty lists and objects left empty are dropped (Elasticsearch
    indexes none of them, and Avro decoding turns absent optional fields into nulls).
    Keys are merged in sorted order so the result does not depend on key order; a
    dotted key that collides with a scalar is kept as a literal key.
    """
    if isinstance(obj, Mapping):
        result: dict[str, Any] = {}
        for key in sorted(obj, key=str):
            value = expand(obj[key])
            if value is None:
                continue
            _merge_path(result, str(key).split("."), value, str(key))
        return result or None
    if isinstance(obj, list):
        items = [v for v in (expand(item) for item in obj) if v is not None]
        return items or None
    return obj


def _merge_path(target: dict[str, Any], parts: list[str], value: Any, literal: str) -> None:
    node = target
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            target[literal] = value
            return
        node = child
    last = parts[-1]
    existing = node.get(last)
    if isinstance(existing, dict) and isinstance(value, dict):
        for k, v in value.items():
            _merge_path(existing, [k], v, k)
    else:
        node[last] = value
