"""The records of one topic in a consumed batch, as the prefilter and the codec read them.

Both ask the same questions of every record in a batch (does it open with ``{``, is it
ASCII, how long is it); asked one record at a time they cost more than the rest of a
skipped record's path. ``RecordBatch`` answers each once, over the whole batch, with
C-level passes, and only when first asked.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from functools import cached_property
from itertools import accumulate, repeat
from operator import itemgetter

#: Between records in ``RecordBatch.joined``: no prefilter needle holds it.
SEPARATOR = b"\x00"
_FIRST, _LAST = itemgetter(0), itemgetter(-1)
_OPEN_BRACE = ord("{")


class RecordBatch:
    """The values (bytes) of one topic's records of a batch, in order."""

    def __init__(self, values: Sequence[bytes]) -> None:
        self.values = values

    @classmethod
    def of(cls, values: Sequence[bytes | None]) -> RecordBatch:
        """The batch of consumed ``values``, a tombstone (None) read as an empty record.

        The records are joined first: the join refuses a None, so tombstones are found
        without a pass of their own, and the joined buffer is built once either way."""
        batch = cls(values)  # type: ignore[arg-type]  # checked by the join just below
        try:
            batch.joined  # noqa: B018  # built now, cached for the scans
        except TypeError:
            batch = cls([value or b"" for value in values])
        return batch

    def __len__(self) -> int:
        return len(self.values)

    @cached_property
    def joined(self) -> bytes:
        """The records joined by ``SEPARATOR``: one buffer to scan for them all."""
        return SEPARATOR.join(self.values)

    @cached_property
    def _ends(self) -> list[int]:
        """Where each record ends, separators left out: record k ends ``k`` bytes later
        in ``joined``."""
        return list(accumulate(map(len, self.values)))

    def record_at(self, position: int) -> int:
        """The index of the record holding byte ``position`` of ``joined``."""
        ends = self._ends
        # Record k ends at ends[k] + k, less than len(values) bytes past ends[k]: the
        # search starts that far back and walks the rest (a step or two for records
        # longer than the batch has records), one C-level pass of the lengths in all.
        k = bisect_right(ends, position - len(ends))
        while ends[k] + k <= position:
            k += 1
        return k

    @cached_property
    def first_bytes(self) -> bytes | None:
        """Each record's first byte, or None when a record is empty."""
        try:
            return bytes(map(_FIRST, self.values))
        except IndexError:
            return None

    @cached_property
    def opens_json(self) -> bool:
        """Whether every record opens with ``{``."""
        return self.all_open_with(_OPEN_BRACE)

    def all_open_with(self, byte: int) -> bool:
        """Whether every record opens with ``byte`` (the Confluent magic byte, ``{``...)."""
        firsts = self.first_bytes
        return firsts is not None and firsts.count(byte) == len(firsts)

    def heads(self, size: int) -> set[bytes]:
        """The distinct first ``size`` bytes of the records (fewer for a shorter record).
        Usually the first record's, on every record: then told by one C-level pass."""
        values = self.values
        if not values:
            return set()
        first = values[0][:size]
        if len(first) == size and all(map(bytes.startswith, values, repeat(first))):
            return {first}
        return {value[:size] for value in values}

    @cached_property
    def closes_json(self) -> bool:
        """Whether every record ends with ``}``."""
        try:
            lasts = bytes(map(_LAST, self.values))
        except IndexError:
            return False
        return lasts.count(b"}") == len(lasts)

    @cached_property
    def ascii(self) -> bool:
        """Whether every record is ASCII (one pass over the joined buffer)."""
        return self.joined.isascii()

    @cached_property
    def size(self) -> int:
        """The records' bytes, all told."""
        if "joined" in self.__dict__:  # already built: its length gives the size at once
            return len(self.joined) - len(self.values) + 1 if self.values else 0
        return sum(map(len, self.values))

    @cached_property
    def longest(self) -> int:
        """The length of the longest record (0 for no record)."""
        return max(map(len, self.values), default=0)

    def longest_at_most(self, limit: int) -> bool:
        """Whether no record is longer than ``limit``: the batch's size decides the
        common case without a pass over the records."""
        return self.size <= limit or self.longest <= limit
