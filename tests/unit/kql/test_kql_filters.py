"""Kibana rule filters: query-DSL clauses ANDed with the query."""

from __future__ import annotations

import pytest

from consumer.kql import compile_filters

WINDOWS_EVENT = {
    "file": {"path": "C:\\Program Files\\WindowsPowerShell\\Modules\\x.ps1"},
    "process": {"name": "powershell.exe", "args": ["-enc", "abc"]},
}


def _pred(*filters):
    pred = compile_filters(list(filters))
    assert pred is not None
    return pred


def test_negated_case_insensitive_wildcard_excludes_the_path() -> None:
    # As Elastic writes it in TOML: "?:\\\\Program Files\\\\..." is ?:\\Program Files\\...
    # in the wildcard query, where "\\" escapes one backslash.
    pattern = "?:\\\\program files\\\\WindowsPowerShell\\\\Modules\\\\*"
    negated = {
        "meta": {"negate": True},
        "query": {"wildcard": {"file.path": {"value": pattern, "case_insensitive": True}}},
    }
    pred = _pred(negated)
    assert pred(WINDOWS_EVENT) is False
    assert pred({"file": {"path": "C:\\Users\\x.ps1"}}) is True
    # A missing field does not match the wildcard, so its negation holds.
    assert pred({}) is True


def test_wildcard_is_case_sensitive_unless_asked() -> None:
    clause = {"query": {"wildcard": {"process.name": {"value": "POWERSHELL*"}}}}
    assert _pred(clause)(WINDOWS_EVENT) is False
    clause["query"]["wildcard"]["process.name"]["case_insensitive"] = True
    assert _pred(clause)(WINDOWS_EVENT) is True


def test_wildcard_question_mark_is_one_character() -> None:
    pred = _pred({"query": {"wildcard": {"process.name": "powershel?.exe"}}})
    assert pred(WINDOWS_EVENT) is True
    assert pred({"process": {"name": "powershell_.exe"}}) is False


def test_legacy_exists_filter_and_disabled_filters() -> None:
    exists = {"exists": {"field": "user_agent.original"}, "meta": {"negate": True}}
    pred = _pred(exists)
    assert pred({"user_agent": {"original": "curl"}}) is False
    assert pred({"user_agent.original": "curl"}) is False
    assert pred({}) is True
    assert compile_filters([{"meta": {"disabled": True}, "exists": {"field": "a"}}]) is None


def test_term_match_phrase_terms_and_bool() -> None:
    assert _pred({"query": {"match_phrase": {"process.name": "powershell.exe"}}})(WINDOWS_EVENT)
    assert _pred({"query": {"term": {"process.args": {"value": "abc"}}}})(WINDOWS_EVENT)
    assert not _pred({"query": {"terms": {"process.name": ["cmd.exe", "wscript.exe"]}}})(
        WINDOWS_EVENT
    )
    either = {
        "query": {
            "bool": {
                "should": [
                    {"term": {"process.name": "cmd.exe"}},
                    {"term": {"process.args": "-enc"}},
                ]
            }
        }
    }
    assert _pred(either)(WINDOWS_EVENT)
    neither = {"query": {"bool": {"must_not": [{"term": {"process.args": "-enc"}}]}}}
    assert not _pred(neither)(WINDOWS_EVENT)


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ([{"query": {"script": {}}}], "filters[0]: query clause 'script' is not supported"),
        ([{"query": {"range": {"a": {"gt": 1}}}}], "query clause 'range' is not supported"),
        (["x"], "filters[0] is not an object"),
        ([{"query": {"term": {"a": 1, "b": 2}}}], "term must name exactly one field"),
        ([{"query": {"bool": {"boost": 1}}}], "bool option 'boost' is not supported"),
    ],
)
def test_unsupported_filters_are_refused_with_the_clause(filters, message) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        compile_filters(filters)
