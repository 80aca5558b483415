"""The window owner's side of a candidate: facts decide, the record is decoded for an alert."""

from __future__ import annotations

import json
from dataclasses import replace

from consumer.codecs import encode_event_avro
from consumer.generator import generate_events
from consumer.pipeline.member import CANDIDATE_RECORD_BYTES
from consumer.pipeline.records import INVALID_CANDIDATE, decode_candidates, encode_candidates

from ..observability.member_harness import START, Harness, attacks, seed_rule


def _alerts(harness: Harness) -> list[dict]:
    return [json.loads(v) for v in harness.producer.take(harness.member.settings.alerts_topic)]


def test_a_candidate_carries_the_record_as_read_and_its_alert_holds_the_event() -> None:
    harness = Harness(seed_rule())
    [value] = attacks(1)
    harness.feed([value])
    [candidate] = harness.producer.take(harness.member._matches)
    [record] = decode_candidates(candidate)
    assert record.value == value
    harness.feed([candidate], topic=harness.member._matches)
    [alert] = _alerts(harness)
    event = json.loads(value)
    assert alert["process"] == event["process"]
    assert alert["kibana.alert.ancestors"][0]["id"] == event["event"]["id"]


def test_a_candidate_written_before_facts_travelled_gives_the_same_alert() -> None:
    values = attacks(2)
    current = Harness(seed_rule())
    current.run(values)
    legacy = Harness(seed_rule())
    legacy.feed(values)
    old_format = []
    [candidates] = legacy.producer.take(legacy.member._matches)
    for record in decode_candidates(candidates):
        assert record.value is not None
        old_format.append(
            json.dumps(
                {
                    "rule": record.rule_uuid,
                    "event": json.loads(record.value),
                    "source": {
                        "topic": record.topic,
                        "partition": record.partition,
                        "offset": record.offset,
                        "timestamp_ms": record.timestamp_ms,
                    },
                }
            ).encode()
        )
    legacy.feed(old_format, topic=legacy.member._matches)
    assert _alerts(legacy) == _alerts(current) != []


def test_a_batchs_matches_of_a_rule_travel_in_one_record_and_each_alerts() -> None:
    rule = seed_rule()
    harness = Harness(rule)
    harness.feed(attacks(5))
    [candidates] = harness.producer.take(harness.member._matches)
    records = decode_candidates(candidates)
    assert [r.offset for r in records] == [0, 1, 2, 3, 4]
    harness.feed([candidates], topic=harness.member._matches)
    assert [a["kibana.alert.ancestors"][0]["offset"] for a in _alerts(harness)] == [0, 1, 2, 3, 4]
    assert harness.value("detection_consumer_candidates_total", rule_id=rule.rule_id) == 5


def test_a_candidate_whose_record_the_owner_cannot_decode_is_dead_lettered_alone() -> None:
    # Only members with different codec settings can disagree; nothing is lost, and the
    # next candidate of the same record is alerted.
    harness = Harness(seed_rule())
    harness.feed(attacks(2))
    [candidates] = harness.producer.take(harness.member._matches)
    first, second = decode_candidates(candidates)
    unreadable = replace(first, value=b"{not json")
    harness.feed([encode_candidates([unreadable, second])], topic=harness.member._matches)
    [alert] = _alerts(harness)
    assert alert["kibana.alert.ancestors"][0]["offset"] == second.offset
    dead = harness.producer.take(harness.member.settings.dead_letter_topic)
    assert dead == [encode_candidates([unreadable])]
    assert harness.value("detection_consumer_dead_letters_total", reason=INVALID_CANDIDATE) == 1


def test_avro_matches_read_in_part_alert_as_whole_reads_do() -> None:
    events = list(generate_events(6, match_every=1, start=START, events_per_second=10))
    del events[0]["event"]["id"]  # identified by a hash of all of it: read whole
    values = [encode_event_avro(e, confluent_schema_id=1, drop_unknown=True) for e in events]
    part, whole = Harness(seed_rule()), Harness(seed_rule())
    assert part.member._projected
    whole.member._projected = False
    part.run(values)
    whole.run(values)
    alerts = _alerts(part)
    assert alerts == _alerts(whole)
    assert len(alerts) == 6
    assert alerts[0]["kibana.alert.ancestors"][0]["id"].startswith("sha256-")
    assert alerts[0]["host"] == json.loads(json.dumps(events[0]["host"]))  # the whole event


