"""The alerting core: rule matches in, alerts and rule-status records out.

Pure: no Kafka, no I/O, no wall clock except the injected ``clock``. The streaming
pipeline and the ``replay`` CLI call ``process`` once per matched event and publish what
it returns; they persist ``drain_state_changes()`` (a compacted changelog) with the same
transaction as the outputs, and rebuild with ``AlertingCore.restore``.

Per candidate, in this order (each step's time semantics live in its module):

1. event time (``event_time``), then the time policy against the rule's watermark and
   the clock (``windows.place``): late events are clamped to the watermark, future
   ones past the allowed skew to the clock;
2. the watermark moves forward; when it enters a new window, windows, identities and
   suppression groups that no on-time event can reach any more are dropped
   (``watermark - horizon``), and a final status record is written for each dropped
   window that cut candidates;
3. dedup (``dedup``): a duplicate is counted and dropped, it never uses budget;
4. suppression groups (``suppression``) or one alert per event, each new alert taking
   one unit of the window budget (``windows.WindowBudget``); the first cut in a window
   emits a ``partial failure`` status record with Elastic's max-signals wording.

Event time, identity and groups are the candidate's ``facts``, read from its event
where it was matched; the event itself is decoded only for an alert (``Candidate``).

For a deterministic replay inject a deterministic ``clock`` (for example the Kafka
record time): the clock stamps ``@timestamp`` and bounds future-dated events, so a wall
clock far ahead of replayed data never clamps them, but a clock behind them would.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from consumer.alerting.dedup import AlertedIdentities
from consumer.alerting.document import (
    DEFAULT_KIBANA_VERSION,
    AlertContext,
    SourceRef,
    build_alert,
    suppression_fields,
)
from consumer.alerting.event_time import SOURCE_CLOCK, to_iso
from consumer.alerting.facts import Facts, read_facts
from consumer.alerting.identity import alert_uuid, execution_uuid, instance_id
from consumer.alerting.state import AlertingState, InMemoryState, StateRecord
from consumer.alerting.suppression import accepts, group_expired, group_key
from consumer.alerting.windows import Placement, TimePolicy, WindowBudget, place
from consumer.rules.model import Rule

ALERT = "alert"
ALERT_UPDATE = "alert_update"
RULE_STATUS = "rule_status"
PARTIAL_FAILURE = "partial failure"
MAX_SIGNALS_WARNING = (
    "This rule reached the maximum alert limit for the rule execution. "
    "Some alerts were not created."
)
MAX_SIGNALS_WARNING_SUPPRESSION = (
    "This rule reached the maximum alert limit for the rule execution. "
    "Some alerts were not created or suppressed."
)
_WATERMARK = "watermark"


@dataclass(frozen=True, slots=True)
class Candidate:
    """A rule match: the rule, the event, and where the event came from.

    ``event`` is the decoded event, or a function that decodes it, which the core calls
    only to build an alert. ``facts`` are read from the event when not given.
    """

    rule: Rule
    event: dict[str, Any] | Callable[[], dict[str, Any]]
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    kafka_timestamp_ms: int | None = None
    facts: Facts | None = None

    def decoded_event(self) -> dict[str, Any]:
        """The event, decoded now if it was not yet."""
        event = self.event
        return event if isinstance(event, dict) else event()


@dataclass(frozen=True, slots=True)
class Output:
    """A record to publish: ``kind`` is ``alert``, ``alert_update`` or ``rule_status``.

    ``key`` is the Kafka key (the alert uuid for alerts and their updates, so a compacted
    topic keeps the latest version); ``value`` is a JSON-serialisable dict.
    """

    kind: str
    key: str
    value: dict[str, Any]


class UnreadableEvent(Exception):
    """A candidate's event, decoded only to build its alert, could not be decoded.

    ``outputs``: what the candidate caused before that (the status records of windows it
    closed), to be published all the same. The alert's unit of its window's budget
    stays spent.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.outputs: list[Output] = []


@dataclass
class RuleCounters:
    """What happened to one rule's candidates, for the run summary and metrics."""

    matched: int = 0
    alerts: int = 0
    duplicates: int = 0
    limited: int = 0
    late: int = 0
    clamped: int = 0
    suppressed: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dict."""
        return asdict(self)


class _RuleRuntime:
    """A rule's policy, state views and counters (no state of its own)."""

    def __init__(
        self,
        rule: Rule,
        state: AlertingState,
        horizon: timedelta | None,
        future_skew: timedelta | None,
    ) -> None:
        self.rule = rule
        self.policy = TimePolicy.for_rule(rule, horizon, future_skew)
        tag = quote(rule.uuid, safe="")
        self.meta_ns = f"m:{tag}"
        self.groups_ns = f"s:{tag}"
        self.budget = WindowBudget(state, f"w:{tag}", rule.max_signals)
        self.identities = AlertedIdentities(state, f"d:{tag}")
        suppression = rule.alert_suppression
        self.duration_ms = (
            int(suppression.duration.total_seconds() * 1000)
            if suppression is not None and suppression.duration is not None
            else None
        )
        self.warning = MAX_SIGNALS_WARNING_SUPPRESSION if suppression else MAX_SIGNALS_WARNING
        self.counters = RuleCounters()


