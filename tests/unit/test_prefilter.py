"""The prefilter is sound: a record it skips matches no rule through the full decode path."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.codecs import (
    DecodeError,
    EventCodec,
    default_codec,
    default_schema_dir,
    encode_event_avro,
)
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
    assert b'EndpointSecurity.kext"' in prefilter.needles  # a whole JSON value's end
    for event in CASES:
        if _matches(SEED, json.dumps(event).encode()):
            assert prefilter.select(json.dumps(event).encode())
    benign = [json.dumps(e).encode() for e in generate_events(2000, match_every=None)]
    skipped = sum(not prefilter.select(v) for v in benign)
    assert skipped > 0.95 * len(benign)


def test_escapes_that_can_hide_a_literal_force_a_decode() -> None:
    prefilter = Prefilter(SEED)
    attack = next(c.event for c in labeled_events().values() if c.matches)
    hidden = json.dumps(attack).replace("kextunload", "kext\\u0075nload").encode()
    assert _matches(SEED, hidden)
    assert prefilter.select(hidden)
    slashes = json.dumps(attack).replace("/", "\\/").encode()
    assert prefilter.select(slashes)


def test_an_escaped_slash_cannot_hide_a_literal_with_a_slash() -> None:
    rules = [_rule('process.args:"/sbin/kextunload"')]
    raw = b'{"process": {"args": ["\\/sbin\\/kextunload"]}}'
    assert _matches(rules, raw)
    assert Prefilter(rules).select(raw)


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
    assert prefilter.select(b'{"process":{"name":"tool42"}}') == (42,)  # whole values only
    assert prefilter.select(b'{"process":{"name":"tool4 x"}}') == ()
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
def test_prefilter_never_leaves_out_a_rule_that_matches(
    event, ascii_only, escape_slashes, queries
) -> None:
    rules = SEED if queries is None else [*SEED, _rule(queries), _rule("process.pid > 1", "p")]
    text = json.dumps(event, ensure_ascii=ascii_only)
    if escape_slashes:
        text = text.replace("/", "\\/")
    prefilter = Prefilter(rules)
    detector = Detector(rules)
    for raw in (
        text.encode("utf-8"),
        encode_event_avro(event, confluent_schema_id=1, drop_unknown=True),
    ):
        matched = detector.matching_rules(default_codec().decode(raw))
        selected = prefilter.select(raw)
        assert {rules.index(r) for r in matched} <= set(selected), raw


def test_an_escape_forces_every_rule_even_where_another_rules_literal_is_found() -> None:
    rules = [_rule("process.name:bash", "a"), _rule("process.name:kextunload", "b")]
    raw = b'{"process":{"name":"kext\\u0075nload","args":["bash"]}}'
    assert _matches(rules[1:], raw)
    assert Prefilter(rules).select(raw) == (0, 1)


# More anchors than single scans are run for: one Hyperscan pass finds them.
_MANY = [_rule(f"process.name:tool{i}", f"r{i}") for i in range(20)]
_JSON_RECORDS = [
    b'{"url":{"path":"/x"},"process":{"name":"bash"}}',
    b'{"process":{"name":"tool3"}}',
    b'{"process":{"name":"tool11","args":["tool2"]}}',
    b'{"process":{"name":"bash"}}',
    b'{"process":{"name":"t\\u006fol1"}}',
    b'{"process.pid":7}',
    b'{"process.parent.name":"launchd","process":{"name":"tool3"}}',
    '{"process":{"name":"tool5","title":"caf\u00e9"}}'.encode(),
    b'{"event":{"category":"process"},"process":{"name":"tool3","args":["tool2"]}}',
    b'{"event":{"category":"process"},"process":{"name":"tool3","args":["tool9"]}}',
]
_FRAMED = {"confluent_schema_id": 1}
_AVRO_RECORDS = [
    encode_event_avro(event, confluent_schema_id=1, drop_unknown=True)
    for event in (
        {"@timestamp": "2024-01-01T00:00:00Z", "process": {"name": "tool3", "pid": 9}},
        {"@timestamp": "2024-01-01T00:00:00Z", "url": {"path": "/x"}, "process": {"name": "/x"}},
        {"@timestamp": "2024-01-01T00:00:00Z", "process": {"name": "kextunload", "args": ["-b"]}},
    )
]
_OTHER_RECORDS = [
    b"",
    b"tool",
    b"7",
    b'  {"process":{"name":"tool3"}}',
    *_AVRO_RECORDS,
]
_RULE_SETS = [
    _MANY,
    SEED,
    [*SEED, _rule("process.pid > 1", "p")],
    # Dotted keys are nested when decoded: "process.parent.name" makes process.parent.
    [_rule("process.parent:* and process.name:tool3", "o")],
    [_rule("process.parent.name:* and process.name:tool3", "o")],
    # Confirmed past the anchor, record by record or (in many records) by batch scans.
    [_rule("event.category:process and process.name:tool3 and process.args:tool2", "c")],
    # Fields the Avro reader schema has no place for: such a rule matches JSON only.
    [*SEED, _rule("url.path:*", "u"), _rule('url.path:"/x" or process.name:tool3', "o")],
]


@settings(max_examples=200, deadline=None)
@given(
    # Past 64 records holding a rule's anchor, its other literals are found by batch scans.
    batch=st.lists(st.sampled_from(_JSON_RECORDS), max_size=160),
    rules=st.sampled_from(_RULE_SETS),
)
def test_one_scan_of_a_batch_selects_for_each_record_what_it_selects_alone(batch, rules) -> None:
    prefilter = Prefilter(rules)
    # Scanned first: a batch of 100 records or more is measured, which may move anchors.
    scanned = prefilter.scan(batch)
    alone = [(i, prefilter.select(v)) for i, v in enumerate(batch)]
    assert scanned == [(i, chosen) for i, chosen in alone if chosen]


@settings(max_examples=200, deadline=None)
@given(
    # The first batch of 100 records or more is measured: the anchors then follow it.
    measured=st.lists(st.sampled_from(_JSON_RECORDS + _OTHER_RECORDS), max_size=160),
    batch=st.one_of(
        st.lists(st.sampled_from(_JSON_RECORDS + _OTHER_RECORDS), max_size=160),
        st.lists(st.sampled_from(_AVRO_RECORDS), max_size=160),
    ),
    rules=st.sampled_from(_RULE_SETS),
    fmt=st.sampled_from(["auto", "json", "avro"]),
)
def test_a_mixed_batch_leaves_out_no_rule_a_record_matches(measured, batch, rules, fmt) -> None:
    codec = EventCodec.from_schema_dir(default_schema_dir(), format=fmt)
    prefilter = Prefilter(rules, format=fmt, avro_fields=codec.avro_fields())
    prefilter.scan(measured)
    selected = dict(prefilter.scan(batch))
    detector = Detector(rules)
    for i, raw in enumerate(batch):
        try:
            event = codec.decode(raw)
        except DecodeError:
            continue
        matched = {rules.index(rule) for rule in detector.matching_rules(event)}
        assert matched <= set(selected.get(i, ())), raw


def test_whole_values_keys_and_avro_lengths_are_what_is_looked_for() -> None:
    rules = [
        _rule("process.name:sh", "a"),
        _rule("event.category:process and powershell.file.script_block_text:Get-Clipboard", "b"),
    ]
    prefilter = Prefilter(rules)
    assert prefilter.select(b'{"process":{"name":"bash"}}') == ()
    assert prefilter.select(b'{"process":{"name":"sh"}}') == (0,)
    assert prefilter.select(b'{"event":{"category":["process"]}}') == ()
    process = b'"event":{"category":["process"]}'
    assert prefilter.select(b'{"powershell.file.script_block_text":"x",' + process + b"}") == (1,)
    assert prefilter.select(
        b'{"powershell":{"file":{"script_block_text":"x"}},' + process + b"}"
    ) == (1,)
    # Its anchor (the rare key) found, but not its next required literal: not run.
    assert prefilter.select(b'{"powershell.file.script_block_text":"x"}') == ()
    avro = encode_event_avro({"@timestamp": "t", "process": {"name": "sh"}}, confluent_schema_id=1)
    assert b"\x04sh" in avro
    assert prefilter.select(avro) == (0,)
    # A short value inside a longer string is no whole value.
    bash = encode_event_avro({"@timestamp": "t", "process": {"name": "bash"}}, **_FRAMED)
    assert prefilter.select(bash) == Prefilter(rules, format="avro").select(bash) == ()
    # No keys in Avro: there rule b is anchored on its weak value, event.category:process.
    avro_b = encode_event_avro(
        {"@timestamp": "t", "event": {"category": ["process"]}}, confluent_schema_id=1
    )
    assert Prefilter(rules, format="avro").select(avro_b) == (1,)


def test_a_field_given_by_a_dotted_key_keeps_its_rule() -> None:
    rules = [_rule("process.parent.name:* and process.name:tool3", "o")]
    raw = b'{"process.parent.name":"launchd","process":{"name":"tool3"}}'
    assert _matches(rules, raw)
    assert Prefilter(rules).select(raw) == (0,)


def test_a_rule_held_by_many_records_is_confirmed_by_batch_scans_alike() -> None:
    rule = _rule("event.category:process and process.name:tool3 and process.args:tool2", "c")
    prefilter = Prefilter([rule])
    both, anchor_only = _JSON_RECORDS[-2], _JSON_RECORDS[-1]
    batch = [anchor_only, both] * 100  # 200 records hold the anchor: scans confirm it
    assert prefilter.scan(batch) == [(i, (0,)) for i in range(1, 200, 2)]
    assert prefilter.scan(batch[:6]) == [(1, (0,)), (3, (0,)), (5, (0,))]


def test_escapes_are_found_however_many_backslashes_come_before_them() -> None:
    rules = [_rule("process.name:bash", "a"), _rule("process.name:kextunload", "b")]
    hidden = b'{"process":{"name":"kext\\u0075nload"}}'
    for backslashes in (0, 1, 63, 64, 65, 500):  # walked one by one, then scanned for
        quoted = b'{"process":{"args":["' + b'\\"' * backslashes + b'"]}}'
        batch = [quoted, hidden, quoted]
        assert Prefilter(rules).scan(batch) == [(1, (0, 1))], backslashes


def test_an_escaped_backslash_before_a_u_is_no_escape_when_walked() -> None:
    rules = [_rule("process.name:kextunload", "b")]
    assert Prefilter(rules).select(b'{"process":{"name":"C:\\\\users"}}') == ()
    assert Prefilter(rules).select(b'{"process":{"name":"\\\\\\u006b"}}') == (0,)


def test_a_rule_is_anchored_on_the_literal_its_stream_holds_least() -> None:
    rules = [_rule("event.kind:alert and event.module:(endpoint and not endgame)", "a")]
    prefilter = Prefilter(rules, format="json")
    assert b'endpoint"' in prefilter.needles  # the query's guess: the longer value
    event = b'{"event":{"kind":"event","module":"endpoint"},"process":{"name":"ls"}}'
    alert = b'{"event":{"kind":"alert","module":"endpoint"}}'
    assert prefilter.scan([event] * 99 + [alert]) == [(99, (0,))]
    # Measured on that batch: "endpoint" is on every record, "alert" on one.
    assert prefilter.needles == (b'alert"',)
    assert prefilter.scan([event] * 3 + [alert]) == [(3, (0,))]


def test_a_literal_on_every_record_confirms_no_rule_and_a_rare_one_still_does() -> None:
    rules = [_rule("event.category:process and process.name:kextunload and process.args:kx")]
    prefilter = Prefilter(rules, format="json")

    def record(name: str, args: str, **event: str) -> bytes:
        return json.dumps({"event": event, "process": {"name": name, "args": [args]}}).encode()

    stream = [record("ls", "-l", category="process")] * 99
    assert prefilter.scan([*stream, record("kextunload", "kx", category="process")]) == [(99, (0,))]
    # No event.category, so no match: left out while the category key (or "process")
    # confirmed the rule. Both were on every measured record: now neither does, and
    # the record is decoded. The rare literals still anchor and confirm the rule: a
    # record without either is left out.
    uncategorized = record("kextunload", "kx", kind="event")
    without_rare = [record("ls", "kx", category="process"), record("kextunload", "-l")]
    assert prefilter.scan([uncategorized, *without_rare]) == [(0, (0,))]


def test_a_small_batch_keeps_the_anchors_until_a_large_one_comes() -> None:
    rules = [_rule("event.kind:alert and event.module:endpoint", "a")]
    prefilter = Prefilter(rules, format="json")
    event = b'{"event":{"kind":"event","module":"endpoint"}}'
    prefilter.scan([event] * 99)
    assert b'endpoint"' in prefilter.needles
    prefilter.scan([event] * 100)
    assert prefilter.needles == (b'alert"',)


def test_a_rule_on_fields_the_avro_schema_lacks_runs_on_json_records_only() -> None:
    codec = EventCodec.from_schema_dir(default_schema_dir())
    rules = [*SEED, _rule("url.path:*", "u")]
    prefilter = Prefilter(rules, avro_fields=codec.avro_fields())
    avro = encode_event_avro(
        {"@timestamp": "2024-01-01T00:00:00Z", "url": {"path": "/x"}, "process": {"name": "b"}},
        confluent_schema_id=1,
        drop_unknown=True,
    )
    assert prefilter.scan([avro] * 3) == []  # not run on Avro, not even on every record
    json_record = b'{"url":{"path":"/x"},"process":{"name":"bash"}}'
    assert Detector(rules).matching_rules(codec.decode(json_record)) == [rules[1]]
    assert prefilter.scan([json_record]) == [(0, (1,))]
    # A batch of both is scanned for both spellings: the rule runs on each record.
    assert prefilter.scan([avro, json_record]) == [(0, (1,)), (1, (1,))]
