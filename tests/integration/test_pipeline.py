"""The streaming pipeline against Apache Kafka: events in, alerts out, exactly once.

Members run as real processes (``python -m consumer run``); every check reads the output
topics ``read_committed``, as a downstream indexer would.
"""

from __future__ import annotations

import json
import random
import struct
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from consumer.alerting import AlertingCore, Candidate
from consumer.codecs import default_codec, encode_event_avro, encode_event_json
from consumer.detection import Detector
from consumer.generator import generate_events, labeled_events
from consumer.rules import builtin_rules_path, load_rules

from .members import MemberProcess, Stream, alert_ids, read_topic, values, with_id

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(240)]
RULES = load_rules([builtin_rules_path()]).rules
INPUT_PARTITIONS = 4


@pytest.fixture
def stream(broker, topic_factory, group_id) -> Stream:
    return Stream(broker.bootstrap_servers, group_id, topic_factory(partitions=INPUT_PARTITIONS))


@pytest.fixture
def members(stream: Stream, tmp_path: Path) -> Iterator[Callable[..., MemberProcess]]:
    started: list[MemberProcess] = []

    def start(instance: str = "m1", *extra: str) -> MemberProcess:
        member = MemberProcess(
            stream.member_args(instance, *extra), tmp_path / f"{instance}.log"
        ).start()
        started.append(member)
        return member

    yield start
    for member in started:
        member.stop_quietly()


def _attacks() -> list[dict]:
    return [c.event for c in labeled_events().values() if c.matches]


def _near_misses() -> list[dict]:
    return [c.event for c in labeled_events().values() if not c.matches]


