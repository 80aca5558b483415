"""Read Avro records of one schema straight into ECS events, for the common case only.

Why not fastavro alone: it reads a record field by field through a file object and
returns a dict that ``avro_mapping`` then walks again, to drop nulls and apply the ECS
names: ~65 us for our ~1 KB process event, paid by every record a rule may match. This
module compiles a schema once into Python source, one function per record type, that
reads the bytes in place and builds the ECS event in the same pass, with the common
encodings (one-byte union tags and lengths) inline: ~37 us. Source rather than closures
(habit 1 of STYLE.md) because a closure costs a call per field, and an event has ~150.

It is only ever used where it gives fastavro's answer exactly:

- ``compile_reader`` returns None for a schema it does not cover (enums, fixed, logical
  types, a union with several record, map or array branches): such schemas keep fastavro.
- It reads with the writer schema equal to the reader schema; the codec uses fastavro for
  schema resolution.
- Anything it is not sure of raises one of ``NOT_READ``: a truncated record, bytes left
  over, invalid UTF-8, a union tag or boolean byte out of range, a negative length, a
  varint longer than 64 bits. The codec then decodes that record with fastavro and the
  mapping, which give the exact event or error. So a record read here is one fastavro
  reads the same; ``tests/unit/codecs/test_avro_reader.py`` checks that on random
  schemas, data and corrupted bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from itertools import count
from typing import Any

from consumer.codecs.avro_mapping import PRIMITIVES, fullname, named_type

# (record bytes, offset of the Avro body) -> ECS event
ReadEvent = Callable[[bytes, int], dict[str, Any]]
# (field type, temporary name, event key, namespace) -> lines storing the field's value
_Store = Callable[[Any, str, str, "str | None"], list[str]]

# A union tag is a zigzag varint: branch i is byte 2*i while it fits in one byte.
_ONE_BYTE_UNION = 64
_MAX_VARINT_BYTES = 10


class Unsure(Exception):
    """This record needs fastavro: it is malformed, or encoded in a way not read here."""


# What a compiled reader raises for a record it does not read: Unsure, or what reading
# past the end, bad UTF-8, a short float or a deeply recursive record raise on their own.
NOT_READ = (Unsure, IndexError, UnicodeDecodeError, struct.error, RecursionError)


class _NotCovered(Exception):
    """The schema has a type this reader does not compile."""


def _long(data: bytes, pos: int) -> tuple[int, int]:
    """A zigzag varint at ``pos`` of any length: (value, position after it)."""
    shift = value = 0
    for i in range(pos, pos + _MAX_VARINT_BYTES):
        byte = data[i]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if value >> 64:
                raise Unsure("varint longer than 64 bits")
            return (value >> 1) ^ -(value & 1), i + 1
        shift += 7
    raise Unsure("varint longer than 10 bytes")


def _length(data: bytes, pos: int) -> tuple[int, int]:
    """A length or count as ``_long``, which must not be negative."""
    value, pos = _long(data, pos)
    if value < 0:
        raise Unsure("negative length")
    return value, pos


class _Writer:
    """Python source for one schema: a reader function per named record type."""

    def __init__(self) -> None:
        self.functions: dict[str, str] = {}  # record full name -> function name
        self.kinds: dict[str, type] = {}  # named type -> Python type of its values
        self.records: dict[str, tuple[dict[str, Any], str | None]] = {}  # (schema, namespace)
        self.sources: list[str] = []
        self._names = count()
        # Set once every record type has its reader: a definition met again is that one.
        self.defined = False

    def temp(self) -> str:
        return f"v{next(self._names)}"

    # -- one value: lines that read a value of ``schema`` at ``pos`` into ``target`` ----
    def value(self, schema: Any, target: str, namespace: str | None) -> list[str]:
        if isinstance(schema, dict) and "logicalType" in schema:
            raise _NotCovered("logical types")
        if isinstance(schema, dict) and schema.get("type") in PRIMITIVES:
            schema = schema["type"]
        if isinstance(schema, str):
            return self._primitive_or_named(schema, target, namespace)
        if isinstance(schema, list):
            return self._union(schema, target, namespace)
        kind = schema.get("type")
        if kind in ("record", "error"):
            name = self.record(schema, namespace)
            return [f"{target}, pos = {name}(data, pos)"]
        if kind == "array":
            item = self.temp()
            read = self.value(schema["items"], item, namespace)
            return [
                f"{target} = []",
                *self._blocks(
                    [*read, f"{target}.append({item})"], may_be_empty=self.empty(schema["items"])
                ),
            ]
        if kind == "map":
            key, item = self.temp(), self.temp()
            read = [
                *self.value("string", key, None),
                *self.value(schema["values"], item, namespace),
                f"{target}[{key}] = {item}",
            ]
            return [f"{target} = {{}}", *self._blocks(read, may_be_empty=False)]
        raise _NotCovered(f"type {kind!r}")

    def _primitive_or_named(self, schema: str, target: str, namespace: str | None) -> list[str]:
        if schema == "null":
            return [f"{target} = None"]
        if schema == "boolean":
            return [
                f"{target} = data[pos]",
                "pos += 1",
                f"if {target} > 1: raise Unsure('boolean byte')",
                f"{target} = {target} == 1",
            ]
        if schema in ("int", "long"):
            # fastavro reads an int as a long, without a range check: so does this.
            return [
                f"{target} = data[pos]",
                f"if {target} < 128: {target} = ({target} >> 1) ^ -({target} & 1); pos += 1",
                f"else: {target}, pos = _long(data, pos)",
            ]
        if schema in ("float", "double"):
            unpack, size = ("_FLOAT", 4) if schema == "float" else ("_DOUBLE", 8)
            return [f"{target}, = {unpack}(data, pos)", f"pos += {size}"]
        if schema in ("bytes", "string"):
            decode = ".decode()" if schema == "string" else ""
            return [*self._size("n"), f"{target} = data[pos:pos + n]{decode}", "pos += n"]
        full = fullname(schema, namespace)
        if full not in self.functions:
            raise _NotCovered(f"named type {schema!r}")
        return [f"{target}, pos = {self.functions[full]}(data, pos)"]

    @staticmethod
    def _size(target: str) -> list[str]:
        # Lengths under 64 (most strings of an event) are one even byte.
        return [
            f"{target} = data[pos]",
            f"if {target} & 0x81: {target}, pos = _length(data, pos)",
            f"else: {target} >>= 1; pos += 1",
        ]

    def _blocks(self, read_item: list[str], *, may_be_empty: bool) -> list[str]:
        """Array and map bodies: blocks of items, each a count, until a count of 0."""
        count_, size = self.temp(), self.temp()
        lines = [
            "while True:",
            *_indent(self.value("long", count_, None)),
            f"    if {count_} == 0: break",
            f"    if {count_} < 0:",  # a negative count is followed by the block's size
            f"        {count_} = -{count_}",
            *_indent(self.value("long", size, None), 2),
        ]
        if may_be_empty:
            # Items of no bytes: a corrupt count would loop for ever; more such items
            # than bytes left are left to fastavro.
            lines.append(f"    if {count_} > len(data) - pos: raise Unsure('count')")
        return [*lines, f"    for _ in range({count_}):", *_indent(read_item, 2)]

    def empty(self, schema: Any) -> bool:
        """Whether a value of ``schema`` can be written in no bytes."""
        if isinstance(schema, dict) and schema.get("type") in ("record", "error"):
            return all(self.empty(field["type"]) for field in schema["fields"])
        if isinstance(schema, str) and schema not in PRIMITIVES:
            return True  # a named record, maybe recursive: assumed so
        return schema == "null" or schema == {"type": "null"}

    def _union(
        self,
        branches: list[Any],
        target: str,
        namespace: str | None,
        read: Callable[[Any], list[str]] | None = None,
    ) -> list[str]:
        """A union's tag, then its branch read into ``target`` (or by ``read(branch)``)."""
        if len(branches) > _ONE_BYTE_UNION:
            raise _NotCovered("a union of more than 64 branches")
        kinds = [self.kind(b, namespace) for b in branches]
        if kinds.count(dict) > 1 or kinds.count(list) > 1:
            # avro_mapping tells such branches apart by Python type only.
            raise _NotCovered("a union of several records, maps or arrays")
        tag = self.temp()
        lines = [f"{tag} = data[pos]", "pos += 1"]
        for i, branch in enumerate(branches):
            keyword = "if" if i == 0 else "elif"
            lines_of = read(branch) if read else self.value(branch, target, namespace)
            lines += [f"{keyword} {tag} == {2 * i}:", *_indent(lines_of or ["pass"])]
        return [*lines, "else: raise Unsure('union tag')"]

    def kind(self, schema: Any, namespace: str | None) -> type | None:
        """The Python type of a schema's values where the mapping converts them."""
        if isinstance(schema, str):
            return self.kinds.get(fullname(schema, namespace))
        if isinstance(schema, dict):
            return {"record": dict, "error": dict, "map": dict, "array": list}.get(
                schema.get("type")
            )
        return None

    # -- one record type: a function (value, position) -> (ECS dict or None, position) --
    def record(self, schema: dict[str, Any], namespace: str | None) -> str:
        full, inner = named_type(schema, namespace)  # type: ignore[misc]
        if full in self.functions:
            if self.defined:
                return self.functions[full]
            raise _NotCovered(f"record {full} defined twice")
        name = self.functions[full] = f"_record_{len(self.functions)}"
        self.kinds[full] = dict
        self.records[full] = (schema, inner)
        body: list[str] = []
        for field in schema["fields"]:
            key = repr(field.get("ecs_name", field["name"]))
            body += self._field(field["type"], key, inner)
        self.sources.append(
            "\n".join(
                [
                    # Names are data: only their repr (no newline) reaches the source.
                    f"def {name}(data, pos):  # {full!r}",
                    "    out = {}",
                    *_indent(body),
                    "    return (out or None), pos",
                ]
            )
        )
        return name

    def _field(
        self, schema: Any, key: str, namespace: str | None, store: _Store | None = None
    ) -> list[str]:
        """Lines that read one field and store it under ``key`` unless it is null (by
        ``store``, default ``_store``, for the field's type or its optional one's)."""
        store = store or self._store
        value = self.temp()
        branches = schema if isinstance(schema, list) else None
        if branches and len(branches) == 2 and "null" in branches:
            # The optional field, most fields of an event: absent is the tag of null.
            other = 1 - branches.index("null")
            tag = self.temp()
            return [
                f"{tag} = data[pos]",
                "pos += 1",
                f"if {tag} == {2 * other}:",
                *_indent(store(branches[other], value, key, namespace)),
                f"elif {tag}: raise Unsure('union tag')"
                if other == 1
                else f"elif {tag} != 2: raise Unsure('union tag')",
            ]
        return store(schema, value, key, namespace)

    def _store(self, schema: Any, value: str, key: str, namespace: str | None) -> list[str]:
        if schema in ("string", "bytes"):  # read last, straight into the event
            return self.value(schema, f"out[{key}]", namespace)
        lines = self.value(schema, value, namespace)
        if _may_be_none(schema):
            return [*lines, f"if {value} is not None: out[{key}] = {value}"]
        return [*lines, f"out[{key}] = {value}"]


