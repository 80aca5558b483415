"""Parsing: the tree, syntax errors with positions, and resistance to hostile input."""

from __future__ import annotations

import contextlib
import time

import pytest

from consumer.errors import KqlSyntaxError, RuleError
from consumer.kql import ast, parse
from consumer.kql.parser import MAX_DEPTH

SEED = (
    "event.category:process and event.type:(start or process_started) and\n"
    ' process.name:kextunload and process.args:("/System/Library/Extensions/EndpointSecurity.kext"'
    ' or "EndpointSecurity.kext")'
)


def test_seed_tree() -> None:
    tree = parse(SEED)
    assert isinstance(tree, ast.And)
    assert [item.field.name for item in tree.items] == [
        "event.category",
        "event.type",
        "process.name",
        "process.args",
    ]
    assert tree.items[2].value == ast.Literal("kextunload")
    assert tree.items[3].value == ast.ValueOr(
        (
            ast.Literal("/System/Library/Extensions/EndpointSecurity.kext", quoted=True),
            ast.Literal("EndpointSecurity.kext", quoted=True),
        )
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ast.MatchAll()),
        ("   \n", ast.MatchAll()),
        ("f: foo bar ", ast.FieldMatch(ast.Field("f"), ast.Literal("foo bar"))),
        ("f:true", ast.FieldMatch(ast.Field("f"), ast.Literal(True))),
        ("f:FALSE", ast.FieldMatch(ast.Field("f"), ast.Literal("FALSE"))),
        ("f:null", ast.FieldMatch(ast.Field("f"), ast.Literal(None))),
        ('f:"true"', ast.FieldMatch(ast.Field("f"), ast.Literal("true", quoted=True))),
        ("f:a*b", ast.FieldMatch(ast.Field("f"), ast.Wildcard(("a", "b")))),
        ("f:*", ast.FieldMatch(ast.Field("f"), ast.Wildcard(("", "")))),
        (r"f:a\*b", ast.FieldMatch(ast.Field("f"), ast.Literal("a*b"))),
        ('f:"a*b"', ast.FieldMatch(ast.Field("f"), ast.Literal("a*b", quoted=True))),
        (r"f:x\not", ast.FieldMatch(ast.Field("f"), ast.Literal("x\not"))),
        (r"f:\Not", ast.FieldMatch(ast.Field("f"), ast.Literal("Not"))),
        ("p.*:x", ast.FieldMatch(ast.Field("p.*", ("p.", "")), ast.Literal("x"))),
        ('"a b":x', ast.FieldMatch(ast.Field("a b"), ast.Literal("x"))),
        ("f >= 5", ast.Range(ast.Field("f"), ">=", ast.Literal("5"))),
        ("f<now-1d/d", ast.Range(ast.Field("f"), "<", ast.Literal("now-1d/d"))),
        ("hello world", ast.FreeText(ast.Literal("hello world"))),
        ("NOT a", ast.Not(ast.FreeText(ast.Literal("a")))),
        ("not not a", ast.FreeText(ast.Literal("a"))),
        (
            "a or b and c",
            ast.Or(
                (
                    ast.FreeText(ast.Literal("a")),
                    ast.And((ast.FreeText(ast.Literal("b")), ast.FreeText(ast.Literal("c")))),
                )
            ),
        ),
        (
            "f:{ g:1 }",
            ast.Nested(ast.Field("f"), ast.FieldMatch(ast.Field("g"), ast.Literal("1"))),
        ),
        (
            "f:(a and not b)",
            ast.FieldMatch(
                ast.Field("f"),
                ast.ValueAnd((ast.Literal("a"), ast.ValueNot(ast.Literal("b")))),
            ),
        ),
    ],
)
def test_parse(text: str, expected: ast.Query) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("text", "line", "column", "reason"),
    [
        ("f:", 1, 3, "unexpected end of query"),
        ("a and", 1, 6, "unexpected end of query"),
        ('f:"abc', 1, 3, "unterminated quoted string"),
        ("f:c\\d", 1, 4, "invalid escape sequence"),
        ("f:(a", 1, 5, "unexpected end of query"),
        ("a:b c:d", 1, 6, "unexpected ':'"),
        ("event.category:process and\n  process.name:)", 2, 16, "unexpected ')'"),
        ("a and\n\n or b", 3, 2, "unexpected 'or'"),
        ("f:{}", 1, 4, "unexpected '}'"),
        ("f:()", 1, 4, "unexpected ')'"),
        ("f > (a)", 1, 5, "unexpected '('"),
        ("f:a)", 1, 4, "unexpected ')'"),
    ],
)
def test_syntax_error_position(text: str, line: int, column: int, reason: str) -> None:
    with pytest.raises(KqlSyntaxError) as info:
        parse(text)
    err = info.value
    assert isinstance(err, RuleError)
    assert (err.line, err.column) == (line, column)
    assert err.reason.startswith(reason)
    message_lines = str(err).split("\n")
    assert message_lines[0].endswith(f"at line {line}, column {column}")
    assert message_lines[1] == text.split("\n")[line - 1]
    assert message_lines[2] == " " * (column - 1) + "^"


def test_nesting_is_capped() -> None:
    text = "(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1)
    with pytest.raises(KqlSyntaxError, match="nested too deeply") as info:
        parse(text)
    assert info.value.column == MAX_DEPTH + 1
    assert parse("(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH) == ast.FreeText(ast.Literal("a"))


def test_brackets_in_quotes_do_not_count_as_nesting() -> None:
    assert parse('f:"' + "(" * 500 + '"') == ast.FieldMatch(
        ast.Field("f"), ast.Literal("(" * 500, quoted=True)
    )


@pytest.mark.parametrize(
    "text",
    [
        "a and " * 20000,
        "(a or b) and " * 8000 + "c",
        "f:" + "x" * 100000,
        '"' + "\\\\" * 50000,
        '"' + "\\" * 100000,
        "\\" * 100001,
        "f:(" + "a or " * 20000 + "b)",
        "not " * 30000 + "a",
        "a " * 50000,
        "*" * 100000,
        "a:" * 50000,
        "(" * 100000,
        ")" * 100000,
        "x:{" * 50000,
        "f:" + "a*" * 50000,
        "f:" + "\\u00" * 25000,
    ],
)
def test_large_inputs_are_fast(text: str) -> None:
    start = time.perf_counter()
    with contextlib.suppress(KqlSyntaxError):
        parse(text)
    assert time.perf_counter() - start < 1.0


def test_non_string_query_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        parse(b"a:b")  # type: ignore[arg-type]
