"""The member skips what no rule can match, and still dead-letters what it cannot read."""

from __future__ import annotations

import json
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.codecs import encode_event_avro
from consumer.codecs.codec import AVRO_SAMPLE
from consumer.generator import generate_events
from consumer.pipeline import Member
from consumer.prefilter import Prefilter
from consumer.settings import Settings

from ..observability.member_harness import INPUT, Harness, attacks, seed_rule


def _value(harness: Harness, name: str, **labels: str) -> float:
    return harness.registry.get_sample_value(f"detection_consumer_{name}", labels) or 0.0


def test_benign_json_is_skipped_attacks_and_poison_are_not() -> None:
    harness = Harness(seed_rule())
    benign = [json.dumps(e).encode() for e in generate_events(200, match_every=None)]
    poison = [b'{"event": {"id": "trunc', b"[1, 2]", b'{"m": "\xff"}']
    harness.feed(benign + attacks(3) + poison)
    assert _value(harness, "events_consumed_total", topic=INPUT) == 206
    assert _value(harness, "events_skipped_total", topic=INPUT) == 200
    assert _value(harness, "events_decoded_total", topic=INPUT) == 3
    assert len(harness.producer.take(harness.member.settings.dead_letter_topic)) == 3
    assert len(harness.candidates()) == 3


def test_one_avro_record_in_the_sample_is_decoded_so_a_wrong_schema_shows() -> None:
    harness = Harness(seed_rule())
    # Well framed (known schema id) but not a record of that schema.
    wrong = [b"\x00\x00\x00\x00\x01" + b"\x06abc" * 40 for _ in range(2 * AVRO_SAMPLE)]
    harness.feed(wrong)
    dead = harness.producer.take(harness.member.settings.dead_letter_topic)
    assert len(dead) == 2  # the first record read, and the AVRO_SAMPLE-th after it
    assert _value(harness, "events_skipped_total", topic=INPUT) == 2 * AVRO_SAMPLE - 2


def test_prefilter_setting_decides_whether_the_member_filters() -> None:
    def member(prefilter: str) -> Member:
        settings = Settings(prefilter=prefilter, input_topics=(INPUT,), instance_id="unit")
        return Member(settings, [seed_rule()])

    assert member("on").prefilter.enabled
    assert not member("off").prefilter.enabled


def test_avro_events_are_not_decoded_for_a_rule_on_fields_their_schema_lacks() -> None:
    # url.path has no place in the process-event schema: no Avro event can hold it.
    harness = Harness(replace(seed_rule(), query="url.path:* and process.name:*"))
    avro = [
        encode_event_avro(e, confluent_schema_id=1, drop_unknown=True)
        for e in generate_events(50, match_every=None)
    ]
    harness.feed(avro)
    assert _value(harness, "events_decoded_total", topic=INPUT) == 1  # the sample only
    assert _value(harness, "events_skipped_total", topic=INPUT) == 49
    harness.feed([b'{"url":{"path":"/x"},"process":{"name":"curl"}}'])  # JSON can
    assert len(harness.candidates()) == 1


def test_prefilter_off_decodes_everything() -> None:
    harness = Harness(seed_rule())
    harness.member.prefilter = Prefilter([seed_rule()], enabled=False)  # --prefilter off
    good = [
        encode_event_avro(e, confluent_schema_id=1, drop_unknown=True)
        for e in generate_events(10, match_every=None)
    ]
    harness.feed(good)
    assert _value(harness, "events_skipped_total", topic=INPUT) == 0
    assert _value(harness, "events_decoded_total", topic=INPUT) == 10


def test_an_avro_enum_turns_the_prefilter_off_and_its_attack_still_matches(tmp_path) -> None:
    # An enum stores its symbol as an index: the byte scan cannot see "kextunload".
    schema = {
        "type": "record", "name": "Tiny", "fields": [
            {"name": "timestamp", "type": "string"},
            {"name": "event", "type": {"type": "record", "name": "Event", "fields": [
                {"name": "category", "type": {"type": "array", "items": "string"}},
                {"name": "type", "type": {"type": "array", "items": "string"}}]}},
            {"name": "process", "type": {"type": "record", "name": "Process", "fields": [
                {"name": "name", "type": {"type": "enum", "name": "Name",
                                          "symbols": ["bash", "kextunload"]}},
                {"name": "args", "type": {"type": "array", "items": "string"}}]}},
        ],
    }  # fmt: skip
    (tmp_path / "tiny.avsc").write_text(json.dumps(schema))
    settings = Settings(
        input_topics=(INPUT,), instance_id="unit", avro_schema_dir=tmp_path,
        avro_reader_schema="tiny", avro_schema_ids={1: "tiny"},
    )  # fmt: skip
    rule = replace(seed_rule(), query="process.name:kextunload")
    member = Member(settings, [rule])
    assert not member.codec.stores_strings_verbatim()
    assert not member.prefilter.enabled
    attack = {
        "timestamp": "2024-01-01T00:01:00Z",
        "event": {"category": ["process"], "type": ["start"]},
        "process": {"name": "kextunload", "args": ["-b"]},
    }
    raw = b"\x00\x00\x00\x00\x01" + fastavro_bytes(schema, attack)
    assert Prefilter([rule]).select(raw) == ()  # what a prefilter left on would do
    event = member.codec.decode(raw)
    assert member.detector.matching_rules(event, member.prefilter.select(raw)) == [rule]


