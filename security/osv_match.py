"""Does an OSV advisory affect one version of one PyPI package?

The OSV schema's evaluation (ossf.github.io/osv-schema, "Evaluation"), for the PyPI
ecosystem, with PEP 440 order from `packaging`:

- An `affected` entry counts when its package is PyPI and its name is the package's (PEP
  503 normalized). The version is affected when it is in the entry's `versions` list, or
  inside one of its ECOSYSTEM ranges. Other range types (GIT: commit hashes) say nothing
  about a release number and are skipped; SEMVER is not used for PyPI.
- A range is a list of events. Sorted by version ("0" is below every version), they are
  walked in order: `introduced` at or below the version makes it affected, `fixed` at or
  below makes it not, `last_affected` strictly below makes it not. A `limit` event bounds
  the range from above: at or past every limit, nothing is affected.
- Pre-releases are ordinary points of that order: 2.0.0rc1 sits below 2.0.0, so it is
  inside "introduced 0, fixed 2.0.0" and outside "introduced 2.0.0".
- A withdrawn advisory (`withdrawn` set) affects nothing.

A version that PEP 440 cannot read, in the package's pin or in an event of a range that
must be evaluated, raises `MatchError`: the audit reports that as undecided, not as safe.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from packaging.version import InvalidVersion, Version

__all__ = ["MatchError", "affects", "fixed_in", "in_range", "normalize", "parse"]

Record = Mapping[str, Any]
Event = Mapping[str, str]

_KINDS = ("introduced", "fixed", "last_affected", "limit")


class MatchError(ValueError):
    """A version in the pin or in the advisory is not PEP 440: no verdict possible."""


def normalize(name: str) -> str:
    """The PEP 503 form of a project name: lower case, runs of `-_.` become one `-`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse(text: str) -> Version:
    """The PEP 440 version of `text`; `MatchError` when it is not one."""
    try:
        return Version(text)
    except InvalidVersion as exc:
        raise MatchError(f"not a PEP 440 version: {text!r}") from exc


def _entries(record: Record, package: str) -> Iterator[Mapping[str, Any]]:
    """The record's `affected` entries for `package` on PyPI."""
    key = normalize(package)
    for affected in record.get("affected") or ():
        info = affected.get("package") or {}
        if info.get("ecosystem") == "PyPI" and normalize(info.get("name", "")) == key:
            yield affected


def _event(event: Event) -> tuple[str, str]:
    for kind in _KINDS:
        if kind in event:
            return kind, event[kind]
    raise MatchError(f"an event without a known kind: {dict(event)!r}")


def _sorted_events(events: Sequence[Event]) -> list[tuple[str, Version | None]]:
    """(kind, version) by version; None stands for "0", below everything."""
    parsed = []
    for event in events:
        kind, text = _event(event)
        parsed.append((kind, None if kind == "introduced" and text == "0" else parse(text)))
    # Stable: events at one version keep the record's order.
    return sorted(parsed, key=lambda item: (0, Version("0")) if item[1] is None else (1, item[1]))


def in_range(version: Version, events: Sequence[Event]) -> bool:
    """Whether `version` falls inside one ECOSYSTEM range, given as its events."""
    ordered = _sorted_events(events)
    limits = [bound for kind, bound in ordered if kind == "limit" and bound is not None]
    if limits and all(version >= bound for bound in limits):
        return False
    affected = False
    for kind, bound in ordered:
        if kind == "introduced":
            affected = affected or bound is None or version >= bound
        elif bound is not None and (
            (kind == "fixed" and version >= bound) or (kind == "last_affected" and version > bound)
        ):
            affected = False
    return affected


def _listed(version: Version, text: str, versions: Sequence[str]) -> bool:
    for listed in versions:
        if listed == text:
            return True
        try:
            if Version(listed) == version:
                return True
        except InvalidVersion:
            continue  # a legacy entry cannot equal a PEP 440 pin unless spelled alike
    return False


def affects(record: Record, package: str, version: str) -> bool:
    """Whether the advisory `record` affects `package` at `version` (see the module doc)."""
    if record.get("withdrawn"):
        return False
    entries = list(_entries(record, package))
    if not entries:
        return False
    parsed = parse(version)
    for affected in entries:
        if _listed(parsed, version, affected.get("versions") or ()):
            return True
        for range_ in affected.get("ranges") or ():
            if range_.get("type") == "ECOSYSTEM" and in_range(parsed, range_.get("events") or ()):
                return True
    return False


def fixed_in(record: Record, package: str, version: str) -> tuple[str, ...]:
    """The versions that fix `record` for `package` above `version`, lowest first.

    From the `fixed` events of the record's ECOSYSTEM ranges for the package that are
    above the version: with several release lines ("fixed 1.2.9", "fixed 2.0.1"), the
    first one is the nearest upgrade. Empty when no fix is recorded.
    """
    parsed = parse(version)
    fixes: dict[Version, str] = {}
    for affected in _entries(record, package):
        for range_ in affected.get("ranges") or ():
            if range_.get("type") != "ECOSYSTEM":
                continue
            for event in range_.get("events") or ():
                if "fixed" in event:
                    bound = parse(event["fixed"])
                    if bound > parsed:
                        fixes.setdefault(bound, event["fixed"])
    return tuple(fixes[bound] for bound in sorted(fixes))
