"""``python -m tests.integration.unusable_producer run ...``: a member whose first abort finds
its producer unusable.

librdkafka declares a transactional producer unusable on a real broker only by a race (an
abort answered with INVALID_TXN_STATE after the alerts topic was deleted,
confluentinc/librdkafka#4849), so the fault is injected here: the first time the member
aborts a transaction, it is told its producer is unusable, as that race tells it. The rest
runs as ``python -m consumer``: real clients, a real broker.
"""

from __future__ import annotations

from confluent_kafka import KafkaError

from consumer.cli import main
from consumer.pipeline.member import Member

_abort = Member._abort
_unusable = KafkaError(
    KafkaError.INVALID_TXN_STATE, "injected: the abort found the producer unusable", fatal=True
)
_injected: list[Member] = []


def _abort_found_unusable(member: Member) -> None:
    if member in _injected:
        _abort(member)
    else:
        _injected.append(member)
        member._replace_producer(_unusable)


Member._abort = _abort_found_unusable  # type: ignore[method-assign]

raise SystemExit(main())
