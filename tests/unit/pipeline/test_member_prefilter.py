"""The member skips what no rule can match, and still dead-letters what it cannot read."""

from __future__ import annotations

import json

from consumer.codecs import encode_event_avro
from consumer.generator import generate_events
from consumer.pipeline import Member
from consumer.pipeline.member import AVRO_SAMPLE
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
    assert len(harness.producer.take(harness.member._matches)) == 3


def test_one_avro_record_in_the_sample_is_decoded_so_a_wrong_schema_shows() -> None:
    harness = Harness(seed_rule())
    # Well framed (known schema id) but not a record of that schema.
    wrong = [b"\x00\x00\x00\x00\x01" + b"\x06abc" * 40 for _ in range(2 * AVRO_SAMPLE)]
    harness.feed(wrong)
    dead = harness.producer.take(harness.member.settings.dead_letter_topic)
    assert len(dead) == 2  # offsets 0 and AVRO_SAMPLE
    assert _value(harness, "events_skipped_total", topic=INPUT) == 2 * AVRO_SAMPLE - 2


def test_prefilter_setting_decides_whether_the_member_filters() -> None:
    def member(prefilter: str) -> Member:
        settings = Settings(prefilter=prefilter, input_topics=(INPUT,), instance_id="unit")
        return Member(settings, [seed_rule()])

    assert member("on").prefilter.enabled
    assert not member("off").prefilter.enabled


def test_prefilter_off_decodes_everything() -> None:
    harness = Harness(seed_rule())
    harness.member.prefilter = Prefilter([seed_rule()], enabled=False)  # --prefilter off
    good = [encode_event_avro(e, confluent_schema_id=1, drop_unknown=True)
            for e in generate_events(10, match_every=None)]
    harness.feed(good)
    assert _value(harness, "events_skipped_total", topic=INPUT) == 0
    assert _value(harness, "events_decoded_total", topic=INPUT) == 10
