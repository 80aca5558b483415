"""KQL (Kibana Query Language) for the detection engine.

Parse a query once, compile it to a predicate over events decoded from JSON, and
tell the engine which fields it reads and which strings every match must contain.
Matching follows Elasticsearch with Kibana's translation of KQL over ECS mappings;
the modules document each choice (values, ranges, dates, fields).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from consumer.errors import KqlSyntaxError
from consumer.kql.compiler import compile_tree
from consumer.kql.filters import compile_filters
from consumer.kql.literals import (
    KEY,
    KEY_PART,
    PART,
    VALUE,
    Literal,
    fields_of,
    literals_of,
    named_fields,
    satisfiable,
)
from consumer.kql.parser import parse

# The engine asks several questions of each rule's query (its predicate, its literals
# for each encoding, its fields): each is parsed once. Trees are immutable.
_tree = lru_cache(maxsize=4096)(parse)

__all__ = [
    "KEY",
    "KEY_PART",
    "PART",
    "VALUE",
    "KqlSyntaxError",
    "Literal",
    "compile_filters",
    "compile_query",
    "known_fields",
    "may_match",
    "parse",
    "query_fields",
    "required_literals",
]


def compile_query(
    text: str, *, now: Callable[[], float] | None = None
) -> Callable[[Mapping[str, Any]], bool]:
    """Compile KQL ``text`` into a predicate over one event (nested dicts and lists).

    ``now`` returns the current time in epoch seconds for date math (``now-5m``); it is
    called when a date-math comparison runs, and defaults to :func:`time.time`.
    Raises :class:`KqlSyntaxError` when the query does not parse.
    """
    return compile_tree(_tree(text), now)


def required_literals(text: str, *, keys: bool = False) -> tuple[frozenset[Literal], ...]:
    """Strings a matching event must contain, as a conjunction of alternatives.

    For each returned set, every event the query matches contains one of the set's
    literals, each as its kind says: a string value equal to it (``VALUE``), one
    containing it (``PART``) or, with ``keys``, a key ending in it (``KEY``) or holding
    it (``KEY_PART``, for ``field:*``). Only positive tests contribute, values only from
    exact or wildcard tests on case-sensitive keyword-like fields; the most selective
    set comes first. Empty: nothing known.
    """
    return literals_of(_tree(text), keys=keys)


def may_match(text: str, field_present: Callable[[str], bool]) -> bool:
    """Whether the query can match an event holding only the fields ``field_present``
    allows (it is given full dotted paths): false when every match needs a field it
    rules out, such as one an Avro reader schema has no place for."""
    return satisfiable(_tree(text), field_present)


def query_fields(text: str) -> frozenset[str]:
    """The field names the query reads (nested sub-fields as full dotted paths)."""
    return fields_of(_tree(text))


def known_fields(text: str) -> frozenset[str] | None:
    """``query_fields``, or None when the query may read fields it does not name (a
    wildcard in a field name, a value without a field)."""
    return named_fields(_tree(text))
