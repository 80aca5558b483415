"""One exception root for the project; each subclass maps to an action.

- ``RuleError`` and its subclasses: a rule cannot be used, so the process refuses to
  start (or, when loading a directory, the rule is skipped with one warning line).
- ``EventError``: one event cannot be decoded or read; it is reported (dead-lettered in
  the streaming path) and processing goes on.
"""

from __future__ import annotations


class ConsumerError(Exception):
    """Root of every error this package raises on purpose."""


class RuleError(ConsumerError):
    """A rule cannot be loaded, validated or compiled."""


class KqlSyntaxError(RuleError):
    """A KQL query does not parse.

    ``position`` is the 0-based character offset of the offending text, ``line`` and
    ``column`` are 1-based, and the message ends with the query line and a caret under
    the offending character.
    """

    def __init__(self, reason: str, query: str, position: int) -> None:
        self.reason = reason
        self.query = query
        self.position = max(0, min(position, len(query)))
        before = query[: self.position]
        self.line = before.count("\n") + 1
        line_start = before.rfind("\n") + 1
        self.column = self.position - line_start + 1
        line_end = query.find("\n", self.position)
        text_line = query[line_start : None if line_end == -1 else line_end]
        caret = " " * (self.column - 1) + "^"
        super().__init__(
            f"{reason} at line {self.line}, column {self.column}\n{text_line}\n{caret}"
        )


class RuleLoadError(RuleError):
    """A rule file is malformed or a rule in it is invalid.

    The message names the file, the line (when the format gives one) and the cause.
    """

    def __init__(self, path: str, cause: str, line: int | None = None) -> None:
        self.path = path
        self.cause = cause
        self.line = line
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {cause}")


class UnsupportedRuleError(RuleLoadError):
    """A well-formed rule of a type or language this engine does not run (EQL, ES|QL...)."""


class EventError(ConsumerError):
    """One event cannot be decoded or used; the caller reports it and moves on."""
