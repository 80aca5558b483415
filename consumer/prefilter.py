"""Tell from records' raw bytes which rules could match them, before decoding them.

Every KQL query exposes literals a matching event must contain (``required_literals``);
for each rule, the set of alternatives its stream holds least (measured on a batch,
see ``_Anchors``) is its anchor. One scan of a whole batch (its records joined, one
multi-literal pass) finds the anchors present and the records holding them: only
those records are decoded, and each runs only the rules whose anchors it holds (plus
rules with no anchor at all). Almost every endpoint event fails the seed rule's
``EndpointSecurity.kext`` test, so almost none is decoded; with hundreds of rules
loaded, each record runs only the few rules whose anchors it holds.

How a literal shows in the bytes depends on the encoding, so anchors are chosen per
encoding. A whole value is looked for with its delimiters, which makes short values
(``sh``, ``od``) selective:

- JSON: a value equal to ``v`` is the string ``"v"``; a key ending in ``k`` (a field the
  query needs) is ``k"``, however the path is spelled (nested, dotted or mixed); a part
  of a value, or of a key (the name in ``field:*``), is itself. Used for JSON records
  (``--input-format json``, or a batch of records that all open with ``{``);
- Avro: a string is its length (a zig-zag varint) and its UTF-8 bytes, so a value equal
  to ``v`` is ``len(v) v``; keys are not in the bytes, so anchors use values only. Used
  for Avro records (``--input-format avro``, or a batch of records that all open with
  the Confluent magic byte). For a batch that may hold both, each value is looked for
  in both spellings.

Soundness (a rule left out cannot match the record) rests on how strings reach the bytes:

- Avro stores a string as its UTF-8 bytes (an enum stores an index: with one among the
  writer schemas the member turns the prefilter off, see ``EventCodec``);
- JSON stores it verbatim too, except where the writer escaped characters: ``"``, ``\\``
  and control characters always (searched for in their escaped form), ``/`` as ``\\/``
  and any character as ``\\uXXXX`` at the writer's choice. A record containing ``\\u``
  or ``\\/`` could hide a literal, so every rule runs on it;
- literals come only from positive tests: case-sensitive exact or wildcard tests on
  keyword fields give values, any test gives its field's key (``consumer.kql.literals``);
  a rule without any usable literal runs on every record;
- records are joined with a NUL byte, which no needle contains (a rule whose literal
  holds one runs on every record), so a needle found lies inside one record;
- an event read from Avro holds only fields its reader schema has a place for: a rule
  every match of which needs another field (``url.path`` against a process-event
  schema, ``consumer.kql.may_match``) cannot match an Avro record and is not run on a
  batch read as Avro: under ``auto``, one whose records all open with the Confluent
  magic byte (a batch that mixes encodings runs every rule its anchors select).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from typing import NamedTuple

import hyperscan
from ahocorasick_rs import BytesAhoCorasick

from consumer.batch import SEPARATOR, RecordBatch
from consumer.codecs.schemas import CONFLUENT_MAGIC
from consumer.kql import KEY, KEY_PART, PART, VALUE, Literal, may_match, required_literals
from consumer.rules import Rule

Selection = tuple[int, ...]
Find = Callable[[bytes], list[tuple[int, int, int]]]
# Up to this many needles, one scan per needle beats one Hyperscan pass over them all
# (the two cost the same at 16 anchors of the prebuilt rules on 2 KB events).
_SINGLE_SCANS = 16
# Required literal sets, after its anchor, a record must also hold to run a rule.
_CONFIRMED = 2
# Required literal sets of a rule that may become its anchor when the stream is measured.
_CANDIDATE_SETS = 6
# Anchors are chosen again from the needles' counts in a batch of at least this many
# records, first thing and then after every _MEASURE_EVERY records scanned.
_MEASURED_BATCH = 100
_MEASURE_EVERY = 1_000_000
# A rule chosen in more records of a batch than this is confirmed by scanning the batch.
_CONFIRM_ONE_BY_ONE = 64
# Avro values shorter than this are scanned for with their length in front.
_SHORT_VALUE = 16
# JSON escapes that can hide a literal from a byte scan.
_ESCAPES = (b"\\u", b"\\/")
# What follows the backslash of an escape that can hide a literal.
_ESCAPED = (b"u", b"/")
# Backslashes looked at one by one before the escapes are scanned for instead.
_BACKSLASHES_WALKED = 64


class Prefilter:
    """``scan(values)``: the records of a batch that some rule could match, with the rules.

    ``select(value)`` answers the same for one record: an empty tuple means no rule can
    match it. ``format`` is the input format the codec reads (``json``, ``avro`` or
    ``auto``); ``avro_fields`` says whether an event read from Avro can hold a field
    (``EventCodec.avro_fields``; None: any field).
    """

    def __init__(
        self,
        rules: Sequence[Rule],
        *,
        enabled: bool = True,
        format: str = "auto",
        avro_fields: Callable[[str], bool] | None = None,
    ) -> None:
        self.all_rules: Selection = tuple(range(len(rules)))
        queries = [rule.query for rule in rules]
        # Rules no Avro record can match: left out of the Avro anchors, neither anchored
        # nor run on every record.
        not_avro = frozenset(
            i
            for i, query in enumerate(queries)
            if avro_fields is not None and format != "json" and not may_match(query, avro_fields)
        )
        # The anchors for a batch whose records all open with "{", for one whose records
        # all open with the Confluent magic byte (read as Avro), and for any other: one
        # set when the format decides how every record is read.
        if format == "json":
            self._json = self._avro = self._other = _Anchors(queries, keys=True, spell=_json_forms)
        elif format == "avro":
            self._json = self._avro = self._other = _Anchors(
                queries, keys=False, spell=_avro_forms, never=not_avro
            )
        else:
            self._json = _Anchors(queries, keys=True, spell=_json_forms)
            self._avro = _Anchors(queries, keys=False, spell=_avro_forms, never=not_avro)
            self._other = _Anchors(queries, keys=False, spell=_any_forms)
        # Off when asked, or when no rule has an anchor: every rule runs on every record.
        self.enabled = enabled and any(
            len(a.always) < len(rules) for a in (self._json, self._avro, self._other)
        )
        # The escapes are found apart: two needles this short among the anchors' slowed
        # every scan several times.
        self._find_escapes = _finder(_ESCAPES)

    @property
    def needles(self) -> tuple[bytes, ...]:
        """What a scan of JSON records looks for now (the anchors' needles)."""
        return self._json.needles

    def _escapes(self, joined: bytes) -> list[int]:
        """Where the escapes that can hide a literal (``\\u``, ``\\/``) start.

        Most endpoint batches hold a few backslashes (escaped quotes in command lines):
        walked from one to the next (memchr), as JSON reads them, an escape and the
        character it escapes, they cost a tenth of two scans of the batch. Past
        ``_BACKSLASHES_WALKED`` (Windows paths), the scans: they also flag ``\\\\u``,
        an escaped backslash before a ``u``, which only costs a needless decode.
        """
        starts: list[int] = []
        at = joined.find(b"\\")
        for _ in range(_BACKSLASHES_WALKED):
            if at < 0:
                return starts
            if joined[at + 1 : at + 2] in _ESCAPED:
                starts.append(at)
            at = joined.find(b"\\", at + 2)
        if at < 0:
            return starts
        return [start for _, start, _ in self._find_escapes(joined)]

    def select(self, value: bytes) -> Selection:
        """The rules that could match record ``value`` (all of them when disabled)."""
        found = self.scan([value])
        return found[0][1] if found else ()

    def scan(self, records: RecordBatch | Sequence[bytes]) -> list[tuple[int, Selection]]:
        """``(index, rules)`` of each record some rule could match, in order.

        A record left out can match no rule. One scan of the joined batch: most
        batches hold no needle at all, and then nothing per record is built.
        """
        batch = records if isinstance(records, RecordBatch) else RecordBatch(records)
        if not self.enabled:
            return [(i, self.all_rules) for i in range(len(batch.values))]
        if self._other is not self._json and batch.opens_json:
            return self._scan(batch, self._json)
        # The codec reads a record opening with the Confluent magic byte as Avro, never JSON.
        if self._other is not self._avro and batch.all_open_with(CONFLUENT_MAGIC):
            return self._scan(batch, self._avro)
        return self._scan(batch, self._other)

    def _scan(self, batch: RecordBatch, anchors: _Anchors) -> list[tuple[int, Selection]]:
        """``scan`` with ``anchors``, the set for the batch's encoding."""
        values = batch.values
        joined = batch.joined
        if anchors.measure_due(len(values)):
            anchors.measure(joined, len(values))
        hits = anchors.find(joined)
        escapes = self._escapes(joined)
        always = anchors.always
        if not hits and not escapes:
            return [(i, always) for i in range(len(values))] if always else []
        chosen: dict[int, set[int]] = {}
        checks = anchors.checks
        record_at = batch.record_at
        for needle, start, end in hits:
            for before, not_after, owners in checks[needle]:
                if _checked(joined, start, end, before, not_after):
                    chosen.setdefault(record_at(start), set()).update(owners)
        anchors.confirm(chosen, batch)
        chosen = {i: rules.union(always) for i, rules in chosen.items() if rules}
        for start in escapes:
            chosen[record_at(start)] = set(self.all_rules)
        if not always:
            return [(i, tuple(sorted(chosen[i]))) for i in sorted(chosen)]
        return [
            (i, tuple(sorted(chosen[i])) if i in chosen else always) for i in range(len(values))
        ]


class Spelling(NamedTuple):
    """How a literal shows in the bytes: ``needle``, scanned for, with ``before`` just
    before it and not ``not_after`` just after it (empty: no such check).

    A whole JSON value ``"v"`` is the needle ``v"`` after a quote: the opening quote is
    checked rather than scanned for, as needles that start with the commonest byte of
    JSON scan several times slower; and not before a colon, which would make it a key.
    """

    needle: bytes
    before: bytes = b""
    not_after: bytes = b""


Spell = Callable[[Literal], set[Spelling]]


class _Anchors:
    """Each rule's anchor spelled for one encoding: the needles to scan for, the checks
    of a needle found (and the rules it then selects), the rules without an anchor.

    A rule whose anchor is found must also hold its next required literal sets (up to
    ``_CONFIRMED``, less any a measured batch held about once a record) before it is
    selected: an anchor as common as ``event.type:start`` then lets through only the
    records that also hold the rule's rarer literals. Those are looked for in the few
    records the scan selected, not in the batch.

    Which set anchors a rule is first guessed from the query (``required_literals``
    ranks them), then measured: ``measure`` counts every candidate set's needles in a
    batch and anchors each rule on its least found set. Any required set is a sound
    anchor, as a matching record holds each; the measure only decides which costs least.
    On endpoint events, ``event.module:endpoint`` (the guess for a rule that also needs
    ``event.kind:alert``) is on every record, ``alert`` on almost none.

    Rules in ``never`` are left out: no record these anchors read can match them.
    """

    def __init__(
        self,
        queries: Sequence[str],
        *,
        keys: bool,
        spell: Spell,
        never: frozenset[int] = frozenset(),
    ) -> None:
        always: list[int] = []
        # Each rule's candidate sets, in the query's ranking: the first anchors it.
        self._sets: dict[int, list[set[Spelling]]] = {}
        for index, query in enumerate(queries):
            if index in never:  # no record these anchors read can match it
                continue
            sets = [
                forms
                for literals in required_literals(query, keys=keys)[:_CANDIDATE_SETS]
                for forms in [_merged({f for lit in literals for f in spell(lit)})]
                if not any(SEPARATOR in f.needle + f.before for f in forms)
            ]
            if sets:
                self._sets[index] = sets
            else:
                always.append(index)
        self.always: Selection = tuple(always)
        # One scan per confirming literal, built when first needed.
        self._single_scans: dict[bytes, Find] = {}
        # Every candidate set's needles, counted by ``measure``: built when first needed.
        self._all_needles: tuple[bytes, ...] = ()
        self._count_all: Find | None = None
        self._measure_in = 0  # records to scan before the next measure
        self._arrange(self._sets)
        self._choose_confirms(self._sets)

    def _arrange(self, sets: dict[int, list[set[Spelling]]]) -> None:
        """Anchor each rule on its first set."""
        checks: dict[bytes, dict[tuple[bytes, bytes], set[int]]] = {}
        for index, ordered in sets.items():
            for form in ordered[0]:
                by_check = checks.setdefault(form.needle, {})
                by_check.setdefault((form.before, form.not_after), set()).add(index)
        self._anchored = {index: ordered[0] for index, ordered in sets.items()}
        self.needles = tuple(checks)
        self.checks = [
            tuple((*check, frozenset(owners)) for check, owners in checks[n].items())
            for n in self.needles
        ]
        self.find = _finder(self.needles)

    def _choose_confirms(
        self,
        sets: dict[int, list[set[Spelling]]],
        may_leave_out: Callable[[set[Spelling]], bool] = lambda _: True,
    ) -> None:
        """Confirm each rule with the first ``_CONFIRMED`` of its sets after its anchor
        that ``may_leave_out`` a record."""
        self._confirms: dict[int, list[set[Spelling]]] = {}
        for index, ordered in sets.items():
            confirms = [forms for forms in ordered[1:] if may_leave_out(forms)][:_CONFIRMED]
            if confirms:
                self._confirms[index] = confirms

    def measure_due(self, records: int) -> bool:
        """Count ``records`` scanned; whether this batch should be measured first."""
        self._measure_in -= records
        return self._measure_in <= 0 and records >= _MEASURED_BATCH

    def measure(self, joined: bytes, records: int) -> None:
        """Anchor each rule on its candidate set whose needles ``joined`` (a batch of
        ``records``) holds least (ties keep the query's ranking); the scan is rebuilt
        only on a change. A set found as often as there are records is likely in every
        one (``event.category:process``): it confirms no rule, as confirming with it
        would cost a search per selected record and leave none out."""
        self._measure_in = _MEASURE_EVERY
        if self._count_all is None:
            needles = {f.needle for sets in self._sets.values() for fs in sets for f in fs}
            self._all_needles = tuple(needles)
            self._count_all = _finder(self._all_needles)
        found = Counter(self._all_needles[n] for n, _, _ in self._count_all(joined))

        def cost(forms: set[Spelling]) -> int:
            return sum(found[form.needle] for form in forms)

        ordered = {index: sorted(sets, key=cost) for index, sets in self._sets.items()}
        if any(ordered[i][0] is not anchor for i, anchor in self._anchored.items()):
            self._arrange(ordered)
        self._choose_confirms(ordered, lambda forms: cost(forms) < records)

    def confirm(self, chosen: dict[int, set[int]], batch: RecordBatch) -> None:
        """Drop from ``chosen`` (record index: rules whose anchor it holds) each rule
        whose other required sets the record does not hold.

        While a rule is left in a few records, each set is looked for in each of them;
        while in many (its anchor as common as ``event.type:start``), by one scan of the
        joined batch per literal, which then costs less than a search per record.
        """
        confirms, values = self._confirms, batch.values
        records_of: dict[int, list[int]] = {}
        for i, rules in chosen.items():
            for rule in rules:
                if rule in confirms:
                    records_of.setdefault(rule, []).append(i)
        for rule, records in records_of.items():
            held = records
            for forms in confirms[rule]:
                if len(held) > _CONFIRM_ONE_BY_ONE:
                    holding = self._holding(forms, batch)
                    held = [i for i in held if i in holding]
                else:
                    held = [i for i in held if any(_occurs(values[i], f) for f in forms)]
                if not held:
                    break
            if len(held) < len(records):
                for i in set(records).difference(held):
                    chosen[i].discard(rule)

    def _holding(self, forms: set[Spelling], batch: RecordBatch) -> set[int]:
        """The records of ``batch`` holding one of ``forms``."""
        found: set[int] = set()
        joined = batch.joined
        for form in forms:
            for _, start, end in self._scan_for(form.needle)(joined):
                if _checked(joined, start, end, form.before, form.not_after):
                    found.add(batch.record_at(start))
        return found

    def _scan_for(self, needle: bytes) -> Find:
        find = self._single_scans.get(needle)
        if find is None:
            find = self._single_scans[needle] = _finder([needle])
        return find


def _checked(haystack: bytes, start: int, end: int, before: bytes, not_after: bytes) -> bool:
    """Whether the needle found at ``start:end`` has ``before`` just before it and not
    ``not_after`` just after it."""
    if before and haystack[max(0, start - len(before)) : start] != before:
        return False
    return not (not_after and haystack[end : end + 1] == not_after)


def _occurs(value: bytes, form: Spelling) -> bool:
    """Whether ``form`` is in one record, its checks included."""
    start = value.find(form.needle)
    while start >= 0:
        if _checked(value, start, start + len(form.needle), form.before, form.not_after):
            return True
        start = value.find(form.needle, start + 1)
    return False


def _merged(forms: set[Spelling]) -> set[Spelling]:
    """One rule's spellings, less any whose needle contains another's: finding the
    shorter suffices, and unchecked, as it then occurs where its own checks may fail
    (``EndpointSecurity.kext"`` ending ``"/System/.../EndpointSecurity.kext"``)."""
    needles = {form.needle for form in forms}
    merged = set()
    for form in forms:
        if any(other != form.needle and other in form.needle for other in needles):
            continue
        covers = any(other != form.needle and form.needle in other for other in needles)
        merged.add(Spelling(form.needle) if covers else form)
    return merged


def _finder(needles: Sequence[bytes]) -> Find:
    """``find(haystack)``: (needle index, start, end) of every occurrence of ``needles``.

    One automaton of a single needle scans with SIMD substring search; one automaton
    of a few needles picks its prefilter by byte rarity in ordinary text, and on JSON
    (quotes, slashes) ran up to a hundred times slower than as many single scans. Many
    needles share one Hyperscan database, whose pass then costs less than many scans.
    """
    if len(needles) > _SINGLE_SCANS:
        return _many_finder(needles)
    singles = [BytesAhoCorasick([n]).find_matches_as_indexes for n in needles]

    def find(haystack: bytes) -> list[tuple[int, int, int]]:
        return [
            (index, start, end)
            for index, find_one in enumerate(singles)
            for _, start, end in find_one(haystack, overlapping=True)
        ]

    return find


def _many_finder(needles: Sequence[bytes]) -> Find:
    """Every occurrence of many needles in one Hyperscan pass (SIMD literal matching).

    On the ~600 anchors of Elastic's prebuilt rules over 2 KB endpoint events: 0.5 us a
    record, against 3.2 for an Aho-Corasick DFA (which also took ~5 MiB). Hyperscan
    reports each occurrence's end through a callback, as Aho-Corasick with overlaps
    does; the start follows from the needle's length.
    """
    database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    database.compile(
        expressions=list(needles),
        ids=list(range(len(needles))),
        elements=len(needles),
        flags=[0] * len(needles),
        literal=True,
    )
    lengths = [len(needle) for needle in needles]

    def find(haystack: bytes) -> list[tuple[int, int, int]]:
        found: list[tuple[int, int, int]] = []
        add = found.append

        def on_match(index: int, _start: int, end: int, _flags: int, _context: object) -> None:
            add((index, end - lengths[index], end))

        database.scan(haystack, match_event_handler=on_match)
        return found

    return find


def _json_forms(literal: Literal) -> set[Spelling]:
    escaped = json.dumps(literal.text, ensure_ascii=False)[1:-1].encode("utf-8")
    if literal.kind == VALUE:
        return {Spelling(escaped + b'"', before=b'"', not_after=b":")}
    if literal.kind == KEY:
        return {Spelling(escaped + b'"')}
    if literal.kind in (PART, KEY_PART):
        return {Spelling(escaped)}
    raise ValueError(f"unknown literal kind: {literal}")


def _avro_forms(literal: Literal) -> set[Spelling]:
    raw = literal.text.encode("utf-8")
    if literal.kind == VALUE:
        length = _zigzag_varint(len(raw))
        # A short value is found inside many longer strings ("od" in "productVersion"),
        # each found then checked in Python: scanned with its length, its few true
        # occurrences are all that is found. A long one is seldom found by chance.
        if len(raw) < _SHORT_VALUE:
            return {Spelling(length + raw)}
        return {Spelling(raw, before=length)}
    if literal.kind == PART:
        return {Spelling(raw)}
    raise ValueError(f"Avro records do not spell keys: {literal}")


def _any_forms(literal: Literal) -> set[Spelling]:
    return _json_forms(literal) | _avro_forms(literal)


def _zigzag_varint(n: int) -> bytes:
    """Avro's encoding of a non-negative long (a string's length)."""
    n <<= 1
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)
