"""Load rules from Elastic's two formats into ``Rule`` objects.

- detection-rules TOML (``[metadata]``, ``[rule]``, ``[[rule.threat]]``...): one rule a
  file. detection-rules keeps ``version`` outside the file (in its version lock); a
  ``version`` inside ``[rule]`` is accepted too, else the rule is version 1.
- Kibana's rule export NDJSON: one rule object a line; the export's summary line and
  exception-list lines are not rules and are passed over. A single rule object in a
  ``.json`` file (Kibana's prepackaged-rule layout) loads the same way.

Every failure is a ``RuleLoadError`` naming the file, the line and the cause; a rule of a
type or language this engine does not run is an ``UnsupportedRuleError``.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from consumer.errors import KqlSyntaxError, RuleLoadError, UnsupportedRuleError
from consumer.kql import compile_filters, compile_query
from consumer.rules.model import (
    AlertSuppression,
    AttackEntry,
    Rule,
    Technique,
    Threat,
    parse_duration,
)
from consumer.rules.topics import rule_topics

RULE_FILE_SUFFIXES = (".toml", ".ndjson", ".json")
SUPPORTED_TYPE = "query"
SUPPORTED_LANGUAGE = "kuery"
_TOML_ERROR_LINE = re.compile(r"at line (\d+)")
# Elastic's other rule types, as their TOML spells them: most files of its rule
# repository are of these, and are told apart by this line without parsing the file.
_OTHER_TYPE_LINE = re.compile(
    r"""^[ \t]*type[ \t]*=[ \t]*["']"""
    r"""(eql|esql|new_terms|machine_learning|threshold|threat_match)["']""",
    re.MULTILINE,
)
_QUERY_TYPE = re.compile(r"""["']?type["']?[ \t]*=[ \t]*["']query["']""")
#: A rule file larger than this is refused unread. Kibana's export of every prebuilt rule
#: is a few MB; this only keeps a wrong path (a log file, a disk image) out of memory.
MAX_RULE_FILE_BYTES = 64 * 1024 * 1024


@dataclass
class LoadResult:
    """Rules loaded from some paths, and what was refused on the way.

    ``refused`` holds every rule or file that could not be loaded; ``skipped`` the subset
    that was well formed but of a type or language this engine does not run and was found
    by walking a directory (a warning, not a failure).
    """

    rules: list[Rule] = field(default_factory=list)
    refused: list[RuleLoadError] = field(default_factory=list)
    skipped: list[UnsupportedRuleError] = field(default_factory=list)

    @property
    def failures(self) -> list[RuleLoadError]:
        """Refusals that are errors: everything refused but the skipped rules."""
        skipped = {id(s) for s in self.skipped}
        return [r for r in self.refused if id(r) not in skipped]


def load_rules(paths: list[str | Path]) -> LoadResult:
    """Load every rule under ``paths`` (files, or directories walked recursively).

    A rule of an unsupported type or language found while walking a directory is
    skipped; named as a file, it is a failure. A ``rule_id`` seen twice is refused the
    second time.
    """
    result = LoadResult()
    seen: dict[str, str] = {}
    for raw in paths:
        path = Path(raw)
        explicit = not path.is_dir()
        for outcome in _load_path(path):
            if isinstance(outcome, Rule):
                if outcome.rule_id in seen:
                    result.refused.append(
                        RuleLoadError(
                            outcome.source,
                            f"duplicate rule_id {outcome.rule_id}, already loaded from "
                            f"{seen[outcome.rule_id]}",
                        )
                    )
                    continue
                seen[outcome.rule_id] = outcome.source
                result.rules.append(outcome)
            else:
                result.refused.append(outcome)
                if isinstance(outcome, UnsupportedRuleError) and not explicit:
                    result.skipped.append(outcome)
    return result


def _load_path(path: Path) -> Iterator[Rule | RuleLoadError]:
    if path.is_dir():
        for child in sorted(path.rglob("*")):
            if child.is_file() and child.suffix in RULE_FILE_SUFFIXES:
                yield from _load_file(child)
    elif path.is_file():
        yield from _load_file(path)
    else:
        yield RuleLoadError(str(path), "no such file or directory")


