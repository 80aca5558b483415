"""Tell from a record's raw bytes which rules could match it, before decoding it.

Every KQL query exposes strings a matching event must contain (``required_literals``);
for each rule the most selective set of alternatives is its anchor. One scan of the
record finds the anchors present: only their rules (and rules with no anchor at all)
need to run, and a record with none is not decoded. Almost every endpoint event fails
the seed rule's ``EndpointSecurity.kext`` test, so almost none is decoded; with
hundreds of rules loaded, each record runs only the few rules whose anchors it holds.

Soundness (a rule left out cannot match the record) rests on how strings reach the bytes:

- Avro stores a string as its UTF-8 bytes, so the literal occurs verbatim;
- JSON stores it verbatim too, except where the writer escaped characters: ``"``, ``\\``
  and control characters always (searched for in their escaped form as well), ``/`` as
  ``\\/`` and any character as ``\\uXXXX`` at the writer's choice. A record containing
  ``\\u`` or ``\\/`` could hide a literal, so every rule runs on it;
- literals come only from case-sensitive exact or wildcard tests on keyword fields in
  positive positions (``consumer.kql.literals``), never from text, caseless, numeric
  or negated tests; a rule without any such literal runs on every record.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from ahocorasick_rs import BytesAhoCorasick

from consumer.kql import required_literals
from consumer.rules import Rule

# Up to this many needles a loop of `in` (memmem in C) beats building match lists.
_LOOP_LIMIT = 8

Selection = tuple[int, ...]


class Prefilter:
    """``select(value)``: indices of the rules that could match record ``value``.

    An empty tuple means no rule can match. ``may_match(value)`` is ``bool(select(value))``
    for callers that only need to know whether to decode.
    """

    def __init__(self, rules: Sequence[Rule], *, enabled: bool = True) -> None:
        self.all_rules: Selection = tuple(range(len(rules)))
        always: list[int] = []
        owners: dict[bytes, set[int]] = {}
        for index, rule in enumerate(rules):
            literals = required_literals(rule.query)
            if not literals:
                always.append(index)
                continue
            for needle in _without_superstrings(_needles(literals[0])):
                owners.setdefault(needle, set()).add(index)
        self.always: Selection = tuple(always)
        # Off when asked, or when no rule has an anchor: every rule runs on every record.
        self.enabled = enabled and len(always) < len(rules)
        self.needles = tuple(sorted(owners, key=len, reverse=True))
        self._owners = [tuple(sorted(owners[n])) for n in self.needles]
        self.select: Callable[[bytes], Selection] = (
            self._selector() if self.enabled else self._everything
        )

    def may_match(self, value: bytes) -> bool:
        """False only when no rule can match the record."""
        return bool(self.select(value))

    def _everything(self, _value: bytes) -> Selection:
        return self.all_rules

    def _selector(self) -> Callable[[bytes], Selection]:
        always, everything = self.always, self.all_rules
        # (needle, the selection when found): most records hold no needle at all, so
        # the common path is one scan per needle and one memchr, with nothing built.
        owned = [
            (needle, tuple(sorted({*always, *owners})))
            for needle, owners in zip(self.needles, self._owners, strict=True)
        ]
        if len(owned) <= _LOOP_LIMIT:

            def select(value: bytes) -> Selection:
                found: Selection | None = None
                for needle, chosen in owned:
                    if needle in value:
                        if found is not None:
                            return _union(found, chosen)
                        found = chosen
                if found is not None:
                    return found
                return everything if _may_hide(value) else always

            return select

        automaton = BytesAhoCorasick(list(self.needles))
        find = automaton.find_matches_as_indexes

        def select_many(value: bytes) -> Selection:
            if _may_hide(value):
                return everything
            hits = {i for i, _, _ in find(value, overlapping=True)}
            if not hits:
                return always
            selected = set(always)
            for i in hits:
                selected.update(owned[i][1])
            return tuple(sorted(selected))

        return select_many


def _may_hide(value: bytes) -> bool:
    """Whether a JSON escape could hide a literal: one memchr first, as most have none."""
    return b"\\" in value and (b"\\u" in value or b"\\/" in value)


def _union(a: Selection, b: Selection) -> Selection:
    return tuple(sorted({*a, *b}))


def _without_superstrings(needles: set[bytes]) -> set[bytes]:
    """One rule's needles, less any that contains another: finding the shorter suffices."""
    return {n for n in needles if not any(o != n and o in n for o in needles)}


def _needles(literals: frozenset[str]) -> set[bytes]:
    found: set[bytes] = set()
    for literal in literals:
        found.add(literal.encode("utf-8"))
        found.add(json.dumps(literal, ensure_ascii=False)[1:-1].encode("utf-8"))
    return found
