"""Alerting windows, the time policy, and the per-window ``max_signals`` budget.

Windows. Each rule's event time is cut into tumbling windows of the rule's ``interval``,
aligned to the Unix epoch and half-open: ``[k * interval, (k + 1) * interval)``. Every
instant belongs to exactly one window; a window stands in for one Kibana execution.

Watermark. Per rule, the newest effective event time seen so far. The horizon (default
the rule's look-back, ``from``..``to``, 9m for the seed rule) is the reach of dedup and
of out-of-order acceptance.

Time policy, applied to every candidate before anything else (``place``):

1. Future-dated: an event time more than ``future_skew`` (default one interval) ahead of
   the injected clock is clamped to the clock's now and marked ``clamped``. So one absurd
   timestamp cannot drag the watermark into the future and make everything else late;
   the watermark never passes ``clock + future_skew``.
2. Late: an event time strictly older than ``watermark - horizon`` is clamped to the
   watermark and marked ``late``: it lands in the watermark's window and uses that
   window's budget, as Kibana's ingest-time override picks a late event up in the next
   run. A late event is never dropped for being late, and can never open a window of
   its own, so it cannot inflate the budget. Out-of-order events within the horizon keep
   their own time and window.
3. No time at all (no override, ``@timestamp`` or Kafka timestamp): the clock's now,
   marked ``clamped``.

Window closing. A window whose end is at or before ``watermark - horizon`` can receive no
more events (on-time events are newer, late ones go to the watermark's window), so its
budget is dropped from state when the watermark crosses into a new window.

Budget. At most ``max_signals`` new alerts per rule and window, first come first served
in arrival order, emitted at once. Kibana instead sorts one run's hits by time and keeps
the earliest; with more than ``max_signals`` candidates in a window arriving out of time
order, the chosen set can differ. Left-over candidates are counted, not stored, and not
retried (Kibana retries them only if a later overlapping run still covers them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from consumer.alerting.state import AlertingState
from consumer.rules.model import Rule


@dataclass(frozen=True, slots=True)
class TimePolicy:
    """One rule's window width, horizon and allowed future skew, in milliseconds."""

    interval_ms: int
    horizon_ms: int
    future_skew_ms: int

    @classmethod
    def for_rule(
        cls, rule: Rule, horizon: timedelta | None = None, future_skew: timedelta | None = None
    ) -> TimePolicy:
        """The policy for ``rule``: horizon defaults to its look-back, skew to one interval."""
        interval = rule.interval_span
        return cls(
            interval_ms=_ms(interval),
            horizon_ms=_ms(horizon if horizon is not None else rule.lookback),
            future_skew_ms=_ms(future_skew if future_skew is not None else interval),
        )

    def window_start(self, ms: int) -> int:
        """Start of the window holding ``ms`` (floor to a multiple of the interval)."""
        return ms - ms % self.interval_ms

    def window_end(self, start_ms: int) -> int:
        """Exclusive end of the window starting at ``start_ms``."""
        return start_ms + self.interval_ms


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a candidate falls in time after the time policy."""

    event_ms: int | None
    effective_ms: int
    window_start: int
    late: bool
    clamped: bool


def place(
    policy: TimePolicy, event_ms: int | None, watermark: int | None, now_ms: int
) -> Placement:
    """Apply the time policy (module docstring) to one candidate's event time."""
    clamped = False
    if event_ms is None or event_ms > now_ms + policy.future_skew_ms:
        effective, clamped = now_ms, True
    else:
        effective = event_ms
    late = False
    if watermark is not None and effective < watermark - policy.horizon_ms:
        effective, late = watermark, True
    return Placement(event_ms, effective, policy.window_start(effective), late, clamped)


@dataclass(frozen=True, slots=True)
class Admission:
    """The budget's answer for one would-be alert."""

    admitted: bool
    alerts: int
    limited: int
    # True only for the first candidate cut in this window: the moment to warn.
    first_cut: bool


class WindowBudget:
    """Per-rule, per-window alert counts held in the state (namespace ``w:<rule>``)."""

    def __init__(self, state: AlertingState, namespace: str, max_signals: int) -> None:
        self._state = state
        self._namespace = namespace
        self._max = max_signals

    def admit(self, window_start: int) -> Admission:
        """Take one unit of the window's budget, or count the candidate as limited."""
        key = str(window_start)
        entry = self._state.get(self._namespace, key) or {"alerts": 0, "limited": 0}
        if entry["alerts"] < self._max:
            entry = {"alerts": entry["alerts"] + 1, "limited": entry["limited"]}
            self._state.put(self._namespace, key, entry)
            return Admission(True, entry["alerts"], entry["limited"], False)
        entry = {"alerts": entry["alerts"], "limited": entry["limited"] + 1}
        self._state.put(self._namespace, key, entry)
        return Admission(False, entry["alerts"], entry["limited"], entry["limited"] == 1)

    def close_before(self, cutoff_ms: int, interval_ms: int) -> list[tuple[int, dict[str, int]]]:
        """Drop windows ending at or before ``cutoff_ms``; return them, oldest first."""
        closed = []
        for key, entry in self._state.items(self._namespace):
            start = int(key)
            if start + interval_ms <= cutoff_ms:
                self._state.delete(self._namespace, key)
                closed.append((start, entry))
        return sorted(closed)


def _ms(span: timedelta) -> int:
    return int(span.total_seconds() * 1000)