class _Projection:
    """Readers of only some fields of an event, over a ``_Writer`` that has compiled every
    record type whole: a wanted field is read whole (everything under it included), a
    record holding a wanted field is read in part in turn, and any other field is skipped
    (its bytes walked over, not decoded or checked). Past the last wanted field nothing
    is walked: its record, and each holding it, ends there (with the process-event
    schema, ``process.args`` comes before the parent process and the rest of
    ``process``, the event's last field: their bytes are a third of the record's)."""

    def __init__(self, writer: _Writer, fields: frozenset[str]) -> None:
        self.writer = writer
        self.fields = fields
        self.ancestors = {f[:i] for f in fields for i, char in enumerate(f) if char == "."}
        self.readers: dict[tuple[str, str], str] = {}  # (record full name, path) -> function
        self.skippers: dict[str, str] = {}  # record full name -> function

    def record(self, full: str, path: str, last: bool = False) -> str:
        """The function reading the record type ``full`` found at ``path`` (dotted);
        ``last``: nothing is read after it, so it ends after its last wanted field."""
        key = (full, path, last)
        if key in self.readers:
            return self.readers[key]
        name = self.readers[key] = f"_projected_{len(self.readers)}"
        schema, inner = self.writer.records[full]
        fields = schema["fields"]
        names = [field.get("ecs_name", field["name"]) for field in fields]
        paths = [f"{path}.{ecs}" if path else ecs for ecs in names]
        read = [i for i, sub in enumerate(paths) if sub in self.fields or sub in self.ancestors]
        end = (read[-1] + 1 if read else 0) if last else len(fields)
        body: list[str] = []
        for i, (field, ecs, sub) in enumerate(zip(fields[:end], names, paths, strict=False)):
            if sub in self.fields:
                body += self.writer._field(field["type"], repr(ecs), inner)
            elif sub in self.ancestors:
                body += self._descend(field["type"], repr(ecs), inner, sub, last and i == end - 1)
            else:
                body += self.skip(field["type"], inner)
        self.writer.sources.append(
            "\n".join(
                [
                    f"def {name}(data, pos):  # {full!r} at {path!r}",
                    "    out = {}",
                    *_indent(body),
                    "    return (out or None), pos",
                ]
            )
        )
        return name

    def _record_name(self, schema: Any, namespace: str | None) -> str | None:
        named = named_type(schema, namespace)
        if named is not None:
            return named[0] if named[0] in self.writer.records else None
        if isinstance(schema, str):
            full = fullname(schema, namespace)
            return full if full in self.writer.records else None
        return None

    def _descend(
        self, schema: Any, key: str, namespace: str | None, path: str, last: bool
    ) -> list[str]:
        """A field holding a wanted field: its record (or optional record) read in part
        (``last``: nothing read after it). Anything else is read whole."""
        optional = isinstance(schema, list) and len(schema) == 2 and "null" in schema
        branch = schema[1 - schema.index("null")] if optional else schema
        full = self._record_name(branch, namespace)
        if full is None:
            return self.writer._field(schema, key, namespace)
        reader = self.record(full, path, last)

        def store(_schema: Any, value: str, key: str, _namespace: str | None) -> list[str]:
            return [
                f"{value}, pos = {reader}(data, pos)",
                f"if {value} is not None: out[{key}] = {value}",
            ]

        return self.writer._field(schema, key, namespace, store)

    def skip(self, schema: Any, namespace: str | None) -> list[str]:
        """Lines that move ``pos`` past a value of ``schema`` without reading it."""
        if isinstance(schema, dict) and "logicalType" in schema:
            raise _NotCovered("logical types")
        if isinstance(schema, dict) and schema.get("type") in PRIMITIVES:
            schema = schema["type"]
        if isinstance(schema, list):
            return self.writer._union(schema, "_", namespace, lambda b: self.skip(b, namespace))
        # Blocks: skipping an item may read no byte (a double is a jump), so a corrupt
        # count would loop for ever; more items than bytes left are left to fastavro.
        if isinstance(schema, dict) and schema.get("type") == "array":
            items = self.skip(schema["items"], namespace) or ["pass"]
            return self.writer._blocks(items, may_be_empty=True)
        if isinstance(schema, dict) and schema.get("type") == "map":
            entries = [*self.skip("string", None), *self.skip(schema["values"], namespace)]
            return self.writer._blocks(entries, may_be_empty=True)
        if schema == "null":
            return []
        if schema == "boolean":
            return ["pos += 1"]
        if schema in ("int", "long"):
            return ["while data[pos] > 127: pos += 1", "pos += 1"]
        if schema in ("float", "double"):
            return [f"pos += {4 if schema == 'float' else 8}"]
        if schema in ("string", "bytes"):
            return [*self.writer._size("n"), "pos += n"]
        full = self._record_name(schema, namespace)
        if full is None:
            raise _NotCovered(f"type {schema!r}")
        return [f"pos = {self._skipper(full)}(data, pos)"]

    def _skipper(self, full: str) -> str:
        if full in self.skippers:
            return self.skippers[full]
        name = self.skippers[full] = f"_skip_{len(self.skippers)}"
        schema, inner = self.writer.records[full]
        body = [line for field in schema["fields"] for line in self.skip(field["type"], inner)]
        self.writer.sources.append(
            "\n".join([f"def {name}(data, pos):  # {full!r}", *_indent(body), "    return pos"])
        )
        return name