def _produce(stream: Stream, values_: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": stream.bootstrap, "linger.ms": 5})
    for i, value in enumerate(values_):
        producer.produce(stream.input_topic, value, key=str(i).encode())
    assert producer.flush(30) == 0


def _expected_alert_ids(events: list[dict]) -> set[str]:
    """What the pure core decides for these events: the pipeline must deliver exactly it."""
    detector, core = Detector(RULES), AlertingCore(RULES)
    ids: set[str] = set()
    for event in events:
        for rule in detector.matching_rules(event):
            for output in core.process(Candidate(rule, event)):
                if output.kind == "alert":
                    ids.add(output.key)
    return ids


def test_events_in_alerts_out_as_json_and_avro_in_both_framings(stream, members) -> None:
    attacks = _attacks()
    json_attacks = [with_id(e, f"json-{i}") for i, e in enumerate(attacks)]
    framed_attacks = [with_id(e, f"framed-{i}") for i, e in enumerate(attacks)]
    raw_attacks = [with_id(e, f"raw-{i}") for i, e in enumerate(attacks)]
    benign = list(generate_events(200, match_every=None))
    records = (
        [encode_event_json(e) for e in json_attacks + _near_misses() + benign]
        + [encode_event_avro(e, confluent_schema_id=1, drop_unknown=True) for e in framed_attacks]
        + [encode_event_avro(e, drop_unknown=True) for e in raw_attacks]
    )
    member = members("m1", "--avro-raw-writer-schema", "ecs_process_event")
    member.wait_for_log("assigned")
    _produce(stream, records)

    alerts = read_topic(stream.bootstrap, stream.alerts, expect=3 * len(attacks))
    # The events as the pipeline decodes them are what the alerts are made of.
    codec = default_codec()
    decoded = [codec.decode(r, format="auto") for r in records[: len(json_attacks)]]
    decoded += [codec.decode(r) for r in records[-2 * len(attacks) : -len(attacks)]]
    raw_codec = type(codec).from_schema_dir(
        Path(__file__).parents[2] / "schemas", raw_writer_schema="ecs_process_event"
    )
    decoded += [raw_codec.decode(r) for r in records[-len(attacks) :]]
    assert sorted(alert_ids(alerts)) == sorted(_expected_alert_ids(decoded))
    assert len(alerts) == 3 * len(attacks)  # one per attack, none for the near misses
    docs = values(alerts)
    assert {d["kibana.alert.rule.rule_id"] for d in docs} == {RULES[0].rule_id}
    assert all(
        d["kibana.alert.reason"].startswith("process event with process kextunload") for d in docs
    )
    assert all(
        m.key().decode() == d["kibana.alert.uuid"] for m, d in zip(alerts, docs, strict=True)
    )
    assert read_topic(stream.bootstrap, stream.dead_letters, timeout=3) == []
    assert member.terminate() == 0


@pytest.mark.parametrize("prefilter", ["off", "on"])
def test_poison_records_go_to_the_dead_letter_topic_and_neighbours_are_alerted(
    stream, members, prefilter
) -> None:
    attack_a, attack_b = (with_id(e, f"good-{i}") for i, e in enumerate(_attacks()[:2]))
    wrong_schema = b"\x00" + struct.pack(">I", 99) + b"\x02abc"
    poison = {
        b"\x8f\x01\xffrandom\x00bytes": "unrecognised_format",
        b'{"event": {"id": "trunc': "invalid_json",
        b'[{"event": {}}]': "not_an_object",
        b'{"message": "\xff\xfe"}': "invalid_utf8",
        wrong_schema: "avro_unknown_schema",
        b"\x00\x00\x00\x00\x01\x06abc": "avro_invalid",
    }
    # A well-framed Avro body under a known schema id cannot be checked without decoding
    # it; with the prefilter on, it is decoded only when its offset is sampled.
    unseen_when_skipped = {b"\x00\x00\x00\x00\x01\x06abc"}
    records = [encode_event_json(attack_a), *poison, encode_event_json(attack_b)]
    member = members("m1", "--prefilter", prefilter)
    member.wait_for_log("assigned")
    _produce(stream, records)

    expected = set(poison) if prefilter == "off" else set(poison) - unseen_when_skipped
    dead = read_topic(stream.bootstrap, stream.dead_letters, expect=len(expected))
    by_value = {m.value(): dict(m.headers()) for m in dead}
    assert expected <= set(by_value) <= set(poison)
    assert len(dead) == len(by_value), "a record was dead-lettered twice"
    for value, reason in poison.items():
        if value not in by_value:
            continue
        headers = by_value[value]
        assert headers["x-dead-letter-reason"].decode() == reason
        assert headers["x-source-topic"].decode() == stream.input_topic
        assert int(headers["x-source-offset"]) >= 0
        assert headers["x-dead-letter-error"]
    alerts = read_topic(stream.bootstrap, stream.alerts, expect=2)
    assert sorted(alert_ids(alerts)) == sorted(_expected_alert_ids([attack_a, attack_b]))
    assert member.terminate() == 0


def test_a_record_too_large_to_copy_is_dead_lettered_without_its_bytes(stream, members) -> None:
    # Compressed, a record far over --max-record-bytes fits the topic's limit; its dead
    # letter, over the producer's limit (librdkafka's message.max.bytes), cannot carry
    # it. Its bytes stay where its headers point, and the member goes on.
    big = b'{"pad":"' + b"x" * 1_500_000 + b'"}'
    attack = with_id(_attacks()[0], "after-the-large-one")
    member = members("m1")
    member.wait_for_log("assigned")
    producer = Producer(
        {
            "bootstrap.servers": stream.bootstrap,
            "compression.type": "lz4",
            "message.max.bytes": 2_000_000,
        }
    )
    producer.produce(stream.input_topic, big, key=b"large", partition=0)
    producer.produce(stream.input_topic, encode_event_json(attack), partition=0)
    assert producer.flush(30) == 0

    [dead] = read_topic(stream.bootstrap, stream.dead_letters, expect=1)
    headers = dict(dead.headers() or [])
    assert headers["x-dead-letter-reason"] == b"too_large"
    assert headers["x-dead-letter-value-bytes"] == str(len(big)).encode()
    assert (headers["x-source-partition"], headers["x-source-offset"]) == (b"0", b"0")
    assert dead.value() == b""  # empty, not a tombstone
    assert dead.key() == b"large"
    alerts = read_topic(stream.bootstrap, stream.alerts, expect=1)
    assert alert_ids(alerts) == sorted(_expected_alert_ids([attack]))
    assert member.terminate() == 0


@pytest.mark.parametrize(
    ("limit", "reason"),
    [(2_000, "match_too_large"), (5_000, "alert_too_large")],  # candidate 2.1 KB, alert 7 KB
)
def test_a_match_or_alert_too_large_to_write_is_dead_lettered_and_the_rest_goes_on(
    stream, members, limit, reason
) -> None:
    attack = with_id(_attacks()[0], f"too-large-{reason}")
    member = members("m1", "--kafka-config", f"message.max.bytes={limit}")
    member.wait_for_log("assigned")
    _produce(stream, [encode_event_json(attack)])
    [dead] = read_topic(stream.bootstrap, stream.dead_letters, expect=1)
    headers = dict(dead.headers() or [])
    assert headers["x-dead-letter-reason"] == reason.encode()
    assert b"message.max.bytes" in headers["x-dead-letter-error"]
    _produce(stream, [b'{"event": {"id": "trunc'])  # the loop went on
    dead = read_topic(stream.bootstrap, stream.dead_letters, expect=2)
    assert [dict(d.headers() or [])["x-dead-letter-reason"] for d in dead] == [
        reason.encode(),
        b"invalid_json",
    ]
    assert read_topic(stream.bootstrap, stream.alerts, settle=0.5, timeout=1) == []
    assert member.terminate() == 0


def _flood(count: int) -> list[dict]:
    base = _attacks()[0]
    return [
        with_id(base, f"flood-{i}", f"2026-12-04T10:0{i % 5}:{i % 60:02d}.{i:03d}Z")
        for i in range(count)
    ]


def test_two_members_and_a_rebalance_keep_the_limit_and_lose_nothing(stream, members) -> None:
    flood = _flood(400)  # one 5-minute window, 400 distinct matches over 4 partitions
    later = [
        with_id(e, f"later-{i}", f"2026-12-04T10:06:{i:02d}.000Z") for i, e in enumerate(_attacks())
    ]
    first = members("m1")
    first.wait_for_log("assigned")
    _produce(stream, [encode_event_json(e) for e in flood[:200]])
    second = members("m2")
    _produce(stream, [encode_event_json(e) for e in flood[200:]])
    second.wait_for_log("assigned")
    _produce(stream, [encode_event_json(e) for e in later])

    alerts = read_topic(stream.bootstrap, stream.alerts, expect=100 + len(later))
    ids = alert_ids(alerts)
    assert len(ids) == len(set(ids)), "an alert was written twice"
    docs = values(alerts)
    flood_alerts = [d for d in docs if d["kibana.alert.ancestors"][0]["id"].startswith("flood-")]
    assert len(flood_alerts) == 100
    later_alerts = [d for d in docs if d["kibana.alert.ancestors"][0]["id"].startswith("later-")]
    assert len(later_alerts) == len(later)
    statuses = values(read_topic(stream.bootstrap, stream.statuses, expect=1, timeout=20))
    cut = [s for s in statuses if s["window"]["start"].startswith("2026-12-04T10:00:00")]
    assert cut and cut[0]["message"].startswith("This rule reached the maximum alert limit")
    assert first.terminate() == 0
    assert second.terminate() == 0


def test_a_member_killed_mid_stream_and_restarted_leaves_every_alert_exactly_once(
    stream, members
) -> None:
    rng = random.Random(7)
    attacks = [
        with_id(
            rng.choice(_attacks()), f"kill-{i}", f"2026-12-04T11:{i // 2:02d}:{i % 60:02d}.000Z"
        )
        for i in range(120)
    ]
    benign = [encode_event_json(e) for e in generate_events(3000, match_every=None)]
    records = [encode_event_json(e) for e in attacks]
    mixed = [
        r
        for pair in zip(records, [benign[i::120] for i in range(120)], strict=True)
        for r in [pair[0], *pair[1]]
    ]
    member = members("m1")
    member.wait_for_log("assigned")
    _produce(stream, mixed[: len(mixed) // 2])
    read_topic(stream.bootstrap, stream.alerts, expect=10, settle=0)
    member.kill()
    _produce(stream, mixed[len(mixed) // 2 :])
    restarted = members("m1")  # same instance id: fences the dead one's transaction

    alerts = read_topic(stream.bootstrap, stream.alerts, expect=len(attacks), timeout=90)
    ids = alert_ids(alerts)
    assert Counter(ids).most_common(1)[0][1] == 1, "an alert was written twice"
    assert set(ids) == _expected_alert_ids(attacks)
    assert restarted.terminate() == 0


def test_sigterm_commits_and_a_restart_alerts_nothing_again(stream, members, broker) -> None:
    attacks = [with_id(e, f"term-{i}") for i, e in enumerate(_attacks())]
    member = members("m1")
    member.wait_for_log("assigned")
    _produce(stream, [encode_event_json(e) for e in attacks])
    assert len(read_topic(stream.bootstrap, stream.alerts, expect=len(attacks))) == len(attacks)
    assert member.terminate() == 0
    assert "Traceback" not in member.log()

    admin = AdminClient({"bootstrap.servers": stream.bootstrap})
    committed = admin.list_consumer_group_offsets(
        [_group_request(stream.group, stream.input_topic)], require_stable=True
    )[stream.group].result()
    produced = sum(1 for _ in attacks)
    assert sum(tp.offset for tp in committed.topic_partitions if tp.offset > 0) == produced

    again = members("m1")
    again.wait_for_log("assigned")
    alerts = read_topic(stream.bootstrap, stream.alerts, expect=len(attacks), settle=5)
    assert len(alerts) == len(attacks)
    assert again.terminate() == 0


def _group_request(group: str, topic: str):
    from confluent_kafka import ConsumerGroupTopicPartitions

    return ConsumerGroupTopicPartitions(
        group, [TopicPartition(topic, p) for p in range(INPUT_PARTITIONS)]
    )


def test_alert_documents_equal_what_replay_gives(stream, members, tmp_path) -> None:
    attacks = [with_id(e, f"replay-{i}") for i, e in enumerate(_attacks())]
    member = members("m1")
    member.wait_for_log("assigned")
    _produce(stream, [encode_event_json(e) for e in attacks])
    streamed = {
        d["kibana.alert.uuid"]: d
        for d in values(read_topic(stream.bootstrap, stream.alerts, expect=len(attacks)))
    }

    from consumer.cli import main

    events = tmp_path / "events.ndjson"
    events.write_text("".join(json.dumps(e) + "\n" for e in attacks))
    output = tmp_path / "alerts.ndjson"
    assert main(["replay", "--input", str(events), "--output", str(output)]) == 0
    replayed = {d["kibana.alert.uuid"]: d for d in map(json.loads, output.read_text().splitlines())}
    assert set(streamed) == set(replayed)
    # Only the alert time, and where the event was read from, differ.
    for uuid, doc in streamed.items():
        other = replayed[uuid]
        for field in (
            "@timestamp",
            "kibana.alert.start",
            "kibana.alert.last_detected",
            "kibana.alert.ancestors",
        ):
            doc.pop(field, None)
            other.pop(field, None)
        assert doc == other
    assert member.terminate() == 0


def test_at_least_once_repeats_at_most_records_never_alert_ids(stream, members) -> None:
    attacks = [
        with_id(e, f"alo-{i}", f"2026-12-04T12:{i // 4:02d}:{i % 60:02d}.000Z")
        for i, e in enumerate(_attacks() * 10)
    ]
    records = [encode_event_json(e) for e in attacks]
    member = members("m1", "--guarantee", "at-least-once")
    member.wait_for_log("assigned")
    _produce(stream, records[:30])
    read_topic(stream.bootstrap, stream.alerts, expect=5, settle=0)
    member.kill()
    _produce(stream, records[30:])
    restarted = members("m1", "--guarantee", "at-least-once")

    alerts = read_topic(stream.bootstrap, stream.alerts, expect=len(attacks), timeout=90)
    ids = alert_ids(alerts)
    # A crash may write an alert record again, always under the same id with the same
    # content, so an index keyed by alert id ends up with exactly one alert per attack.
    assert set(ids) == _expected_alert_ids(attacks)
    by_id: dict[str, dict] = {}
    for doc in values(alerts):
        doc = {
            k: v
            for k, v in doc.items()
            if k not in ("@timestamp", "kibana.alert.start", "kibana.alert.last_detected")
        }
        assert by_id.setdefault(doc["kibana.alert.uuid"], doc) == doc
    assert restarted.terminate() == 0
