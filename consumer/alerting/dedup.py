"""One alert per source event per rule: the memory of alerted identities.

An entry maps an event identity to the effective event time of the candidate that made
its alert (namespace ``d:<rule>``). A candidate is a duplicate when its identity has an
entry whose time is at or after ``watermark - horizon``; the comparison is explicit, so a
decision never depends on when expired entries were swept. Entries older than the
horizon are swept when the rule's watermark enters a new window.

Only identities that produced an alert are remembered (at most ``max_signals`` per
window), never candidates that were cut by the budget or folded into a suppression
group, so memory does not grow with input volume.

Past the horizon, a re-delivered event is treated as new and, if the time policy lets it
through (it will be late, so clamped into the current window), alerted again with the
same deterministic alert id: idempotent downstream (ES bulk ``create`` answers 409, a
compacted alerts topic keeps one record per key).
"""

from __future__ import annotations

from consumer.alerting.state import AlertingState


class AlertedIdentities:
    """The dedup memory of one rule."""

    def __init__(self, state: AlertingState, namespace: str) -> None:
        self._state = state
        self._namespace = namespace

    def is_duplicate(self, identity: str, watermark: int, horizon_ms: int) -> bool:
        """True if ``identity`` was alerted at or after ``watermark - horizon_ms``."""
        alerted_at = self._state.get(self._namespace, identity)
        return alerted_at is not None and alerted_at >= watermark - horizon_ms

    def remember(self, identity: str, effective_ms: int) -> None:
        """Record that ``identity`` produced an alert at effective time ``effective_ms``."""
        self._state.put(self._namespace, identity, effective_ms)

    def sweep(self, cutoff_ms: int) -> int:
        """Forget identities alerted before ``cutoff_ms``; return how many."""
        expired = [key for key, at in self._state.items(self._namespace) if at < cutoff_ms]
        for key in expired:
            self._state.delete(self._namespace, key)
        return len(expired)
