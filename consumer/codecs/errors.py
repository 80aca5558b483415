"""Errors of the codecs, each with a stable machine-readable ``reason``.

A ``DecodeError`` is one bad record: the pipeline dead-letters it with ``reason`` in a
header and moves on. An ``EncodeError`` is a caller's mistake (an event that does not
fit the schema) in tests, the generator or the demo; it never comes from Kafka input.
"""

from __future__ import annotations

from consumer.errors import ConsumerError, EventError

# Every reason a DecodeError can carry. Dead-letter headers and metrics labels use them,
# so they are part of the interface: add, never rename.
DECODE_REASONS = frozenset(
    {
        "empty",
        "too_large",
        "invalid_utf8",
        "invalid_json",
        "too_deep",
        "not_an_object",
        "unrecognised_format",
        "avro_unknown_schema",
        "avro_invalid",
    }
)


class DecodeError(EventError):
    """A record's bytes are not an event; ``reason`` is one of ``DECODE_REASONS``."""

    def __init__(self, reason: str, detail: str) -> None:
        if reason not in DECODE_REASONS:
            raise ValueError(f"unknown decode reason {reason!r}")
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


class EncodeError(ConsumerError):
    """An event cannot be encoded (it does not fit the Avro schema, or is not JSON)."""


class SchemaError(ConsumerError):
    """An Avro schema or the schema-id mapping cannot be used; the process refuses to start."""
