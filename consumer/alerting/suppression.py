"""Alert suppression for query rules: one alert per group of ``group_by`` values.

Groups (semantics notes §3.3):

- ``terms`` is ``[{"field": f, "value": v}, ...]`` in ``group_by`` order, ``v`` a single
  value or ``None`` for a missing field. A multi-valued field yields one group per value
  (several fields: one group per combination), as Kibana's composite aggregation does.
- ``missing_fields_strategy``: ``suppress`` puts events missing a field in the group
  whose value is ``None``; ``doNotSuppress`` alerts on such events one by one, like an
  unsuppressed rule (same dedup and budget).
- The group's first candidate makes the alert (consuming one unit of the window budget);
  every later one in the group adds 1 to ``kibana.alert.suppression.docs_count``, moves
  ``suppression.start``/``end`` to the min/max effective event time, sets
  ``kibana.alert.last_detected`` to the clock, and is emitted as an update record with
  the same alert id. Updates never consume budget.

Group lifetime in event time:

- without ``duration``: per window, the streaming analogue of Kibana's per-execution
  mode. A match in another window starts a new group (new alert).
- with ``duration``: the group is anchored at its first candidate's effective time and
  takes every match with effective time before ``anchor + duration`` (out-of-order ones
  included); a match at or after that starts a new group that replaces it. Kibana also
  ends a group when a user closes its alert; the stream cannot see that, so a group
  lives its full duration.

A group is dropped from state once no on-time event can join it any more (its window,
or ``anchor + duration``, ends at or before ``watermark - horizon``).

Known difference: identities folded into a group are not remembered (that would make
memory grow with input), so the same non-first event delivered twice counts twice in
``docs_count``; the group's first event is remembered and a redelivery of it is a
duplicate.
"""

from __future__ import annotations

import itertools
from typing import Any

from consumer.alerting.fields import lookup
from consumer.rules.model import AlertSuppression


def group_terms(
    event: dict[str, Any], suppression: AlertSuppression
) -> list[list[dict[str, Any]]] | None:
    """The groups the event belongs to, or ``None`` to alert on it unsuppressed."""
    per_field: list[list[Any]] = []
    for field in suppression.group_by:
        values = _distinct(lookup(event, field))
        if not values:
            if suppression.missing_fields_strategy == "doNotSuppress":
                return None
            values = [None]
        per_field.append(values)
    return [
        [{"field": f, "value": v} for f, v in zip(suppression.group_by, combo, strict=True)]
        for combo in itertools.product(*per_field)
    ]


def _distinct(values: list[Any]) -> list[Any]:
    seen: list[Any] = []
    for value in values:
        if isinstance(value, dict):
            continue  # an object is not a groupable value (terms need keywords/numbers)
        if value not in seen:
            seen.append(value)
    return seen


def group_key(instance: str, window_start: int, duration_ms: int | None) -> str:
    """State key of a group: the instance id, plus the window in per-window mode."""
    return instance if duration_ms is not None else f"{instance}@{window_start}"


def accepts(group: dict[str, Any], effective_ms: int, duration_ms: int | None) -> bool:
    """Whether an existing group takes a match at ``effective_ms`` (per-window: always)."""
    return duration_ms is None or effective_ms < group["anchor"] + duration_ms


def group_expired(
    group: dict[str, Any], cutoff_ms: int, interval_ms: int, duration_ms: int | None
) -> bool:
    """Whether no on-time match can join the group any more (``cutoff = wm - horizon``)."""
    if duration_ms is None:
        return group["window"] + interval_ms <= cutoff_ms
    return group["anchor"] + duration_ms <= cutoff_ms
