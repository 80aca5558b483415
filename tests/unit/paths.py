"""Field paths an event holds, for tests of what a query or a schema needs of events."""

from __future__ import annotations


def held_paths(node: object, prefix: str = "") -> set[str]:
    """Every field path ``node`` holds, objects included, dotted keys read as paths and
    arrays as the union of their items' paths."""
    paths: set[str] = set()
    if isinstance(node, list):
        for item in node:
            paths |= held_paths(item, prefix)
    elif isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else key
            paths.add(path)
            paths |= held_paths(value, path)
    return paths