def _load_file(path: Path) -> Iterator[Rule | RuleLoadError]:
    try:
        size = path.stat().st_size
        if size > MAX_RULE_FILE_BYTES:
            yield RuleLoadError(
                str(path), f"file is {size} bytes, more than the {MAX_RULE_FILE_BYTES} allowed", 1
            )
            return
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        yield RuleLoadError(str(path), f"not UTF-8: byte {exc.start}: {exc.reason}", line)
        return
    except OSError as exc:
        yield RuleLoadError(str(path), f"cannot read the file: {exc}")
        return
    if path.suffix == ".toml":
        yield _from_toml(text, str(path))
    elif path.suffix == ".ndjson":
        yield from _from_ndjson(text, str(path))
    else:
        yield from _from_json(text, str(path))


def load_toml_rule(text: str, source: str) -> Rule:
    """Load one detection-rules TOML document; raises ``RuleLoadError``."""
    outcome = _from_toml(text, source)
    if isinstance(outcome, RuleLoadError):
        raise outcome
    return outcome


def _from_toml(text: str, source: str) -> Rule | RuleLoadError:
    # Parsing is most of the time spent loading Elastic's whole rule set, and three in
    # four of its files are then skipped: skip those first. A file that spells a query
    # type anywhere is always parsed.
    other = _OTHER_TYPE_LINE.search(text)
    if other is not None and _QUERY_TYPE.search(text) is None:
        return _unsupported_type(other.group(1), source, text.count("\n", 0, other.start()) + 1)
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = _TOML_ERROR_LINE.search(str(exc))
        return RuleLoadError(
            source, f"not valid TOML: {exc}", int(match.group(1)) if match else None
        )
    except RecursionError:  # tomllib recurses per nested array or inline table
        return RuleLoadError(source, "not valid TOML: nested too deeply", _deepest_line(text))
    data = document.get("rule")
    if not isinstance(data, dict):
        return RuleLoadError(source, "no [rule] table", 1)
    return _build(data, source, lambda key: _toml_key_line(text, key), _toml_query_line(text))


def _unsupported_type(rule_type: object, source: str, line: int | None) -> UnsupportedRuleError:
    return UnsupportedRuleError(
        source,
        f"rule type {rule_type!r} is not supported: this engine runs KQL query rules "
        f"(type {SUPPORTED_TYPE!r}, language {SUPPORTED_LANGUAGE!r})",
        line,
    )


def _from_ndjson(text: str, source: str) -> Iterator[Rule | RuleLoadError]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = _json(line)
        except _BadJson as exc:
            yield RuleLoadError(source, f"not valid JSON: {exc}", number)
            continue
        if not isinstance(data, dict):
            yield RuleLoadError(source, "a line must be a JSON object", number)
        elif _is_rule_object(data):
            yield _build(data, source, lambda _key, n=number: n, number, number)


def _from_json(text: str, source: str) -> Iterator[Rule | RuleLoadError]:
    try:
        data = _json(text)
    except _BadJson as exc:
        yield RuleLoadError(source, f"not valid JSON: {exc}", exc.line)
        return
    if not isinstance(data, dict) or not _is_rule_object(data):
        yield RuleLoadError(source, "not a rule object (no rule_id and type)", 1)
        return
    yield _build(data, source, lambda key: _json_key_line(text, key), None)


class _BadJson(ValueError):
    """Why a JSON document does not load, and on which of its lines."""

    def __init__(self, cause: str, line: int) -> None:
        super().__init__(cause)
        self.line = line


