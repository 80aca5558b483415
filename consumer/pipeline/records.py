"""What the pipeline writes to Kafka besides alerts: candidates and dead letters (pure).

A candidate travels from the member that matched the event to the member that owns the
rule's window state through the internal matches topic, keyed by rule uuid so that all
of one rule's candidates land in one partition (one owner, one budget). Its value is
JSON: the rule uuid, the decoded event and where the event came from.

A dead letter is the original record's bytes and key, its original headers, and headers
naming why it was refused and where it came from, so nothing about it is lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from consumer.codecs.json_codec import dumps, loads
from consumer.errors import EventError

DEAD_LETTER_REASON = "x-dead-letter-reason"
DEAD_LETTER_ERROR = "x-dead-letter-error"
SOURCE_TOPIC = "x-source-topic"
SOURCE_PARTITION = "x-source-partition"
SOURCE_OFFSET = "x-source-offset"
SOURCE_TIMESTAMP = "x-source-timestamp"
# Reason codes beside the decoder's own (consumer.codecs.DECODE_REASONS).
INVALID_CANDIDATE = "invalid_candidate"
UNKNOWN_RULE = "unknown_rule"

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class CandidateRecord:
    """A rule match on its way to the rule's window owner."""

    rule_uuid: str
    event: dict[str, Any]
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None


def encode_candidate(candidate: CandidateRecord) -> bytes:
    """The matches-topic value of ``candidate``."""
    return dumps(
        {
            "rule": candidate.rule_uuid,
            "event": candidate.event,
            "source": {
                "topic": candidate.topic,
                "partition": candidate.partition,
                "offset": candidate.offset,
                "timestamp_ms": candidate.timestamp_ms,
            },
        }
    )


def decode_candidate(value: bytes | None) -> CandidateRecord:
    """Read a matches-topic value; ``EventError`` when it is not one of ours."""
    try:
        data = loads(value or b"")
        source = data["source"]
        record = CandidateRecord(
            rule_uuid=data["rule"],
            event=data["event"],
            topic=source["topic"],
            partition=source["partition"],
            offset=source["offset"],
            timestamp_ms=source.get("timestamp_ms"),
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise EventError(f"not a candidate record: {exc}") from None
    if not isinstance(record.event, dict) or not isinstance(record.rule_uuid, str):
        raise EventError("not a candidate record: wrong field types")
    return record


def dead_letter_headers(
    original: Headers | None,
    reason: str,
    error: str,
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int | None,
) -> Headers:
    """The original headers plus why the record was refused and where it came from."""
    headers = list(original or [])
    headers += [
        (DEAD_LETTER_REASON, reason.encode()),
        (DEAD_LETTER_ERROR, error[:1000].encode("utf-8", "replace")),
        (SOURCE_TOPIC, topic.encode()),
        (SOURCE_PARTITION, str(partition).encode()),
        (SOURCE_OFFSET, str(offset).encode()),
    ]
    if timestamp_ms is not None:
        headers.append((SOURCE_TIMESTAMP, str(timestamp_ms).encode()))
    return headers
