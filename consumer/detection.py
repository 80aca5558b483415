"""Decide which rules an event matches: the compiled predicates of all loaded rules."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from consumer.kql import compile_filters, compile_query, known_fields
from consumer.rules import Rule

Predicate = Callable[[Mapping[str, Any]], bool]


def compile_rule(rule: Rule) -> Predicate:
    """The predicate of one rule: its KQL query and, when it has them, its filters."""
    query = compile_query(rule.query)
    filters = compile_filters(rule.filters)
    if filters is None:
        return query
    return lambda event: query(event) and filters(event)


def fields_read(rules: Sequence[Rule]) -> frozenset[str] | None:
    """Every field that matching the rules and alerting on their matches read of an
    event: the queries' fields, ``@timestamp`` and the rules' timestamp overrides,
    ``event.id`` and the suppression fields. None when a rule may read fields it does
    not name (a wildcard in a field name, a value without a field, query DSL filters).

    An event without a scalar ``event.id`` is identified by a hash of all of it: the
    caller reads such a matched event whole."""
    fields = {"@timestamp", "event.id"}
    for rule in rules:
        named = known_fields(rule.query)
        if named is None or rule.filters:
            return None
        fields |= named
        if rule.timestamp_override:
            fields.add(rule.timestamp_override)
        if rule.alert_suppression is not None:
            fields.update(rule.alert_suppression.group_by)
    return frozenset(fields)


class Detector:
    """The loaded rules, each compiled once to a predicate over a decoded event."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple(rules)
        self._compiled: tuple[tuple[Rule, Predicate], ...] = tuple(
            (rule, compile_rule(rule)) for rule in self.rules
        )

    def matching_rules(
        self, event: Mapping[str, Any], only: Sequence[int] | None = None
    ) -> list[Rule]:
        """The rules whose query matches ``event``, in load order.

        ``only``: indices of the rules to try (a prefilter's selection); default all.
        """
        if only is None:
            return [rule for rule, predicate in self._compiled if predicate(event)]
        compiled = self._compiled
        return [compiled[i][0] for i in only if compiled[i][1](event)]
