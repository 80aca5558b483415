"""Field types, as Elasticsearch mappings for ECS would give them.

The table is data: ``ecs_field_types.csv`` is generated from ECS's ``ecs_flat.yml``
(multi-fields such as ``process.name.text`` are rows of their own) and
``extra_field_types.csv`` adds the few integration fields that are not keywords.

Two multi-field suffixes work on any field, as in the Elastic Endpoint mappings:
``<field>.text`` reads ``<field>`` analysed and ``<field>.caseless`` reads it lowercased.
A field in neither table is a keyword (exact, case-sensitive), except that ranges follow
dynamic mapping (see :mod:`consumer.kql.values`).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

KEYWORD = "keyword"
TEXT = "text"
CASELESS = "caseless"
NUMBER = "number"
DATE = "date"
BOOLEAN = "boolean"
IP = "ip"
UNKNOWN = "unknown"

_KINDS = {
    "keyword": KEYWORD,
    "constant_keyword": KEYWORD,
    "wildcard": KEYWORD,
    "flattened": KEYWORD,
    "text": TEXT,
    "match_only_text": TEXT,
    "long": NUMBER,
    "integer": NUMBER,
    "short": NUMBER,
    "byte": NUMBER,
    "double": NUMBER,
    "float": NUMBER,
    "half_float": NUMBER,
    "scaled_float": NUMBER,
    "unsigned_long": NUMBER,
    "date": DATE,
    "date_nanos": DATE,
    "boolean": BOOLEAN,
    "ip": IP,
}


@dataclass(frozen=True, slots=True)
class FieldType:
    """How a field is matched.

    ``path`` is the field whose values are read: for a multi-field such as
    ``process.name.text`` it is ``process.name``. ``ignore_above`` is the keyword
    length limit beyond which Elasticsearch does not index a value (``None``: no limit).
    """

    kind: str
    path: str
    ignore_above: int | None = None


def _load(name: str) -> dict[str, tuple[str, int | None]]:
    rows: dict[str, tuple[str, int | None]] = {}
    with (Path(__file__).parent / name).open(encoding="utf-8", newline="") as fh:
        lines = (line for line in fh if not line.startswith("#"))
        for row in csv.DictReader(lines):
            limit = row["ignore_above"].strip()
            rows[row["field"]] = (row["type"], int(limit) if limit else None)
    return rows


@lru_cache(maxsize=1)
def _table() -> dict[str, tuple[str, int | None]]:
    table = _load("ecs_field_types.csv")
    table.update(_load("extra_field_types.csv"))
    return table


@lru_cache(maxsize=8192)
def field_type(name: str) -> FieldType:
    """The type of field ``name`` (a full dotted path)."""
    table = _table()
    row = table.get(name)
    base, _, suffix = name.rpartition(".")
    if row is not None:
        es_type, limit = row
        if suffix == "text" and es_type in ("text", "match_only_text") and base in table:
            return FieldType(TEXT, base)
        return FieldType(_KINDS.get(es_type, KEYWORD), name, limit)
    if base and suffix == "text":
        return FieldType(TEXT, base)
    if base and suffix == "caseless":
        return FieldType(CASELESS, base, table.get(base, (None, None))[1])
    return FieldType(UNKNOWN, name)


@lru_cache(maxsize=1)
def _last_names() -> dict[str, int]:
    counts: dict[str, int] = {}
    for name in _table():
        last = name.rpartition(".")[2]
        counts[last] = counts.get(last, 0) + 1
    return counts


def fields_named(last: str) -> int:
    """How many known fields have ``last`` as the last part of their name (``name``:
    hundreds; ``script_block_text``: one)."""
    return _last_names().get(last, 0)