def _broken_avro_attack() -> bytes:
    """An attack in Avro with invalid UTF-8 in ``host.name`` and ``host.hostname``."""
    [event] = generate_events(1, match_every=1, start=START)
    value = encode_event_avro(event, confluent_schema_id=1, drop_unknown=True)
    name = event["host"]["name"].encode()
    return value.replace(name, b"\xff" + name[1:])


def test_a_record_no_rule_reading_any_field_may_match_is_read_in_part() -> None:
    # The other rule may read any field (free text), but its anchor is not in the
    # attack: the attack is read for the seed rule's fields only, so a field broken
    # where no rule reads passes here (its owner's whole decode would refuse it).
    elsewhere = replace(seed_rule(), query="process.name:zzz and zzz", rule_id="z", name="z")
    harness = Harness(seed_rule(), also=[elsewhere])
    harness.feed([_broken_avro_attack()])
    assert len(harness.producer.take(harness.member._matches)) == 1
    assert harness.value("detection_consumer_dead_letters_total", reason="avro_invalid") == 0


def test_a_record_a_rule_reading_any_field_may_match_is_read_whole() -> None:
    anywhere = replace(seed_rule(), query="process.name:kextunload and kextunload", rule_id="k")
    harness = Harness(seed_rule(), also=[anywhere])
    harness.feed([_broken_avro_attack()])
    assert harness.producer.take(harness.member._matches) == []
    assert harness.value("detection_consumer_dead_letters_total", reason="avro_invalid") == 1


def test_with_the_prefilter_off_avro_records_are_read_and_checked_whole() -> None:
    harness = Harness(seed_rule(), prefilter="off")
    assert not harness.member._projected
    harness.feed([_broken_avro_attack()])
    assert harness.producer.take(harness.member._matches) == []
    assert len(harness.producer.take(harness.member.settings.dead_letter_topic)) == 1
    assert harness.value("detection_consumer_dead_letters_total", reason="avro_invalid") == 1


def test_an_avro_match_broken_where_it_was_not_read_is_dead_lettered_by_its_owner() -> None:
    broken = _broken_avro_attack()  # host.name and host.hostname: fields not read
    harness = Harness(seed_rule())
    harness.feed([broken])
    [candidate] = harness.producer.take(harness.member._matches)  # read in part: matched
    harness.feed([candidate], topic=harness.member._matches)
    assert _alerts(harness) == []
    assert harness.producer.take(harness.member.settings.dead_letter_topic) == [candidate]
    assert harness.value("detection_consumer_dead_letters_total", reason=INVALID_CANDIDATE) == 1


def test_a_batchs_matches_too_large_for_one_record_travel_in_several_in_order() -> None:
    harness = Harness(seed_rule())
    values = attacks(300)
    event = json.loads(values[150])
    event["process"]["args"].append("x" * CANDIDATE_RECORD_BYTES)  # larger alone
    values[150] = json.dumps(event).encode()
    harness.feed(values)
    records = [decode_candidates(v) for v in harness.producer.take(harness.member._matches)]
    assert len(records) > 2
    for candidates in records:
        held = sum(len(c.value or b"") for c in candidates)
        assert held <= CANDIDATE_RECORD_BYTES or len(candidates) == 1
    assert [c.offset for candidates in records for c in candidates] == list(range(300))


def test_candidates_over_the_size_limit_together_go_alone_or_are_dead_lettered() -> None:
    harness = Harness(seed_rule())
    harness.producer.max_bytes = 3_000  # one candidate (~2.1 KB) fits, two do not
    harness.feed(attacks(3))
    written = harness.producer.take(harness.member._matches)
    assert [len(decode_candidates(v)) for v in written] == [1, 1, 1]
    harness.producer.max_bytes = 1_000  # the record alone (1.8 KB) does not fit either
    harness.feed(attacks(1))
    assert harness.producer.take(harness.member._matches) == []
    assert harness.producer.take(harness.member.settings.dead_letter_topic) == [b""]  # cut
    assert harness.value("detection_consumer_dead_letters_total", reason="match_too_large") == 1
