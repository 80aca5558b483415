"""ECS shape helpers shared by the codecs."""

from __future__ import annotations

from typing import Any


def nest_dotted_keys(event: dict[str, Any]) -> dict[str, Any]:
    """Return ``event`` with dotted keys expanded into nested objects, at every level.

    ``{"process.name": "x", "process": {"pid": 1}}`` becomes
    ``{"process": {"name": "x", "pid": 1}}``, the document Elasticsearch would index.
    Objects met under the same path merge; two values for one leaf raise ``ValueError``
    (Elasticsearch would keep both as a multi-value field, which a record schema cannot).
    The input is not modified.
    """
    out: dict[str, Any] = {}
    for key, value in event.items():
        parts = key.split(".")
        if not all(parts):
            raise ValueError(f"field name {key!r} has an empty part")
        if isinstance(value, dict):
            value = nest_dotted_keys(value)
        target = out
        for i, part in enumerate(parts[:-1]):
            child = target.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"{'.'.join(parts[: i + 1])} is both a value and an object")
            target = child
        _merge(target, parts[-1], value, key)
    return out


def _merge(target: dict[str, Any], name: str, value: Any, path: str) -> None:
    if name not in target:
        target[name] = value
        return
    existing = target[name]
    if not (isinstance(existing, dict) and isinstance(value, dict)):
        raise ValueError(f"{path} is given twice")
    for key, item in value.items():
        _merge(existing, key, item, f"{path}.{key}")
