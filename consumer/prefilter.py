"""Skip records no rule can match, from their raw bytes, before decoding them.

Every KQL query exposes strings a matching event must contain (``required_literals``);
for each rule the most selective set of alternatives is kept, and a record is decoded
only when one of those strings occurs in its bytes. Almost every endpoint event fails
the seed rule's ``kextunload`` test, so almost none is decoded.

Soundness (a skipped record can match no rule) rests on how strings reach the bytes:

- Avro stores a string as its UTF-8 bytes, so the literal occurs verbatim;
- JSON stores it verbatim too, except where the writer escaped characters: ``"``, ``\\``
  and control characters always (searched for in their escaped form as well), ``/`` as
  ``\\/`` and any character as ``\\uXXXX`` at the writer's choice. A record containing
  ``\\u`` or ``\\/`` could hide a literal, so it is always decoded;
- literals come only from case-sensitive exact or wildcard tests on keyword fields in
  positive positions (``consumer.kql.literals``), never from text, caseless, numeric
  or negated tests; a rule without any such literal turns the prefilter off.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence

from consumer.kql import required_literals
from consumer.rules import Rule

# Up to this many needles a loop of `in` (memmem in C) beats one regex alternation.
_LOOP_LIMIT = 8


class Prefilter:
    """``may_match(value)``: False only when no rule can match the record ``value``."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        anchors: set[str] = set()
        # No rules: nothing is known, so every record is decoded (the prefilter is off).
        self.enabled = bool(rules)
        for rule in rules:
            literals = required_literals(rule.query)
            if not literals:
                self.enabled = False
                break
            anchors |= literals[0]
        self.needles = _without_superstrings(_needles(anchors))
        self.may_match: Callable[[bytes], bool] = self._scan() if self.enabled else _always

    def _scan(self) -> Callable[[bytes], bool]:
        needles = self.needles
        if len(needles) <= _LOOP_LIMIT:

            def found(value: bytes) -> bool:
                # A plain loop: any() over a generator costs more than the scans here.
                for needle in needles:  # noqa: SIM110
                    if needle in value:
                        return True
                return False

        else:
            found = re.compile(b"|".join(re.escape(n) for n in needles)).search  # type: ignore[assignment]

        def may_match(value: bytes) -> bool:
            if found(value):
                return True
            # One memchr for a backslash first: most records have none, and only an
            # escape can hide a literal.
            return b"\\" in value and (b"\\u" in value or b"\\/" in value)

        return may_match


def _needles(literals: set[str]) -> set[bytes]:
    found: set[bytes] = set()
    for literal in literals:
        found.add(literal.encode("utf-8"))
        found.add(json.dumps(literal, ensure_ascii=False)[1:-1].encode("utf-8"))
    return found


def _without_superstrings(needles: set[bytes]) -> tuple[bytes, ...]:
    """The needles, less any that contains another: finding the shorter one suffices."""
    kept = [n for n in needles if not any(o != n and o in n for o in needles)]
    return tuple(sorted(kept, key=len, reverse=True))


def _always(_value: bytes) -> bool:
    return True