def _may_be_none(schema: Any) -> bool:
    """Whether a value of ``schema`` can read as None (null, or a record of nulls)."""
    if isinstance(schema, list):
        return any(_may_be_none(branch) for branch in schema)
    if isinstance(schema, dict):
        return schema.get("type") in ("null", "record", "error")
    return schema not in PRIMITIVES or schema == "null"


def _indent(lines: list[str], depth: int = 1) -> list[str]:
    return [" " * (4 * depth) + line for line in lines]


def compile_reader(
    schema: dict[str, Any], fields: frozenset[str] | None = None
) -> ReadEvent | None:
    """A reader of records of the top-level record ``schema`` (writer and reader alike),
    or None if the schema has a type this module does not cover.

    With ``fields`` (dotted ECS paths), the reader reads those fields whole and the
    records that hold them, and skips the rest: an event with those fields as the whole
    reader would read them, without checking the bytes it skips or walking those after
    the last field it reads. The reader raises one of ``NOT_READ`` for any record it
    cannot read as fastavro would.
    """
    if not isinstance(schema, dict) or schema.get("type") not in ("record", "error"):
        return None
    writer = _Writer()
    try:
        top = writer.record(schema, None)
        if fields is not None:
            writer.defined = True
            full = named_type(schema, None)[0]  # type: ignore[index]
            top = _Projection(writer, fields).record(full, "", last=True)
    except _NotCovered:
        return None
    # Read whole, a record ends where its bytes do; read in part, where its last field
    # read does.
    ends = "if pos != len(data): raise Unsure('length')" if fields is None else "pass"
    source = "\n\n".join(
        [
            *writer.sources,
            f"""def read_event(data, pos):
    event, pos = {top}(data, pos)
    {ends}
    return event or {{}}""",
        ]
    )
    scope: dict[str, Any] = {
        "Unsure": Unsure,
        "_long": _long,
        "_length": _length,
        "_FLOAT": struct.Struct("<f").unpack_from,
        "_DOUBLE": struct.Struct("<d").unpack_from,
    }
    exec(compile(source, f"<avro reader for {schema.get('name')}>", "exec"), scope)
    return scope["read_event"]  # type: ignore[no-any-return]