def test_the_bundled_schemas_keep_strings_verbatim() -> None:
    assert Harness(seed_rule()).member.codec.stores_strings_verbatim()


def fastavro_bytes(schema: dict, record: dict) -> bytes:
    import io

    import fastavro

    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), record)
    return out.getvalue()


def test_a_consume_error_in_a_batch_is_counted_and_its_records_still_handled() -> None:
    from confluent_kafka import KafkaError, Message

    harness = Harness(seed_rule())
    error = Message(topic=INPUT, partition=0, error=KafkaError(KafkaError._TRANSPORT, "cut"))
    good = [
        Message(topic=INPUT, partition=0, offset=i, value=v, timestamp=(1, 0))
        for i, v in enumerate(attacks(2))
    ]
    harness.member._process_batch([good[0], error, good[1]])
    assert _value(harness, "kafka_errors_total", error="_TRANSPORT") == 1
    assert len(harness.candidates()) == 2


@settings(max_examples=200)
@given(st.lists(st.integers(0, 3), min_size=1, max_size=30))
def test_the_next_offset_of_each_partition_follows_its_last_record_in_the_batch(
    partitions: list[int],
) -> None:
    from confluent_kafka import Message

    harness = Harness(seed_rule())
    offsets = [100 * p + i for i, p in enumerate(partitions)]
    harness.member._process_batch([
        Message(topic=INPUT, partition=p, offset=o, value=b"{}", timestamp=(1, 0))
        for p, o in zip(partitions, offsets, strict=True)
    ])  # fmt: skip
    last = dict(zip(partitions, offsets, strict=True))
    assert harness.member._pending == {(INPUT, p): o + 1 for p, o in last.items()}


def test_a_tombstone_in_a_batch_is_dead_lettered_as_empty_and_the_rest_handled() -> None:
    from confluent_kafka import Message

    harness = Harness(seed_rule())
    values = [attacks(1)[0], None, b'{"event": {"kind": "event"}}']
    harness.member._process_batch([
        Message(topic=INPUT, partition=0, offset=i, value=v, timestamp=(1, 0))
        for i, v in enumerate(values)
    ])  # fmt: skip
    assert len(harness.producer.take(harness.member.settings.dead_letter_topic)) == 1
    assert _value(harness, "dead_letters_total", reason="empty") == 1
    assert len(harness.candidates()) == 1
    assert _value(harness, "events_consumed_total", topic=INPUT) == 3


def test_a_match_commits_early_only_once_the_member_has_caught_up() -> None:
    import time

    member = Harness(seed_rule()).member
    member._pending[(INPUT, 0)] = 1
    member._last_commit = time.monotonic() - 0.05  # 50 ms ago: past 20, short of 1000
    member._urgent, member._caught_up = False, True
    assert not member._commit_due()
    member._urgent = True
    assert member._commit_due()
    member._caught_up = False  # a backlog waits in the client: throughput first
    assert not member._commit_due()
    member._last_commit = time.monotonic() - 1.0
    assert member._commit_due()


def test_an_early_commit_is_due_counting_from_when_the_last_commit_ended() -> None:
    import time

    member = Harness(seed_rule()).member
    member._commit_transaction = lambda: time.sleep(0.05)  # type: ignore[method-assign]
    member._commit()  # took 50 ms, past the 10 ms an early commit waits
    member._pending[(INPUT, 0)] = 1
    member._urgent, member._caught_up = True, True
    assert not member._commit_due()  # else commits run back to back and the loop lags
    time.sleep(member.settings.alert_commit_ms / 1000)
    assert member._commit_due()
