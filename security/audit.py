"""Check pinned and installed packages against the advisory snapshot, offline.

`python -m security.audit check` checks the pins of constraints.txt (and, with
`--venv-python`, what that interpreter's environment holds) against the snapshot in
`security/advisories/` (`security.snapshot`):

1. Scope: a package whose advisories the snapshot lacks (`Scope.MISSING`: the sources
   have some, the snapshot was built before the pin was added) fails the audit, with
   "refresh the snapshot". A package the sources had no advisory for passes.
2. Matching: every advisory of the snapshot that is not withdrawn, by OSV's rules with
   PEP 440 order (`security.osv_match`). Advisories that alias each other are one finding.
   A version PEP 440 cannot compare makes the finding undecided, which fails too.
3. Accepted findings (`security/accepted.toml`: id or alias, package, reason, date
   accepted, review date) are printed as accepted; past their review date they fail.

One line per finding; exit 0 when nothing is left, 1 on findings, missing scope or an
expired acceptance, 2 when the audit could not run. The snapshot's date is printed, and
a warning when it is older than `--max-age-days` (a warning only: the snapshot's age is
a fact to act on, not a defect of the pins).

`refresh` rebuilds the snapshot (`security.snapshot.refresh`); `accepted-ids` prints the
ids accepted today, for pip-audit's `--ignore-vuln`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from security.osv_match import MatchError, affects, fixed_in, normalize
from security.snapshot import (
    SNAPSHOT_DIR,
    Pin,
    Scope,
    Snapshot,
    SnapshotError,
    load,
    pypi_names,
    read_pins,
    refresh,
)

__all__ = [
    "Accepted",
    "Finding",
    "Target",
    "main",
    "read_accepted",
    "scan",
]

ROOT = Path(__file__).resolve().parents[1]
ACCEPTED = Path(__file__).parent / "accepted.toml"
MAX_AGE_DAYS = 90


class AuditError(Exception):
    """The audit could not run (bad input, a venv that cannot be listed): not a verdict."""


@dataclass(frozen=True)
class Target:
    """A set of exact versions to check: the pins of a file, or an environment."""

    label: str
    pins: tuple[Pin, ...]


@dataclass(frozen=True)
class Finding:
    """One advisory (with its aliases) that affects one package version of one target."""

    target: str
    package: str
    version: str
    ids: tuple[str, ...]
    aliases: tuple[str, ...]
    fixed: tuple[str, ...]
    undecided: str = ""  # why the versions could not be compared, when they could not

    def line(self) -> str:
        aliases = f" ({', '.join(self.aliases)})" if self.aliases else ""
        if self.undecided:
            fixed = f"UNDECIDED: {self.undecided}"
        elif self.fixed:
            fixed = f"fixed in {', '.join(self.fixed)}"
        else:
            fixed = "no fixed version"
        ids = ", ".join(self.ids)
        return f"{self.target}: {self.package}=={self.version} {ids}{aliases} {fixed}"


@dataclass(frozen=True)
class Accepted:
    """A finding judged not to affect us: until `review_by`, reported but not failed."""

    id: str
    package: str
    reason: str
    accepted: dt.date
    review_by: dt.date

    def matches(self, finding: Finding) -> bool:
        names = {*finding.ids, *finding.aliases}
        return normalize(self.package) == normalize(finding.package) and self.id in names


def read_accepted(path: Path = ACCEPTED) -> list[Accepted]:
    """The `[[accepted]]` entries of the accepted-findings file (all fields required)."""
    if not path.exists():
        return []
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    entries = []
    for index, item in enumerate(data.get("accepted", []), 1):
        try:
            entry = Accepted(
                id=str(item["id"]),
                package=str(item["package"]),
                reason=str(item["reason"]).strip(),
                accepted=item["accepted"],
                review_by=item["review_by"],
            )
        except KeyError as exc:
            raise AuditError(f"{path}: entry {index} lacks {exc}") from exc
        if not isinstance(entry.accepted, dt.date) or not isinstance(entry.review_by, dt.date):
            raise AuditError(f"{path}: entry {index}: accepted and review_by must be dates")
        if not entry.reason:
            raise AuditError(f"{path}: entry {index}: a reason is required")
        entries.append(entry)
    return entries


def installed(python: Path) -> tuple[Pin, ...]:
    """The distributions installed for `python` (pip list; editable projects left out)."""
    try:
        done = subprocess.run(
            [str(python), "-m", "pip", "list", "--format=json", "--exclude-editable"],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        raise AuditError(f"cannot list the packages of {python}: {exc}") from exc
    return tuple(Pin(item["name"], item["version"]) for item in json.loads(done.stdout))


def _group(findings: list[Finding]) -> list[Finding]:
    """One finding per vulnerability: records that alias each other (PYSEC and GHSA for
    one CVE) for the same target and version become one line."""
    merged: list[Finding] = []
    for finding in findings:
        names = {*finding.ids, *finding.aliases}
        for index, other in enumerate(merged):
            same = (other.target, other.package, other.version) == (
                finding.target,
                finding.package,
                finding.version,
            )
            if same and names & {*other.ids, *other.aliases}:
                ids = tuple(sorted({*other.ids, *finding.ids}))
                aliases = tuple(sorted({*other.aliases, *finding.aliases} - set(ids)))
                fixed = other.fixed or finding.fixed
                merged[index] = Finding(
                    finding.target,
                    finding.package,
                    finding.version,
                    ids,
                    aliases,
                    fixed,
                    other.undecided or finding.undecided,
                )
                break
        else:
            merged.append(finding)
    return merged


def scan(snapshot: Snapshot, targets: Sequence[Target]) -> list[Finding]:
    """Every advisory of the snapshot that affects a version of a target (osv_match).

    An advisory whose versions PEP 440 cannot compare with the pin is a finding too,
    marked undecided: the audit cannot call it safe.
    """
    by_package: dict[str, list[dict[str, Any]]] = {}
    for record in snapshot.active():
        for name in pypi_names(record):
            by_package.setdefault(name, []).append(record)
    findings = []
    for target in targets:
        for pin in target.pins:
            for record in by_package.get(pin.key, ()):
                try:
                    if not affects(record, pin.name, pin.version):
                        continue
                    fixed = fixed_in(record, pin.name, pin.version)
                    undecided = ""
                except MatchError as exc:
                    fixed, undecided = (), str(exc)
                ids = (record["id"],)
                aliases = tuple(sorted(set(record.get("aliases") or ()) - set(ids)))
                findings.append(
                    Finding(target.label, pin.name, pin.version, ids, aliases, fixed, undecided)
                )
    return _group(findings)


def _check(args: argparse.Namespace) -> int:
    today = args.today or dt.date.today()
    snapshot = load(args.snapshot)
    accepted = read_accepted(args.accepted)
    sources = ", ".join(
        f"{s.repository.removeprefix('https://github.com/')}@{s.commit[:12]}"
        for s in snapshot.sources
    )
    age = snapshot.age_days(today)
    print(
        f"audit: snapshot of {snapshot.date} ({age} days old): {sources}; "
        f"{len(snapshot.active())} advisories for {len(snapshot.packages)} packages"
    )
    if age > args.max_age_days:
        print(
            f"audit: WARNING: the snapshot is over {args.max_age_days} days old: advisories "
            f"published after {snapshot.date} are not checked; refresh it "
            '(scripts/audit --refresh, README "Security")'
        )

    targets = [Target(args.pins.name, tuple(read_pins(args.pins)))]
    if args.venv_python is not None:
        targets.append(Target(f"venv ({args.venv_python})", installed(args.venv_python)))

    failed = False
    for target in targets:
        for pin in target.pins:
            if snapshot.scope(pin.name) is Scope.MISSING:
                failed = True
                print(
                    f"NOT CHECKED {target.label}: {pin.name}=={pin.version}: the sources have "
                    "advisories for it, the snapshot was built without them; refresh it"
                )

    findings = scan(snapshot, targets)
    used: set[Accepted] = set()
    for finding in findings:
        entry = next((a for a in accepted if a.matches(finding)), None)
        if entry is None:
            failed = True
            print(f"VULNERABLE {finding.line()}")
        elif entry.review_by < today:
            failed = True
            used.add(entry)
            print(f"VULNERABLE {finding.line()} (accepted until {entry.review_by}: expired)")
        else:
            used.add(entry)
            print(f"ACCEPTED {finding.line()}: {entry.reason} (review by {entry.review_by})")
    for entry in accepted:
        if entry not in used:
            print(f"audit: note: accepted {entry.id} ({entry.package}) matches nothing: drop it")

    checked = ", ".join(f"{t.label} ({len(t.pins)} packages)" for t in targets)
    print(f"audit: {'FAILED' if failed else 'OK'}: {checked}")
    return 1 if failed else 0


def _refresh(args: argparse.Namespace) -> int:
    snapshot = refresh(args.pins, args.pypa, args.ghsa, args.snapshot)
    for source in snapshot.sources:
        print(
            f"audit: {source.repository} {source.commit} ({source.commit_date.isoformat()}): "
            f"{source.advisories} advisories read"
        )
    print(
        f"audit: wrote {args.snapshot}: {len(snapshot.advisories)} advisories for "
        f"{len(snapshot.packages)} packages; {len(snapshot.covered)} PyPI names covered"
    )
    return 0


def _accepted_ids(args: argparse.Namespace) -> int:
    today = args.today or dt.date.today()
    for entry in read_accepted(args.accepted):
        if entry.review_by >= today:
            print(entry.id)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m security.audit", description=__doc__)
    parser.add_argument("--snapshot", type=Path, default=SNAPSHOT_DIR, help=argparse.SUPPRESS)
    parser.add_argument("--accepted", type=Path, default=ACCEPTED, help=argparse.SUPPRESS)
    parser.add_argument("--today", type=dt.date.fromisoformat, help=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True)

    check = commands.add_parser("check", help="check pins (and a venv) against the snapshot")
    check.add_argument("--pins", type=Path, default=ROOT / "constraints.txt")
    check.add_argument("--venv-python", type=Path, help="also check this interpreter's packages")
    check.add_argument("--max-age-days", type=int, default=MAX_AGE_DAYS)
    check.set_defaults(run=_check)

    update = commands.add_parser("refresh", help="rebuild the snapshot from source checkouts")
    update.add_argument("pypa", type=Path, help="a checkout of pypa/advisory-database")
    update.add_argument("ghsa", type=Path, nargs="?", help="a checkout of github/advisory-database")
    update.add_argument("--pins", type=Path, default=ROOT / "constraints.txt")
    update.set_defaults(run=_refresh)

    ids = commands.add_parser("accepted-ids", help="print the ids accepted today")
    ids.set_defaults(run=_accepted_ids)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; exit status 0 clean, 1 findings, 2 the audit could not run."""
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except (AuditError, SnapshotError, OSError) as exc:
        print(f"audit: ERROR: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