def _json(text: str) -> Any:
    """``json.loads``, every failure a ``_BadJson`` with a short cause and a line.

    Besides syntax errors: nesting past the parser's recursion limit and integers past
    Python's 4,300-digit limit, which ``json.loads`` raises as ``RecursionError`` and a
    plain ``ValueError``.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _BadJson(f"{exc.msg} (column {exc.colno})", exc.lineno) from None
    except RecursionError:
        raise _BadJson("nested too deeply", _deepest_line(text)) from None
    except ValueError as exc:  # integers longer than the interpreter converts
        long_number = re.search(r"\d{4300}", text)
        line = text.count("\n", 0, long_number.start()) + 1 if long_number else 1
        raise _BadJson(str(exc).split(";")[0], line) from None


def _deepest_line(text: str) -> int:
    """The line where brackets nest deepest (strings not skipped: for messages only)."""
    depth = best = 0
    best_at = 0
    for match in re.finditer(r"[\[\]{}]", text):
        depth += 1 if match.group() in "[{" else -1
        if depth > best:
            best, best_at = depth, match.start()
    return text.count("\n", 0, best_at) + 1


def _is_rule_object(data: Mapping[str, Any]) -> bool:
    # Export summaries carry exported_count, exception lists list_id/item_id: no rule_id.
    return "rule_id" in data and "type" in data


def _build(
    data: dict[str, Any],
    source: str,
    key_line: Callable[[str], int | None],
    query_line: int | None,
    default_line: int | None = None,
) -> Rule | RuleLoadError:
    """A rule, or why not; ``default_line`` (an NDJSON line) when no key's line is known."""
    rule_type, language = data.get("type"), data.get("language", SUPPORTED_LANGUAGE)
    if rule_type != SUPPORTED_TYPE:
        return _unsupported_type(rule_type, source, key_line("type"))
    if language != SUPPORTED_LANGUAGE:
        return UnsupportedRuleError(
            source,
            f"query language {language!r} is not supported: this engine runs KQL "
            f"(language {SUPPORTED_LANGUAGE!r})",
            key_line("language"),
        )
    try:
        rule = _rule_from_api(data, source)
    except (KeyError, TypeError, ValueError) as exc:
        cause, key = _describe(exc)
        line = key_line(key) if key else None
        return RuleLoadError(source, cause, default_line if line is None else line)
    try:
        rule_topics([rule])
    except ValueError as exc:
        return RuleLoadError(source, str(exc), key_line("index"))
    try:
        compile_query(rule.query)
    except KqlSyntaxError as exc:
        line = None if query_line is None else query_line + exc.line - 1
        return RuleLoadError(source, f"query does not parse: {_excerpt(exc)}", line)
    try:
        compile_filters(rule.filters)
    except ValueError as exc:
        return RuleLoadError(source, str(exc), key_line("filters"))
    return rule


