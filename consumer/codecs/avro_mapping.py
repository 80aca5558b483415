"""Map Avro records to ECS event dicts and back, compiled once per schema.

The mapping, written down once:

- A field's ECS key is its Avro name, unless the field carries ``"ecs_name"``: Avro
  names cannot hold ``@`` or ``.``, so ``{"name": "timestamp", "ecs_name": "@timestamp"}``
  stands for ECS ``@timestamp``.
- ECS objects are nested Avro records (``process.parent.pid`` is field ``pid`` of record
  ``ParentProcess`` in field ``parent`` of record ``Process``).
- ``null`` means "absent": decoding drops null fields, and a record left with no fields
  is dropped too, so a decoded event equals the JSON form of the same event.
- Encoding reads nested and dotted keys alike (``{"process.name": ...}``); an ECS array
  field given a single value gets a one-element array, as Elasticsearch would index it.

Both directions are compiled into closures over the schema (habit 1): the per-record
path is dict lookups and calls, never a walk of the schema.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from consumer.codecs.errors import EncodeError, SchemaError

Convert = Callable[[Any], Any]
# (value, path, unknown-field sink) -> Avro datum
Encode = Callable[[Any, str, list[str]], Any]

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})


def fullname(name: str, namespace: str | None) -> str:
    """The full name of a named type written as ``name`` inside ``namespace``."""
    return name if "." in name or not namespace else f"{namespace}.{name}"


def named_type(schema: Any, namespace: str | None) -> tuple[str, str | None] | None:
    """(full name, namespace for nested names) of a named type definition, else None."""
    if isinstance(schema, dict) and schema.get("type") in ("record", "error", "enum", "fixed"):
        full = fullname(schema["name"], schema.get("namespace", namespace))
        return full, full.rpartition(".")[0] or None
    return None


class _Compiler:
    """Walks one schema once; named types are compiled once and shared by reference."""

    def __init__(self) -> None:
        self.decoders: dict[str, Convert | None] = {}
        self.encoders: dict[str, Encode] = {}
        self.kinds: dict[str, type] = {}

    # -- decoding: Avro datum -> ECS value -------------------------------------------
    def decoder(self, schema: Any, namespace: str | None) -> Convert | None:
        """A converter for values of ``schema``, or None when they pass through as is."""
        if isinstance(schema, str):
            if schema in PRIMITIVES:
                return None
            full = fullname(schema, namespace)
            if full not in self.decoders:
                raise SchemaError(f"unknown Avro type {schema!r}")
            return self.decoders[full]
        if isinstance(schema, list):
            return self._union_decoder(schema, namespace)
        kind = schema["type"]
        if kind in ("record", "error"):
            return self._record_decoder(schema, namespace)
        if kind == "array":
            item = self.decoder(schema["items"], namespace)
            return None if item is None else (lambda v: [item(x) for x in v])
        if kind == "map":
            val = self.decoder(schema["values"], namespace)
            return None if val is None else (lambda v: {k: val(x) for k, x in v.items()})
        named = named_type(schema, namespace)
        if named:
            self.decoders[named[0]] = None
        return None if kind in ("enum", "fixed") else self.decoder(kind, namespace)

    def _union_decoder(self, branches: list[Any], namespace: str | None) -> Convert | None:
        by_kind = self._by_kind(branches, namespace, self.decoder)
        if not by_kind:
            return None
        # fastavro hands back dicts for records and maps, lists for arrays; anything else
        # (strings, numbers, None) passes through.
        return lambda v: c(v) if (c := by_kind.get(type(v))) is not None else v

    def _by_kind(self, branches: list[Any], namespace: str | None, compile_one: Any) -> dict:
        """The converting branches of a union by the Python type of their values."""
        by_kind: dict[type, Any] = {}
        for branch in branches:
            convert = compile_one(branch, namespace)
            if convert is None:
                continue
            kind = self._kind(branch, namespace)
            if kind in by_kind:
                raise SchemaError("a union may hold one record or map and one array at most")
            by_kind[kind] = convert
        return by_kind

    def _kind(self, schema: Any, namespace: str | None) -> type:
        if isinstance(schema, str):
            return self.kinds.get(fullname(schema, namespace), dict)
        if isinstance(schema, dict) and schema.get("type") == "array":
            return list
        return dict

    def _record_decoder(self, schema: dict[str, Any], namespace: str | None) -> Convert:
        full, inner = named_type(schema, namespace)  # type: ignore[misc]
        fields: list[tuple[str, str, Convert | None]] = []

        def convert(record: dict[str, Any]) -> dict[str, Any] | None:
            out: dict[str, Any] = {}
            for avro_name, ecs_name, sub in fields:
                value = record.get(avro_name)
                if value is None:
                    continue
                if sub is not None:
                    value = sub(value)
                    if value is None:
                        continue
                out[ecs_name] = value
            return out or None

        self.kinds[full] = dict
        self.decoders[full] = convert  # before the fields, so recursive types resolve
        for field in schema["fields"]:
            sub = self.decoder(field["type"], inner)
            fields.append((field["name"], field.get("ecs_name", field["name"]), sub))
        return convert

    # -- encoding: ECS value -> Avro datum -------------------------------------------
    def encoder(self, schema: Any, namespace: str | None) -> Encode | None:
        """An encoder for ECS values of ``schema``, or None when they pass through as is."""
        if isinstance(schema, str):
            if schema in PRIMITIVES:
                return None
            return self.encoders.get(fullname(schema, namespace))
        if isinstance(schema, list):
            return self._union_encoder(schema, namespace)
        kind = schema["type"]
        if kind in ("record", "error"):
            return self._record_encoder(schema, namespace)
        if kind == "array":
            item = self.encoder(schema["items"], namespace)

            def array(value: Any, path: str, unknown: list[str]) -> Any:
                items = value if isinstance(value, list | tuple) else [value]
                return list(items) if item is None else [item(x, path, unknown) for x in items]

            return array
        if kind == "map":
            val = self.encoder(schema["values"], namespace)
            if val is None:
                return None
            return lambda v, p, u: {k: val(x, f"{p}.{k}", u) for k, x in v.items()}
        return None if kind in ("enum", "fixed") else self.encoder(kind, namespace)

    def _union_encoder(self, branches: list[Any], namespace: str | None) -> Encode | None:
        by_kind = self._by_kind(branches, namespace, self.encoder)
        if not by_kind:
            return None
        scalar_branch = any(isinstance(b, str) and b in PRIMITIVES - {"null"} for b in branches)
        # A single value for an array-only field becomes a one-element array (see above).
        lone = None if scalar_branch else by_kind.get(list)

        def encode(value: Any, path: str, unknown: list[str]) -> Any:
            chosen = by_kind.get(type(value), lone)
            return value if chosen is None else chosen(value, path, unknown)

        return encode

    def _record_encoder(self, schema: dict[str, Any], namespace: str | None) -> Encode:
        full, inner = named_type(schema, namespace)  # type: ignore[misc]
        fields: list[tuple[str, str, Encode | None]] = []
        known: set[str] = set()

        def encode(value: Any, path: str, unknown: list[str]) -> dict[str, Any]:
            if not isinstance(value, dict):
                where = path.rstrip(".") or "event"
                raise EncodeError(f"{where} must be an object, not {value!r:.60}")
            out: dict[str, Any] = {}
            for avro_name, ecs_name, sub in fields:
                item = value.get(ecs_name)
                if item is not None and sub is not None:
                    item = sub(item, f"{path}{ecs_name}.", unknown)
                out[avro_name] = item
            unknown.extend(f"{path}{key}" for key in value.keys() - known)
            return out

        self.encoders[full] = encode
        for field in schema["fields"]:
            ecs_name = field.get("ecs_name", field["name"])
            known.add(ecs_name)
            fields.append((field["name"], ecs_name, self.encoder(field["type"], inner)))
        return encode


def compile_mapping(schema: dict[str, Any]) -> tuple[Convert, Encode]:
    """(record -> ECS event, ECS event -> record) functions for a top-level record schema."""
    if not isinstance(schema, dict) or schema.get("type") != "record":
        raise SchemaError("an event schema must be a record")
    compiler = _Compiler()
    decode = compiler.decoder(schema, None)
    encode = compiler.encoder(schema, None)
    assert decode is not None and encode is not None  # records always convert
    return decode, encode


class FieldPresence:
    """``presence(path)``: whether an event decoded with a top-level record schema can
    hold the field at ``path`` (a full dotted ECS path).

    It can when ``path`` is a field of one of the schema's records, a record itself
    (``field:*`` holds for an object), or lies under a map (any key) or under a
    recursive record (any depth). Fields are named as decoding names them
    (``ecs_name``); arrays hold their items' fields.
    """

    def __init__(self, schema: dict[str, Any]) -> None:
        self._paths: set[str] = set()
        self._open: set[str] = set()  # prefixes under which any field may exist
        self._named: dict[str, tuple[Any, str | None]] = {}
        self._walk(schema, "", None, frozenset())

    def __call__(self, path: str) -> bool:
        if path in self._paths:
            return True
        return any(path == p or path.startswith(f"{p}.") for p in self._open)

    def _walk(self, node: Any, path: str, namespace: str | None, within: frozenset[str]) -> None:
        if isinstance(node, str):
            found = self._named.get(fullname(node, namespace))
            if found is not None:
                self._walk(found[0], path, found[1], within)
            return
        if isinstance(node, list):
            for branch in node:
                self._walk(branch, path, namespace, within)
            return
        kind = node["type"]
        named = named_type(node, namespace)
        if named is not None:
            self._named[named[0]] = (node, namespace)
        if kind in ("record", "error"):
            full, inner = named  # type: ignore[misc]
            if full in within:  # recursive: a field may nest it to any depth
                self._open.add(path)
                return
            for field in node["fields"]:
                name = field.get("ecs_name", field["name"])
                sub = f"{path}.{name}" if path else name
                self._paths.add(sub)
                self._walk(field["type"], sub, inner, within | {full})
        elif kind == "array":
            self._walk(node["items"], path, namespace, within)
        elif kind == "map":
            self._open.add(path)
        elif kind not in ("enum", "fixed"):
            self._walk(kind, path, namespace, within)
