"""The alerting state interface, its in-memory implementation, and changelog records.

The core keeps every decision-relevant fact (watermarks, window budgets, alerted
identities, open suppression groups) in an ``AlertingState`` and nothing else, so a core
rebuilt from the state's change records decides exactly as the one that wrote them.

Changelog records: ``key`` is ``<namespace>/<key>`` text, ``value`` is compact JSON bytes,
or ``None`` for a tombstone. Replaying them with last-write-wins (a compacted Kafka topic
does exactly this) reproduces the state; the order of records with different keys does
not matter. A Kafka-changelog implementation needs only the same six methods.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class StateRecord:
    """One state change: a compacted-topic record (``value`` ``None`` deletes ``key``)."""

    key: str
    value: bytes | None


class AlertingState(Protocol):
    """Namespaced key-value state with a change feed.

    Values are JSON values (dicts with string keys, lists, strings, numbers, booleans)
    and are treated as immutable: to change one, ``put`` a new value. Namespaces must not
    contain ``/``; keys may.
    """

    def get(self, namespace: str, key: str) -> Any | None:
        """The value under ``key``, or ``None``."""

    def put(self, namespace: str, key: str, value: Any) -> None:
        """Set ``key`` to ``value`` and record the change."""

    def delete(self, namespace: str, key: str) -> None:
        """Remove ``key`` (a tombstone in the change feed); absent keys are ignored."""

    def items(self, namespace: str) -> list[tuple[str, Any]]:
        """A snapshot of the namespace's entries."""

    def drain_changes(self) -> list[StateRecord]:
        """The changes since the last drain, one record per changed key, latest value."""

    def apply(self, records: Iterable[StateRecord]) -> None:
        """Load change records (restore); does not add them to the change feed."""


class InMemoryState:
    """``AlertingState`` in dicts: the default, and the restore target for a changelog."""

    def __init__(self) -> None:
        self._spaces: dict[str, dict[str, Any]] = {}
        # namespace/key -> (namespace, key); only the latest value matters, so a key
        # changed a thousand times between drains yields one record.
        self._dirty: dict[str, tuple[str, str]] = {}

    def get(self, namespace: str, key: str) -> Any | None:
        """The value under ``key``, or ``None``."""
        space = self._spaces.get(namespace)
        return None if space is None else space.get(key)

    def put(self, namespace: str, key: str, value: Any) -> None:
        """Set ``key`` to ``value`` and record the change."""
        self._spaces.setdefault(namespace, {})[key] = value
        self._dirty[f"{namespace}/{key}"] = (namespace, key)

    def delete(self, namespace: str, key: str) -> None:
        """Remove ``key``; the next drain carries a tombstone for it."""
        space = self._spaces.get(namespace)
        if space is not None and key in space:
            del space[key]
            if not space:
                del self._spaces[namespace]
            self._dirty[f"{namespace}/{key}"] = (namespace, key)

    def items(self, namespace: str) -> list[tuple[str, Any]]:
        """A snapshot of the namespace's entries."""
        return list(self._spaces.get(namespace, {}).items())

    def namespaces(self) -> Iterator[str]:
        """Namespaces that hold at least one entry (for tests and size reports)."""
        return iter(list(self._spaces))

    def size(self) -> int:
        """How many entries are held in all namespaces."""
        return sum(len(space) for space in self._spaces.values())

    def drain_changes(self) -> list[StateRecord]:
        """The changes since the last drain, one record per changed key, latest value."""
        records = []
        for full_key, (namespace, key) in self._dirty.items():
            value = self.get(namespace, key)
            if value is None:
                records.append(StateRecord(full_key, None))
            else:
                records.append(StateRecord(full_key, encode_value(value)))
        self._dirty.clear()
        return records

    def apply(self, records: Iterable[StateRecord]) -> None:
        """Load change records with last-write-wins; a tombstone deletes."""
        for record in records:
            namespace, key = split_key(record.key)
            if record.value is None:
                space = self._spaces.get(namespace)
                if space is not None:
                    space.pop(key, None)
                    if not space:
                        del self._spaces[namespace]
            else:
                self._spaces.setdefault(namespace, {})[key] = decode_value(record.value)


def split_key(full_key: str) -> tuple[str, str]:
    """``(namespace, key)`` of a record key; the namespace is everything before the first ``/``."""
    namespace, sep, key = full_key.partition("/")
    if not sep:
        raise ValueError(f"not an alerting state key: {full_key!r}")
    return namespace, key


def encode_value(value: Any) -> bytes:
    """Compact, key-sorted JSON bytes of a state value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def decode_value(data: bytes) -> Any:
    """The state value encoded by ``encode_value``."""
    return json.loads(data)
