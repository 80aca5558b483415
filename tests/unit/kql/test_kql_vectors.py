"""The shared (query, event, expected) cases in tests/vectors/kql_cases.toml."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from consumer.kql import compile_query

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "kql_cases.toml"
CASES = tomllib.loads(VECTORS.read_text(encoding="utf-8"))["cases"]


def test_case_names_are_unique() -> None:
    names = [case["name"] for case in CASES]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_vector(case: dict) -> None:
    now = case.get("now")
    predicate = compile_query(case["query"], now=(lambda: now) if now is not None else None)
    assert predicate(json.loads(case["event"])) is case["expected"]