class AlertingCore:
    """Turns candidates into alerts with Elastic's dedup, limit and suppression promises."""

    def __init__(
        self,
        rules: Iterable[Rule],
        *,
        state: AlertingState | None = None,
        clock: Callable[[], float] = time.time,
        space_id: str = "default",
        horizon: timedelta | None = None,
        future_skew: timedelta | None = None,
        kibana_version: str = DEFAULT_KIBANA_VERSION,
    ) -> None:
        self.state: AlertingState = state if state is not None else InMemoryState()
        self._clock = clock
        self.space_id = space_id
        self._horizon = horizon
        self._future_skew = future_skew
        self.kibana_version = kibana_version
        self._rules: dict[str, _RuleRuntime] = {}
        # Rule.uuid is derived (uuid5) on each access; candidates carry the same Rule
        # objects over and over, so look them up by identity first.
        self._by_object: dict[int, tuple[Rule, _RuleRuntime]] = {}
        for rule in rules:
            self._runtime(rule)

    @classmethod
    def restore(
        cls, records: Iterable[StateRecord], rules: Iterable[Rule], **options: Any
    ) -> AlertingCore:
        """A core whose state is rebuilt from change records (``options`` as ``__init__``)."""
        state = options.pop("state", None) or InMemoryState()
        state.apply(records)
        return cls(rules, state=state, **options)

    def drain_state_changes(self) -> list[StateRecord]:
        """State changes since the last call, for the changelog (one record per key)."""
        return self.state.drain_changes()

    @property
    def counters(self) -> dict[str, RuleCounters]:
        """Counters by rule uuid (since this core was built; not part of the state)."""
        return {uuid: rt.counters for uuid, rt in self._rules.items()}

    def summary(self) -> dict[str, dict[str, Any]]:
        """Counters by rule uuid with the rule's id and name, for printing."""
        return {
            uuid: {"rule_id": rt.rule.rule_id, "name": rt.rule.name, **rt.counters.as_dict()}
            for uuid, rt in self._rules.items()
        }

    def _runtime(self, rule: Rule) -> _RuleRuntime:
        cached = self._by_object.get(id(rule))
        if cached is not None and cached[0] is rule:
            return cached[1]
        runtime = self._rules.get(rule.uuid)
        if runtime is None:
            runtime = _RuleRuntime(rule, self.state, self._horizon, self._future_skew)
            self._rules[rule.uuid] = runtime
        self._by_object[id(rule)] = (rule, runtime)
        return runtime

    def process(self, candidate: Candidate) -> list[Output]:
        """Decide one candidate; return the alerts and status records it causes."""
        rt = self._runtime(candidate.rule)
        rt.counters.matched += 1
        now_ms = int(self._clock() * 1000)
        facts = candidate.facts or read_facts(
            rt.rule, candidate.decoded_event(), candidate.kafka_timestamp_ms
        )
        found = facts.time
        watermark = self.state.get(rt.meta_ns, _WATERMARK)
        placement = place(rt.policy, found.ms if found else None, watermark, now_ms)
        rt.counters.late += placement.late
        rt.counters.clamped += placement.clamped
        outputs: list[Output] = []

        new_watermark = (
            placement.effective_ms if watermark is None else max(watermark, placement.effective_ms)
        )
        if new_watermark != watermark:
            self.state.put(rt.meta_ns, _WATERMARK, new_watermark)
            if watermark is None or placement.window_start > rt.policy.window_start(watermark):
                outputs.extend(self._close_windows(rt, new_watermark, now_ms))

        identity = facts.identity
        if rt.identities.is_duplicate(identity, new_watermark, rt.policy.horizon_ms):
            rt.counters.duplicates += 1
            return outputs

        source = found.source if found else SOURCE_CLOCK
        try:
            if facts.groups is None:
                if self._admit(rt, placement, now_ms, outputs):
                    doc = self._build(rt, candidate, placement, identity, source, now_ms, None)
                    rt.identities.remember(identity, placement.effective_ms)
                    outputs.append(Output(ALERT, doc["kibana.alert.uuid"], doc))
                return outputs
            created = False
            for terms in facts.groups:
                created |= self._suppress(
                    rt, candidate, placement, identity, source, now_ms, terms, outputs
                )
        except UnreadableEvent as exc:
            exc.outputs = outputs
            raise
        if created:
            rt.identities.remember(identity, placement.effective_ms)
        return outputs

    def _admit(
        self, rt: _RuleRuntime, placement: Placement, now_ms: int, outputs: list[Output]
    ) -> bool:
        admission = rt.budget.admit(placement.window_start)
        if admission.admitted:
            rt.counters.alerts += 1
            return True
        rt.counters.limited += 1
        if admission.first_cut:
            outputs.append(
                self._status(rt, placement.window_start, admission.alerts, 1, now_ms, False)
            )
        return False

    def _suppress(
        self,
        rt: _RuleRuntime,
        candidate: Candidate,
        placement: Placement,
        identity: str,
        source: str,
        now_ms: int,
        terms: list[dict[str, Any]],
        outputs: list[Output],
    ) -> bool:
        """Fold the candidate into its group or open the group; True if an alert was made."""
        effective = placement.effective_ms
        instance = instance_id(terms, rt.rule.uuid, self.space_id)
        key = group_key(instance, placement.window_start, rt.duration_ms)
        group = self.state.get(rt.groups_ns, key)
        if group is not None and accepts(group, effective, rt.duration_ms):
            start, end = min(group["start"], effective), max(group["end"], effective)
            docs_count = group["docs_count"] + 1
            doc = copy.deepcopy(group["alert"])
            doc.update(suppression_fields(terms, instance, start, end, docs_count))
            doc["kibana.alert.last_detected"] = to_iso(now_ms)
            self.state.put(
                rt.groups_ns,
                key,
                {**group, "start": start, "end": end, "docs_count": docs_count, "alert": doc},
            )
            rt.counters.suppressed += 1
            outputs.append(Output(ALERT_UPDATE, doc["kibana.alert.uuid"], copy.deepcopy(doc)))
            return False
        if not self._admit(rt, placement, now_ms, outputs):
            return False
        doc = self._build(rt, candidate, placement, identity, source, now_ms, terms)
        doc.update(suppression_fields(terms, instance, effective, effective, 0))
        self.state.put(
            rt.groups_ns,
            key,
            {
                "anchor": effective,
                "window": placement.window_start,
                "start": effective,
                "end": effective,
                "docs_count": 0,
                "alert": doc,
            },
        )
        outputs.append(Output(ALERT, doc["kibana.alert.uuid"], copy.deepcopy(doc)))
        return True

    def _build(
        self,
        rt: _RuleRuntime,
        candidate: Candidate,
        placement: Placement,
        identity: str,
        source: str,
        now_ms: int,
        terms: list[dict[str, Any]] | None,
    ) -> dict[str, Any]:
        ctx = AlertContext(
            alert_uuid=alert_uuid(self.space_id, rt.rule.uuid, identity, terms),
            execution_uuid=execution_uuid(rt.rule.uuid, placement.window_start),
            now_ms=now_ms,
            effective_ms=placement.effective_ms,
            time_source=source,
            late=placement.late,
            clamped=placement.clamped,
            space_id=self.space_id,
            kibana_version=self.kibana_version,
        )
        ref = SourceRef(identity, candidate.topic, candidate.partition, candidate.offset)
        try:
            event = candidate.decoded_event()
        except Exception as exc:  # the decoder is the caller's; so are its errors
            raise UnreadableEvent(str(exc)) from exc
        return build_alert(rt.rule, event, ref, ctx)

    def _close_windows(self, rt: _RuleRuntime, watermark: int, now_ms: int) -> list[Output]:
        """Drop what no on-time event can reach (before ``watermark - horizon``)."""
        cutoff = watermark - rt.policy.horizon_ms
        outputs = [
            self._status(rt, start, entry["alerts"], entry["limited"], now_ms, True)
            for start, entry in rt.budget.close_before(cutoff, rt.policy.interval_ms)
            if entry["limited"]
        ]
        rt.identities.sweep(cutoff)
        for key, group in self.state.items(rt.groups_ns):
            if group_expired(group, cutoff, rt.policy.interval_ms, rt.duration_ms):
                self.state.delete(rt.groups_ns, key)
        return outputs

    def _status(
        self,
        rt: _RuleRuntime,
        window_start: int,
        alerts: int,
        limited: int,
        now_ms: int,
        final: bool,
    ) -> Output:
        """A rule-status record for one window; ``final`` when the window closes.

        Keyed by rule uuid and window start, so a compacted topic keeps the final counts.
        """
        end = rt.policy.window_end(window_start)
        value = {
            "@timestamp": to_iso(now_ms),
            "kibana.alert.rule.uuid": rt.rule.uuid,
            "kibana.alert.rule.rule_id": rt.rule.rule_id,
            "kibana.alert.rule.name": rt.rule.name,
            "kibana.alert.rule.execution.uuid": execution_uuid(rt.rule.uuid, window_start),
            "kibana.alert.rule.execution.status": PARTIAL_FAILURE,
            "message": rt.warning,
            "window": {"start": to_iso(window_start), "end": to_iso(end)},
            "alerts": alerts,
            "limited": limited,
            "final": final,
            "kibana.space_ids": [self.space_id],
        }
        return Output(RULE_STATUS, f"{rt.rule.uuid}/{window_start}", value)
