"""The peer: a minimal Quix Streams application doing the seed rule's filtering.

What a user might write instead of running our consumer: read the events, keep the ones
the seed rule's query matches (the predicate written by hand), write them as JSON to an
output topic. ``bench_pipeline.py`` runs it on the same topics as the consumer, in a venv
of its own (quixstreams pins an older confluent-kafka than ours), and times it the same
way: from its first committed offset until its committed offsets reach the topic's end.

JSON is read with Quix's JSON deserializer. For Avro in Confluent framing without a
Schema Registry, Quix's ``AvroDeserializer`` is given the writer schema and the 5-byte
header (magic byte, schema id) is cut off first. Runs until SIGTERM or Ctrl+C::

    .cache/bench-quix-venv/bin/python bench/peer_quix.py --bootstrap-servers HOST:PORT \\
        --input json-100 --output json-100-matches --group quix-json-100 \\
        [--avro-schema schemas/ecs_process_event.avsc]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from quixstreams import Application
from quixstreams.models import SerializationContext
from quixstreams.models.serializers.avro import AvroDeserializer

CONFLUENT_HEADER_BYTES = 5
KEXT_ARGS = frozenset({"/System/Library/Extensions/EndpointSecurity.kext", "EndpointSecurity.kext"})
START_TYPES = frozenset({"start", "process_started"})


class ConfluentAvroDeserializer(AvroDeserializer):
    """Avro records behind Confluent's header, read with a known writer schema."""

    def __call__(self, value: bytes, ctx: SerializationContext) -> Any:
        return super().__call__(value[CONFLUENT_HEADER_BYTES:], ctx)


def _values(field: Any) -> list[Any]:
    """An ECS field as a list: agents send some fields as a scalar or as an array."""
    return field if isinstance(field, list) else [field]


def is_kext_unload(event: dict[str, Any]) -> bool:
    """The seed rule's query, by hand::

    event.category:process and event.type:(start or process_started) and
    process.name:kextunload and process.args:("/System/Library/Extensions/EndpointSecurity.kext"
    or "EndpointSecurity.kext")
    """
    process = event.get("process") or {}
    meta = event.get("event") or {}
    return (
        "kextunload" in _values(process.get("name"))
        and not KEXT_ARGS.isdisjoint(_values(process.get("args")))
        and "process" in _values(meta.get("category"))
        and not START_TYPES.isdisjoint(_values(meta.get("type")))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--input", required=True, help="topic of events")
    parser.add_argument("--output", required=True, help="topic the matching events go to")
    parser.add_argument("--group", required=True, help="consumer group")
    parser.add_argument("--avro-schema", type=Path, help="writer schema: the input is Avro")
    parser.add_argument(
        "--processing-guarantee", default="exactly-once", choices=["exactly-once", "at-least-once"]
    )
    parser.add_argument("--commit-interval", type=float, default=1.0, help="seconds (ours: 1 s)")
    args = parser.parse_args()

    app = Application(
        broker_address=args.bootstrap_servers,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        processing_guarantee=args.processing_guarantee,
        commit_interval=args.commit_interval,
    )
    deserializer = (
        ConfluentAvroDeserializer(json.loads(args.avro_schema.read_text()))
        if args.avro_schema
        else "json"
    )
    events = app.topic(args.input, value_deserializer=deserializer)
    matches = app.topic(args.output, value_serializer="json")
    sdf = app.dataframe(events)
    sdf = sdf.filter(is_kext_unload)
    sdf.to_topic(matches)
    app.run()


if __name__ == "__main__":
    main()
