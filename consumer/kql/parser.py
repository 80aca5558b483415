"""Parse KQL text into the tree of :mod:`consumer.kql.ast`.

The grammar is ``kql.lark`` (LALR(1), basic lexer, so parsing is linear). The tree is
built while the parser reduces (lark's inline transformer), not by a recursive walk
afterwards, and nesting of parentheses and braces is capped before parsing, so no input
can exhaust the stack. Every failure is a :class:`~consumer.errors.KqlSyntaxError`
pointing at the offending character.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path

from lark import Lark, Token, Transformer
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from consumer.errors import KqlSyntaxError
from consumer.kql import ast

#: Deepest nesting of ``(``/``{`` accepted; far beyond any real rule, and low enough
#: that every recursive walk of the tree stays clear of Python's recursion limit.
MAX_DEPTH = 64
#: Longest query accepted, in characters. Elastic's prebuilt rules stay under 10,000;
#: parsing and compiling are linear, and this keeps a rule's start-up cost under a second.
MAX_QUERY_LENGTH = 100_000
#: Longest field name, in characters and in dotted parts. Field lookup precomputes every
#: joined spelling of a path (parts squared), so an absurd name must not reach it; ECS
#: names have at most 7 parts and Elasticsearch maps objects at most 20 levels deep.
MAX_FIELD_LENGTH = 1024
MAX_FIELD_PARTS = 32

_KEYWORDS = {"or": "OR", "and": "AND", "not": "NOT"}
_TOKEN_NAMES = {
    "OR": "'or'",
    "AND": "'and'",
    "NOT": "'not'",
    "WORD": "a value",
    "QUOTED": "a quoted value",
    "RANGE_OP": "a range operator",
    "COLON": "':'",
    "LPAR": "'('",
    "RPAR": "')'",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
}

_UNQUOTED_PIECE = re.compile(
    r'\\(?:u([0-9a-fA-F]{4})|([trn])|([\\():<>"*{}])|((?i:and|or|not)))|(\*)|([^\\*]+)'
)
_QUOTED_PIECE = re.compile(r'\\(?:u([0-9a-fA-F]{4})|([trn])|([\\"]))|([^\\]+|\\)')
_WHITESPACE_ESCAPES = {"t": "\t", "r": "\r", "n": "\n"}
# Quoted strings are skipped so their brackets do not count towards the depth.
_DEPTH_SCAN = re.compile(r'"(?:\\(?:[\\"trn]|u[0-9a-fA-F]{4})|[^"\\]|\\)*+"|\\.|[(){}]', re.S)

_source: ContextVar[str] = ContextVar("kql_source", default="")


def _decode_unquoted(raw: str) -> ast.Literal | ast.Wildcard:
    """Decode escapes; unescaped ``*`` split the value into wildcard segments."""
    segments: list[str] = []
    current: list[str] = []
    for m in _UNQUOTED_PIECE.finditer(raw):
        hexdigits, ws, special, keyword, star, plain = m.groups()
        if star is not None:
            segments.append("".join(current))
            current = []
        elif plain is not None:
            current.append(plain)
        elif hexdigits is not None:
            current.append(chr(int(hexdigits, 16)))
        elif ws is not None:
            current.append(_WHITESPACE_ESCAPES[ws])
        else:
            current.append(special if special is not None else keyword)
    segments.append("".join(current))
    # Kibana trims the decoded value, escaped whitespace included.
    if len(segments) == 1:
        text = segments[0].strip()
        if text in ("true", "false"):
            return ast.Literal(text == "true")
        if text == "null":
            return ast.Literal(None)
        return ast.Literal(text)
    segments[0] = segments[0].lstrip()
    segments[-1] = segments[-1].rstrip()
    return ast.Wildcard(tuple(segments))


def _decode_quoted(raw: str) -> ast.Literal:
    out: list[str] = []
    for m in _QUOTED_PIECE.finditer(raw[1:-1]):
        hexdigits, ws, escaped, plain = m.groups()
        if plain is not None:
            out.append(plain)
        elif hexdigits is not None:
            out.append(chr(int(hexdigits, 16)))
        elif ws is not None:
            out.append(_WHITESPACE_ESCAPES[ws])
        else:
            out.append(escaped)
    return ast.Literal("".join(out), quoted=True)


def _keyword(token: Token) -> Token:
    kind = _KEYWORDS.get(token.value.lower())
    return Token.new_borrow_pos(kind, token.value, token) if kind else token


def _combine(cls, items):
    """Collapse a one-item group and flatten same-operator children."""
    if len(items) == 1:
        return items[0]
    flat = []
    for item in items:
        flat.extend(item.items if isinstance(item, cls) else (item,))
    return cls(tuple(flat))


def _negate(nots: int, item):
    return ast.Not(item) if nots % 2 else item


def _negate_value(nots: int, item):
    return ast.ValueNot(item) if nots % 2 else item


class _Builder(Transformer):
    """Builds AST nodes as the LALR parser reduces; tokens are filtered by type."""

    def start(self, children):
        return children[0] if children else ast.MatchAll()

    def or_query(self, children):
        return _combine(ast.Or, [c for c in children if not isinstance(c, Token)])

    def and_query(self, children):
        return _combine(ast.And, [c for c in children if not isinstance(c, Token)])

    def not_query(self, children):
        return _negate(len(children) - 1, children[-1])

    def group(self, children):
        return children[0]

    def nested(self, children):
        return ast.Nested(children[0], children[1])

    def field_value(self, children):
        return ast.FieldMatch(children[0], children[1])

    def field_range(self, children):
        field, op, value = children
        if isinstance(value, ast.Wildcard):
            value = ast.Literal("*".join(value.segments))
        return ast.Range(field, str(op), value)

    def free_text(self, children):
        return ast.FreeText(children[0])

    def value_or(self, children):
        return _combine(ast.ValueOr, [c for c in children if not isinstance(c, Token)])

    def value_and(self, children):
        return _combine(ast.ValueAnd, [c for c in children if not isinstance(c, Token)])

    def value_not(self, children):
        return _negate_value(len(children) - 1, children[-1])

    def value_group(self, children):
        return children[0]

    def field(self, children):
        value = children[0]
        name = "*".join(value.segments) if isinstance(value, ast.Wildcard) else value.text
        if len(name) > MAX_FIELD_LENGTH or name.count(".") >= MAX_FIELD_PARTS:
            text = _source.get()
            raise KqlSyntaxError(
                f"field name longer than {MAX_FIELD_LENGTH} characters or "
                f"{MAX_FIELD_PARTS} dotted parts",
                text,
                max(0, text.find(name[:40])),
            )
        if isinstance(value, ast.Wildcard):
            return ast.Field(name, value.segments)
        return ast.Field(name)

    def literal(self, children):
        first = children[0]
        if first.type == "QUOTED":
            return _decode_quoted(first.value)
        raw = _source.get()[first.start_pos : children[-1].end_pos]
        return _decode_unquoted(raw)


@lru_cache(maxsize=1)
def _parser() -> Lark:
    grammar = (Path(__file__).parent / "kql.lark").read_text(encoding="utf-8")
    return Lark(
        grammar,
        parser="lalr",
        lexer="basic",
        transformer=_Builder(),
        lexer_callbacks={"WORD": _keyword},
        maybe_placeholders=False,
    )


def _check_depth(text: str) -> None:
    depth = 0
    for m in _DEPTH_SCAN.finditer(text):
        ch = m.group()
        if ch in "({":
            depth += 1
            if depth > MAX_DEPTH:
                raise KqlSyntaxError(
                    f"query nested too deeply (more than {MAX_DEPTH} levels)", text, m.start()
                )
        elif ch in ")}":
            depth = max(0, depth - 1)


def _describe(token: Token) -> str:
    if token.type == "$END":
        return "end of query"
    return _TOKEN_NAMES.get(token.type, repr(token.value))


def _syntax_error(text: str, err: UnexpectedInput) -> KqlSyntaxError:
    if isinstance(err, UnexpectedCharacters):
        pos = err.pos_in_stream
        ch = text[pos] if pos < len(text) else ""
        if ch == '"':
            reason = "unterminated quoted string"
        elif ch == "\\":
            reason = "invalid escape sequence"
        else:
            reason = f"unexpected character {ch!r}"
        return KqlSyntaxError(reason, text, pos)
    if isinstance(err, UnexpectedToken):
        token = err.token
        pos = len(text) if token.type == "$END" else token.start_pos
        expected = sorted({_TOKEN_NAMES.get(t, t) for t in err.expected if t in _TOKEN_NAMES})
        reason = f"unexpected {_describe(token)}"
        if expected:
            reason += f", expected {' or '.join(expected)}"
        return KqlSyntaxError(reason, text, pos)
    return KqlSyntaxError("unexpected end of query", text, len(text))


def parse(text: str) -> ast.Query:
    """Parse KQL ``text`` into its syntax tree.

    An empty or whitespace-only query is :class:`~consumer.kql.ast.MatchAll`. Raises
    :class:`~consumer.errors.KqlSyntaxError` (with line, column and caret) on any error.
    """
    if not isinstance(text, str):
        raise TypeError("KQL query must be a str")
    if len(text) > MAX_QUERY_LENGTH:
        raise KqlSyntaxError(
            f"query longer than {MAX_QUERY_LENGTH} characters", text, MAX_QUERY_LENGTH
        )
    _check_depth(text)
    reset = _source.set(text)
    try:
        return _parser().parse(text)
    except UnexpectedInput as err:
        raise _syntax_error(text, err) from None
    except LarkError as err:
        raise KqlSyntaxError(f"invalid query ({err.__class__.__name__})", text, 0) from None
    finally:
        _source.reset(reset)
