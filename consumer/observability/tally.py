"""What one batch did, counted in plain dicts and flushed to Prometheus once per batch.

The per-record path must stay a few dict operations: a prometheus-client ``inc()`` takes
a lock and a ``labels()`` look-up hashes the label values, so the member loop counts here
and ``Metrics.flush`` turns the counts into metric updates after the batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class BatchTally:
    """Counts of one batch; ``clear()`` reuses the object for the next batch."""

    # topic -> [records, bytes, skipped by the prefilter] of input records
    consumed: dict[str, list[int]] = field(default_factory=dict)
    # (topic, reason) -> input records that could not be decoded
    decode_failures: dict[tuple[str, str], int] = field(default_factory=dict)
    # reason -> records written to the dead-letter topic
    dead_letters: dict[str, int] = field(default_factory=dict)
    # rule_id -> input events the rule's query matched
    matches: dict[str, int] = field(default_factory=dict)
    # rule_id -> windows whose max_signals budget was hit in this batch
    windows_limited: dict[str, int] = field(default_factory=dict)
    # (event time ms or None, Kafka record time ms or None) of each alert produced
    alert_times: list[tuple[int | None, int | None]] = field(default_factory=list)
    # candidates given to the alerting cores (the cores' counters are drained when > 0)
    candidates: int = 0
    # the newest decoded event of the batch and its record's Kafka timestamp
    last_event: dict[str, Any] | None = None
    last_record_ms: int | None = None

    def clear(self) -> None:
        """Forget the batch."""
        self.consumed.clear()
        self.decode_failures.clear()
        self.dead_letters.clear()
        self.matches.clear()
        self.windows_limited.clear()
        self.alert_times.clear()
        self.candidates = 0
        self.last_event = None
        self.last_record_ms = None


def add(counts: dict[Any, int], key: Any, amount: int = 1) -> None:
    """``counts[key] += amount`` for a plain dict (rare paths; the hot loop inlines it)."""
    counts[key] = counts.get(key, 0) + amount
