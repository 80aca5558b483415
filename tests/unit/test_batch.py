"""A batch's facts, worked out over the whole batch, are what each record says."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from consumer.batch import SEPARATOR, RecordBatch

_RECORDS = st.lists(
    st.one_of(
        st.binary(max_size=8),
        st.sampled_from([b"", b"{}", b'{"a": 1}', b"{\xc3\xa9}", b"\x00\x00\x00\x00\x01ab", b"}"]),
    ),
    max_size=12,
)


@given(_RECORDS, st.booleans())
def test_the_batch_facts_are_each_records_facts(values: list[bytes], join_first: bool) -> None:
    batch = RecordBatch(values)
    if join_first:  # the size comes from the joined buffer once there is one
        assert batch.joined == SEPARATOR.join(values)
    assert len(batch) == len(values)
    assert batch.opens_json == all(v.startswith(b"{") for v in values)
    assert batch.all_open_with(0) == all(v.startswith(b"\x00") for v in values)
    assert batch.closes_json == all(v.endswith(b"}") for v in values)
    assert batch.ascii == all(v.isascii() for v in values)
    assert batch.size == sum(map(len, values))
    assert batch.longest == max(map(len, values), default=0)
    assert batch.first_bytes == (bytes(v[0] for v in values) if all(values) else None)
    for limit in (0, 3, 8):
        assert batch.longest_at_most(limit) == all(len(v) <= limit for v in values)
    for size in (1, 5):
        assert batch.heads(size) == {v[:size] for v in values}


@given(
    st.lists(
        st.one_of(st.binary(max_size=6), st.binary(min_size=200, max_size=2000)),
        min_size=1,
        max_size=60,
    )
)
def test_each_byte_of_the_joined_batch_is_found_in_its_record(values: list[bytes]) -> None:
    batch = RecordBatch(values)
    start = 0
    for index, value in enumerate(values):
        for position in range(start, start + len(value)):
            assert batch.record_at(position) == index
        start += len(value) + len(SEPARATOR)
