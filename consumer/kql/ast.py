"""The KQL syntax tree: small frozen dataclasses, built by :mod:`consumer.kql.parser`.

Value groups (``f:(a or not b)``) are kept as written (:class:`ValueOr`, :class:`ValueAnd`,
:class:`ValueNot`); the compiler distributes the field over them, which is what Kibana's
translation to Elasticsearch does.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Literal:
    """A value compared as written.

    ``value`` is the decoded text, or ``True``/``False``/``None`` for the unquoted keywords
    ``true``, ``false`` and ``null``. ``quoted`` matters for analysed (text) fields, where a
    quoted value is a phrase and an unquoted one any of its words.
    """

    value: str | bool | None
    quoted: bool = False

    @property
    def text(self) -> str:
        """The value as the string Elasticsearch would receive."""
        if self.value is None:
            return "null"
        if isinstance(self.value, bool):
            return "true" if self.value else "false"
        return self.value


@dataclass(frozen=True, slots=True)
class Wildcard:
    """An unquoted value with unescaped ``*``: ``segments`` are the literal runs between stars."""

    segments: tuple[str, ...]

    @property
    def is_exists(self) -> bool:
        """``field:*`` means "the field has a value"."""
        return all(s == "" for s in self.segments)


Value = Literal | Wildcard


@dataclass(frozen=True, slots=True)
class Field:
    """A field name; ``pattern`` holds the segments when the name contains unescaped ``*``."""

    name: str
    pattern: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class ValueOr:
    items: tuple[ValueExpr, ...]


@dataclass(frozen=True, slots=True)
class ValueAnd:
    items: tuple[ValueExpr, ...]


@dataclass(frozen=True, slots=True)
class ValueNot:
    item: ValueExpr


ValueExpr = Literal | Wildcard | ValueOr | ValueAnd | ValueNot


@dataclass(frozen=True, slots=True)
class MatchAll:
    """The empty query: every event matches."""


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Query, ...]


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Query, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Query


@dataclass(frozen=True, slots=True)
class FieldMatch:
    """``field:value`` (or a value group); ``field:*`` is a :class:`Wildcard` with ``is_exists``."""

    field: Field
    value: ValueExpr


@dataclass(frozen=True, slots=True)
class Range:
    """``field < value`` and friends; ``op`` is one of ``<``, ``<=``, ``>``, ``>=``."""

    field: Field
    op: str
    value: Literal


@dataclass(frozen=True, slots=True)
class Nested:
    """``field:{ query }``: ``query`` must hold inside one object at ``field``."""

    field: Field
    query: Query


@dataclass(frozen=True, slots=True)
class FreeText:
    """A value without a field: matches when any field of the event matches it."""

    value: Value


Query = MatchAll | Or | And | Not | FieldMatch | Range | Nested | FreeText
