"""The prefilter is sound: a record it skips matches no rule through the full decode path."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.codecs import default_codec, encode_event_avro
from consumer.detection import Detector
from consumer.generator import generate_events, labeled_events
from consumer.prefilter import Prefilter
from consumer.rules import builtin_rules_path, load_rules
from consumer.rules.model import Rule

SEED = load_rules([builtin_rules_path()]).rules
CASES = [c.event for c in labeled_events().values()]


def _rule(query: str, rule_id: str = "r") -> Rule:
    return Rule(
        rule_id=rule_id,
        name="n",
        description="",
        type="query",
        language="kuery",
        query=query,
        severity="low",
        risk_score=1,
    )


def _matches(rules, raw: bytes) -> bool:
    event = default_codec().decode(raw)
    return bool(Detector(rules).matching_rules(event))


def test_seed_prefilter_decodes_attacks_and_skips_benign_events() -> None:
    prefilter = Prefilter(SEED)
    assert prefilter.enabled
    assert b"EndpointSecurity.kext" in prefilter.needles
    for event in CASES:
        if _matches(SEED, json.dumps(event).encode()):
            assert prefilter.may_match(json.dumps(event).encode())
    benign = [json.dumps(e).encode() for e in generate_events(2000, match_every=None)]
    skipped = sum(not prefilter.may_match(v) for v in benign)
    assert skipped > 0.95 * len(benign)


def test_escapes_that_can_hide_a_literal_force_a_decode() -> None:
    prefilter = Prefilter(SEED)
    attack = next(c.event for c in labeled_events().values() if c.matches)
    hidden = json.dumps(attack).replace("kextunload", "kext\\u0075nload").encode()
    assert _matches(SEED, hidden)
    assert prefilter.may_match(hidden)
    slashes = json.dumps(attack).replace("/", "\\/").encode()
    assert prefilter.may_match(slashes)


def test_an_escaped_slash_cannot_hide_a_literal_with_a_slash() -> None:
    rules = [_rule('process.args:"/sbin/kextunload"')]
    raw = b'{"process": {"args": ["\\/sbin\\/kextunload"]}}'
    assert _matches(rules, raw)
    assert Prefilter(rules).may_match(raw)


def test_a_rule_without_literals_runs_on_every_record_and_the_others_stay_selective() -> None:
    prefilter = Prefilter([*SEED, _rule("process.pid > 100", "other")])
    assert prefilter.enabled
    assert prefilter.select(b'{"process": {"pid": 7}}') == (1,)
    attack = json.dumps(next(c.event for c in labeled_events().values() if c.matches)).encode()
    assert prefilter.select(attack) == (0, 1)


def test_prefilter_off_selects_every_rule() -> None:
    prefilter = Prefilter(SEED, enabled=False)
    assert not prefilter.enabled
    assert prefilter.select(b"{}") == (0,)


def test_many_rules_share_one_scan_that_selects_only_their_owners() -> None:
    rules = [_rule(f"process.name:tool{i}", f"r{i}") for i in range(50)]
    prefilter = Prefilter(rules)
    assert prefilter.select(b'{"process":{"name":"tool42"}}') == (4, 42)  # tool4 is in tool42
    assert prefilter.select(b'{"process":{"name":"bash"}}') == ()
    assert prefilter.select(b'{"process":{"name":"b\\u0061sh"}}') == tuple(range(50))


_text = st.text(
    alphabet=st.sampled_from(list('kextunload"\\/ EndpointSecurity.kxé\t')), max_size=12
)
_values = st.one_of(
    _text,
    st.sampled_from(
        [
            "kextunload",
            "EndpointSecurity.kext",
            "/System/Library/Extensions/EndpointSecurity.kext",
            "start",
            "process",
            "KEXTUNLOAD",
            "x/y",
            'a"b',
            "p\\q",
            'kext"unload',
        ]
    ),
)


@st.composite
def _events(draw):
    base = draw(st.sampled_from(CASES))
    event = json.loads(json.dumps(base))
    process = event.get("process")
    if isinstance(process, dict):
        process["name"] = draw(_values)
        process["args"] = draw(st.lists(_values, max_size=3))
    return event


@settings(max_examples=300, deadline=None)
@given(
    event=_events(),
    ascii_only=st.booleans(),
    escape_slashes=st.booleans(),
    queries=st.sampled_from(
        [
            None,
            'process.name:kextunload and process.args:"a\\"b"',
            "process.name:*unload and event.category:process",
            'process.args:("x/y" or "p\\\\q") or process.name:"kext\\"unload"',
        ]
    ),
)
def test_prefilter_never_leaves_out_a_rule_that_matches(event, ascii_only, escape_slashes,
                                                         queries) -> None:
    rules = SEED if queries is None else [*SEED, _rule(queries), _rule("process.pid > 1", "p")]
    text = json.dumps(event, ensure_ascii=ascii_only)
    if escape_slashes:
        text = text.replace("/", "\\/")
    prefilter = Prefilter(rules)
    detector = Detector(rules)
    for raw in (text.encode("utf-8"), encode_event_avro(event, confluent_schema_id=1,
                                                        drop_unknown=True)):
        matched = detector.matching_rules(default_codec().decode(raw))
        selected = prefilter.select(raw)
        assert {rules.index(r) for r in matched} <= set(selected), raw
