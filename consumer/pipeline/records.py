"""What the pipeline writes to Kafka besides alerts: candidates and dead letters (pure).

A candidate travels from the member that matched the event to the member that owns the
rule's window state through the internal matches topic, keyed by rule uuid so that all
of one rule's candidates land in one partition (one owner, one budget). One record
carries the candidates of one rule from one consumed batch, in their order: a noisy
rule's matches then cost the producer, the broker and the owner one record per batch,
not one each. Its value is a JSON header (the rule uuid and, per candidate, where the
event came from, the event's facts: time, identity, suppression groups, and the size
of its record), a newline, and the matched records' values as read, one after another.
The owner decides on the facts and decodes a record again only for an alert it admits,
so a noisy rule's candidates past the limit cost no decoding (``consumer.alerting.facts``).

A JSON header holds no raw newline. Candidates written by earlier members are still
read: one per record, its header holding its fields itself (no ``candidates`` list,
its record the rest of the value), or, before facts travelled, one JSON document
holding the decoded event.

A dead letter is the original record's bytes and key, its original headers, and headers
naming why it was refused and where it came from, so nothing about it is lost. A record
larger than the producer may write (librdkafka's ``message.max.bytes``, 1,000,000 bytes
by default; a compressed topic can hold larger ones) is dead-lettered without its bytes,
with ``x-dead-letter-value-bytes`` giving their size: they stay in the source topic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from consumer.alerting import EventTime
from consumer.alerting.facts import Facts
from consumer.codecs.json_codec import dumps, loads
from consumer.errors import EventError

DEAD_LETTER_REASON = "x-dead-letter-reason"
DEAD_LETTER_ERROR = "x-dead-letter-error"
# On a dead letter without the record's value: the value's size. It was larger than the
# producer may write, and stays in the source topic at the offset the headers name.
DEAD_LETTER_VALUE_BYTES = "x-dead-letter-value-bytes"
SOURCE_TOPIC = "x-source-topic"
SOURCE_PARTITION = "x-source-partition"
SOURCE_OFFSET = "x-source-offset"
SOURCE_TIMESTAMP = "x-source-timestamp"
# Reason codes beside the decoder's own (consumer.codecs.DECODE_REASONS).
INVALID_CANDIDATE = "invalid_candidate"
UNKNOWN_RULE = "unknown_rule"
# A match, or an alert, larger than the producer may write (``message.max.bytes``).
MATCH_TOO_LARGE = "match_too_large"
ALERT_TOO_LARGE = "alert_too_large"
_END_OF_HEADER = b"\n"

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class CandidateRecord:
    """A rule match on its way to the rule's window owner.

    ``value`` is the matched record's value and ``facts`` its event's facts; a
    candidate written before they travelled has the decoded ``event`` instead.
    """

    rule_uuid: str
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    facts: Facts | None = None
    value: bytes | None = None
    event: dict[str, Any] | None = None


def encode_candidates(candidates: Sequence[CandidateRecord]) -> bytes:
    """The matches-topic value of ``candidates``: one rule's, each with ``facts`` and
    ``value``."""
    if not candidates:
        raise ValueError("a matches record holds at least one candidate")
    rule = candidates[0].rule_uuid
    entries = []
    for candidate in candidates:
        facts, value = candidate.facts, candidate.value
        if facts is None or value is None:
            raise ValueError("a candidate is written with its facts and its record's value")
        if candidate.rule_uuid != rule:
            raise ValueError("a matches record holds the candidates of one rule")
        time = facts.time
        entries.append(
            {
                "source": {
                    "topic": candidate.topic,
                    "partition": candidate.partition,
                    "offset": candidate.offset,
                    "timestamp_ms": candidate.timestamp_ms,
                },
                "time": None if time is None else {"ms": time.ms, "source": time.source},
                "identity": facts.identity,
                "groups": facts.groups,
                "size": len(value),
            }
        )
    header = dumps({"rule": rule, "candidates": entries})
    return b"".join([header, _END_OF_HEADER, *(c.value or b"" for c in candidates)])


def decode_candidates(value: bytes | None) -> list[CandidateRecord]:
    """The candidates of a matches-topic value, in order; ``EventError`` when it is not
    one of ours."""
    data = value or b""
    end = data.find(_END_OF_HEADER)
    try:
        if end < 0:
            return [_legacy_candidate(loads(data))]
        header = loads(data[:end])
        rule, entries = header["rule"], header.get("candidates")
        if entries is None:  # one candidate, written before candidates were batched
            entries = [{**header, "size": len(data) - end - 1}]
        records, at = [], end + 1
        for entry in entries:
            size = entry["size"]
            if type(size) is not int or size <= 0:
                raise ValueError(f"a record size of {size!r}")
            records.append(_candidate(rule, entry, data[at : at + size]))
            at += size
    except (ValueError, TypeError, KeyError) as exc:
        raise EventError(f"not a candidate record: {exc}") from None
    if at != len(data) or not records:
        raise EventError("not a candidate record: its sizes do not add up to its records")
    return records


def _candidate(rule: Any, entry: dict[str, Any], value: bytes) -> CandidateRecord:
    """One candidate of a matches record: ``entry`` of its header, ``value`` its record."""
    source, time = entry["source"], entry["time"]
    facts = Facts(
        None if time is None else EventTime(time["ms"], time["source"]),
        entry["identity"],
        entry["groups"],
    )
    if not (
        isinstance(rule, str)
        and isinstance(facts.identity, str)
        and isinstance(facts.groups, (list, type(None)))
        and (
            facts.time is None
            or (type(facts.time.ms) is int and isinstance(facts.time.source, str))
        )
        and value
    ):
        raise TypeError("wrong field types")
    return CandidateRecord(
        rule_uuid=rule,
        topic=source["topic"],
        partition=source["partition"],
        offset=source["offset"],
        timestamp_ms=source.get("timestamp_ms"),
        facts=facts,
        value=value,
    )


def _legacy_candidate(data: Any) -> CandidateRecord:
    """A candidate as written before facts travelled with it: the decoded event inside."""
    source = data["source"]
    record = CandidateRecord(
        rule_uuid=data["rule"],
        topic=source["topic"],
        partition=source["partition"],
        offset=source["offset"],
        timestamp_ms=source.get("timestamp_ms"),
        event=data["event"],
    )
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