def _excerpt(exc: KqlSyntaxError, width: int = 100) -> str:
    """The syntax error with at most ``width`` characters of the query line around the
    caret: a rule refusal is one line in a log, even for a 100,000-character query."""
    message = str(exc)
    lines = message.split("\n")
    if len(lines) < 3 or len(lines[-2]) <= width:
        return message
    start = max(0, exc.column - 1 - width // 2)
    shown = lines[-2][start : start + width]
    prefix = "..." if start else ""
    suffix = "..." if start + width < len(lines[-2]) else ""
    caret = " " * (len(prefix) + exc.column - 1 - start) + "^"
    return "\n".join([*lines[:-2], prefix + shown + suffix, caret])


def _describe(exc: Exception) -> tuple[str, str | None]:
    if isinstance(exc, KeyError):
        key = exc.args[0]
        return f"missing required field {key!r}", None
    message = str(exc)
    # Validation messages start with the field they are about ("severity must be ...").
    match = re.match(r"[a-z_]+", message)
    return message, match.group(0) if match else None


def _rule_from_api(data: dict[str, Any], source: str) -> Rule:
    """Build a ``Rule`` from the rule API's snake_case fields (TOML [rule] or NDJSON)."""
    return Rule(
        rule_id=_text(data, "rule_id"),
        name=_text(data, "name"),
        description=data.get("description", ""),
        type=data["type"],
        language=data.get("language", SUPPORTED_LANGUAGE),
        query=data.get("query", ""),
        severity=_text(data, "severity"),
        risk_score=data["risk_score"],
        index=_strings(data, "index"),
        version=data.get("version", 1),
        interval=data.get("interval", "5m"),
        from_=data.get("from", "now-6m"),
        to=data.get("to", "now"),
        max_signals=data.get("max_signals", 100),
        timestamp_override=data.get("timestamp_override") or None,
        timestamp_override_fallback_disabled=bool(
            data.get("timestamp_override_fallback_disabled", False)
        ),
        threat=_threats(data.get("threat")),
        tags=_strings(data, "tags"),
        author=_strings(data, "author"),
        license=data.get("license", ""),
        references=_strings(data, "references"),
        false_positives=_strings(data, "false_positives"),
        alert_suppression=_suppression(data.get("alert_suppression")),
        filters=_filters(data.get("filters")),
        id=data.get("id"),
        source=source,
    )


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise TypeError(f"{key} must be a string, not {value!r}")
    return value


def _strings(data: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = data.get(key)
    if value is None:  # absent, or null in an export
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"{key} must be a list of strings")
    return tuple(value)


def _entry(data: Mapping[str, Any]) -> AttackEntry:
    return AttackEntry(id=data["id"], name=data["name"], reference=data.get("reference", ""))


def _threats(data: Any) -> tuple[Threat, ...]:
    if data is None:
        return ()
    if not isinstance(data, list):
        raise TypeError("threat must be a list of tables with framework, tactic and technique")
    try:
        return tuple(_threat(t) for t in data)
    except (KeyError, TypeError, AttributeError) as exc:
        cause = f"missing {exc.args[0]!r}" if isinstance(exc, KeyError) else str(exc)
        raise TypeError(f"threat entries need tactic and technique tables ({cause})") from None


def _threat(data: Mapping[str, Any]) -> Threat:
    if not isinstance(data, Mapping):
        raise TypeError("threat entries must be tables with framework, tactic and technique")
    return Threat(
        framework=data.get("framework", "MITRE ATT&CK"),
        tactic=_entry(data["tactic"]),
        techniques=tuple(
            Technique(
                id=t["id"],
                name=t["name"],
                reference=t.get("reference", ""),
                subtechniques=tuple(_entry(s) for s in t.get("subtechnique", ())),
            )
            for t in data.get("technique", ())
        ),
    )


def _filters(data: Any) -> tuple[Mapping[str, Any], ...]:
    if data is None:
        return ()
    if not isinstance(data, list):
        raise TypeError("filters must be a list of filter objects")
    return tuple(data)


def _suppression(data: Any) -> AlertSuppression | None:
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise TypeError("alert_suppression must be a table with group_by")
    duration = data.get("duration")
    span: timedelta | None = None
    if duration is not None:
        if not isinstance(duration, Mapping):
            raise TypeError("alert_suppression duration must have value and unit")
        span = parse_duration(f"{duration['value']}{duration['unit']}")
    group_by = data.get("group_by")
    if not isinstance(group_by, list):
        raise TypeError("alert_suppression group_by must be a list of field names")
    return AlertSuppression(
        group_by=tuple(group_by),
        duration=span,
        missing_fields_strategy=data.get("missing_fields_strategy", "suppress"),
    )


def _toml_key_line(text: str, key: str) -> int | None:
    match = re.search(rf"^\s*{re.escape(key)}\s*=", text, re.MULTILINE)
    if match is None and key == "filters":
        match = re.search(r"^\s*\[\[rule\.filters\]\]", text, re.MULTILINE)
    if match is None and key == "threat":
        match = re.search(r"^\s*\[\[rule\.threat\]\]", text, re.MULTILINE)
    if match is None and key == "alert_suppression":
        match = re.search(r"^\s*\[rule\.alert_suppression", text, re.MULTILINE)
    return text.count("\n", 0, match.start()) + 1 if match else None


def _toml_query_line(text: str) -> int | None:
    """The file line on which the query's first line stands."""
    match = re.search(r"^\s*query\s*=\s*('''|\"\"\"|'|\")", text, re.MULTILINE)
    if match is None:
        return None
    line = text.count("\n", 0, match.start()) + 1
    rest = text[match.end() : text.find("\n", match.end())]
    # TOML drops the newline right after an opening ''' or """.
    multiline_opening = match.group(1) in ("'''", '"""') and not rest.strip()
    return line + 1 if multiline_opening else line


def _json_key_line(text: str, key: str) -> int | None:
    position = text.find(f'"{key}"')
    return text.count("\n", 0, position) + 1 if position >= 0 else None
