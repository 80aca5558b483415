"""ECS events as JSON, the way Auditbeat and Elastic Agent write them to Kafka.

Decoding is faithful: nested objects, dotted keys (``"process.name"``) or a mix come
back exactly as written; the matcher resolves both spellings, as Elasticsearch does.

Choices, and why:

- Records are UTF-8 (RFC 8259 for JSON exchanged between systems). They are decoded
  strictly before parsing, because ``json.loads(bytes)`` would otherwise guess UTF-16
  or UTF-32 and accept bytes no producer meant. A byte-order mark is ``invalid_json``.
- ``NaN``, ``Infinity`` and ``-Infinity`` are rejected (``invalid_json``): they are not
  JSON, orjson and Elasticsearch refuse them, and an alert holding one could not be
  written back out as JSON.
- Nesting deeper than ``max_depth`` is ``too_deep``. ``RecursionError`` never escapes:
  the parser's own recursion limit (around 1,000 levels) is reported as ``too_deep``
  too. Counting brackets first keeps the exact depth walk off the common path.
- Integers longer than Python's 4,300-digit limit are ``invalid_json``, not a crash;
  so is a float too large for a double (``1e400``), which ``json`` would turn into
  infinity: like NaN, it could not be written back out as JSON.
- An escaped lone surrogate (``"\\ud800"``, in a key or a value) is ``invalid_utf8``:
  it would decode to a Python string that cannot be encoded to UTF-8 again, so the
  candidate or alert carrying it could never be written. A valid escaped pair
  (``"\\ud83d\\ude00"``) is one character and fine. Only records holding ``\\uD8..``
  to ``\\uDF..`` pay for the check.
- Duplicate keys: the last one wins, as in ``json.loads`` and most parsers (RFC 8259
  leaves it open). Elasticsearch would refuse such a document (strict duplicate
  detection), so Beats and Agent never write one; refusing it here too would only add a
  dead-letter reason. For detection it is safe: the literal prefilter reads the raw
  bytes, where a shadowed value can only let a record through to decoding, and rules
  match the decoded event, the one value that would have been indexed.

Parsing is orjson's where it gives what the stdlib ``json`` module gives, and the
stdlib's otherwise (``loads``): orjson parsed a 2 KB event in 7 us against 14 us, and
a decoded record is what each match costs most (the JSON 1-in-100 benchmark). orjson
accepts less than ``json`` (RFC 8259 only: no NaN, no lone surrogate, no BOM, nesting up
to 1,024), so whatever it refuses is parsed again by ``json``, whose answer or error is
then the record's, exactly as before. The one thing it reads differently is a number
of 19 digits or more, turned into a float; a record holding such a run of digits
(even in a string) goes to ``json`` at once.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from consumer.codecs.errors import DecodeError, EncodeError

DEFAULT_MAX_DEPTH = 512


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (_INF, -_INF):  # "1e400": json would give inf, which is no JSON number
        raise ValueError(f"number {text[:40]} is out of range")
    return value


_INF = float("inf")
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)
# A \u escape of a UTF-16 surrogate (D800-DFFF); a match may be part of a valid pair.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
# Every digit made "0", to find a run of 19 in one C-level pass (a regex took 15 us),
# and every "[" made "{", so one count of the same copy bounds the nesting depth.
_SHAPE = bytes.maketrans(b"123456789[", b"0" * 9 + b"{")
# orjson turns an integer of 19 digits or more (from 2**63 on) into a float.
_LONG_NUMBER = b"0" * 19
# What _orjson_exact answers where only the stdlib may (None is a JSON value).
_REFUSED = object()


def loads(value: bytes) -> Any:
    """``json.loads(value)``, by orjson where it gives the same value (see above)."""
    parsed = _orjson_exact(value, value.translate(_SHAPE))
    return json.loads(value) if parsed is _REFUSED else parsed


def dumps(value: Any) -> bytes:
    """A decoded event (or a document holding one) as compact UTF-8 JSON: orjson, or
    ``json`` for what orjson refuses (an integer past 64 bits, a key that is no string).
    Decoded events hold no NaN or infinity (refused when decoding), which orjson would
    write as null."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def decode_json(value: bytes, *, max_depth: int = DEFAULT_MAX_DEPTH) -> dict[str, Any]:
    """Decode one JSON record into an event dict, or raise ``DecodeError``."""
    shape = value.translate(_SHAPE)
    event = _orjson_exact(value, shape)
    if event is _REFUSED:
        event = _strict_parse(value)
    if not isinstance(event, dict):
        raise DecodeError("not_an_object", f"JSON {_json_type(event)}, not an object")
    # Depth can only exceed the limit if there are more brackets than the limit; the
    # count runs in C, so ordinary events never pay for the walk.
    if shape.count(b"{") > max_depth and _depth_exceeds(event, max_depth):
        raise DecodeError("too_deep", f"nested more than {max_depth} levels")
    return event


def _orjson_exact(value: bytes, shape: bytes) -> Any:
    """orjson's value of ``value`` (``shape``: it translated by ``_SHAPE``), or
    ``_REFUSED`` where only ``json`` may answer."""
    if shape.find(_LONG_NUMBER) >= 0:
        return _REFUSED
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return _REFUSED


def _strict_parse(value: bytes) -> Any:
    """The stdlib's event, or the ``DecodeError`` that says why there is none."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError("invalid_utf8", f"byte {exc.start}: {exc.reason}") from None
    event = _parse(text)
    if _SURROGATE_ESCAPE.search(value) and _has_lone_surrogate(event):
        raise DecodeError("invalid_utf8", "escaped lone surrogate (\\ud800-\\udfff) in a string")
    return event


def _has_lone_surrogate(event: dict[str, Any]) -> bool:
    try:
        json.dumps(event, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _parse(text: str) -> Any:
    try:
        return _DECODER.decode(text)
    except RecursionError:
        raise DecodeError("too_deep", "nested deeper than the parser allows") from None
    except json.JSONDecodeError as exc:
        if not text.strip():
            raise DecodeError("empty", "record holds only whitespace") from None
        where = f"line {exc.lineno} column {exc.colno}"
        raise DecodeError("invalid_json", f"{exc.msg} at {where}") from None
    except ValueError as exc:  # NaN/Infinity, integers past the 4,300-digit limit
        raise DecodeError("invalid_json", str(exc)) from None


def _depth_exceeds(root: Any, max_depth: int) -> bool:
    """Whether containers nest more than ``max_depth`` deep; iterative, so no recursion."""
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


def encode_event_json(event: dict[str, Any]) -> bytes:
    """Encode an event as compact UTF-8 JSON, as Beats would write it to Kafka."""
    try:
        text = json.dumps(event, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        return text.encode("utf-8")
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        raise EncodeError(f"event cannot be encoded as JSON: {exc}") from None
