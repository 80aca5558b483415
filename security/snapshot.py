"""The advisory snapshot: the advisories that concern our pins, carried in the repository.

CI reaches no advisory service, so the audit checks against data committed beside this
module, in `security/advisories/`:

- `advisories.jsonl`: one OSV record per line, as the source database wrote it (YAML
  turned into JSON, nothing else changed), for every advisory whose `affected` names a
  package of `constraints.txt`; withdrawn ones included (the check skips them).
- `manifest.json`: the sources (repository, commit, commit date), the snapshot's date
  (the oldest source commit: advisories published after it are not in the snapshot),
  `packages`, the names the snapshot was built for, and `covered`, every PyPI name that
  has at least one advisory in the sources.

With those two lists a name gets one of three answers (`Snapshot.scope`): its advisories
are in the snapshot; the sources had none for it at the snapshot's date; or the sources
have some but the snapshot was built without them (a pin added since the last refresh),
which the audit must not take for "no advisories".

`refresh` rebuilds both files from checkouts of pypa/advisory-database (OSV YAML under
`vulns/<package>/`) and, optionally, github/advisory-database (OSV JSON under
`advisories/github-reviewed/`, PyPI entries only). Names are compared as PEP 503
normalizes them.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import re
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from security.osv_match import normalize

__all__ = [
    "SNAPSHOT_DIR",
    "Pin",
    "Scope",
    "Snapshot",
    "SnapshotError",
    "Source",
    "load",
    "normalize",
    "pypi_names",
    "read_pins",
    "refresh",
]

SNAPSHOT_DIR = Path(__file__).parent / "advisories"
MANIFEST = "manifest.json"
ADVISORIES = "advisories.jsonl"
FORMAT = 1

PYPA_REPOSITORY = "https://github.com/pypa/advisory-database"
GHSA_REPOSITORY = "https://github.com/github/advisory-database"

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*===?\s*([^\s;#]+)\s*$")

Record = dict[str, Any]


class SnapshotError(Exception):
    """The snapshot or a source checkout is missing or malformed, or a pin is not exact."""


@dataclass(frozen=True)
class Pin:
    """One exact `name==version` line: `name` as written, `key` normalized."""

    name: str
    version: str

    @property
    def key(self) -> str:
        return normalize(self.name)


def read_pins(path: Path) -> list[Pin]:
    """The `name==version` lines of a constraints file; comments and blank lines skipped.

    Anything else (a range, an environment marker, an option) is an error: the audit
    checks exact versions, and a line it cannot read must not pass silently.
    """
    pins = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        match = _PIN.match(line)
        if match is None:
            raise SnapshotError(f"{path}:{number}: not an exact pin (name==version): {raw!r}")
        pins.append(Pin(match[1], match[2]))
    return pins


def pypi_names(record: Record) -> set[str]:
    """The normalized PyPI package names an OSV record's `affected` entries name."""
    names = set()
    for affected in record.get("affected") or ():
        package = affected.get("package") or {}
        if package.get("ecosystem") == "PyPI" and package.get("name"):
            names.add(normalize(package["name"]))
    return names


@dataclass(frozen=True)
class Source:
    """One advisory database the snapshot was taken from, at one commit."""

    name: str
    repository: str
    commit: str
    commit_date: dt.datetime
    advisories: int

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "repository": self.repository,
            "commit": self.commit,
            "commit_date": self.commit_date.isoformat(),
            "advisories": self.advisories,
        }


class Scope(enum.Enum):
    """What the snapshot can say about a package name."""

    IN_SNAPSHOT = "in snapshot"  # the snapshot holds all the sources' advisories for it
    NONE_KNOWN = "none known"  # the sources had no advisory for it at the snapshot's date
    MISSING = "missing"  # the sources have advisories for it; the snapshot lacks them


@dataclass(frozen=True)
class Snapshot:
    """The committed advisory data and what it covers."""

    sources: tuple[Source, ...]
    created: dt.datetime
    packages: frozenset[str]
    covered: frozenset[str]
    advisories: tuple[Record, ...]

    @property
    def date(self) -> dt.date:
        """The oldest source commit's date: advisories published after it are absent."""
        return min(source.commit_date for source in self.sources).date()

    def age_days(self, today: dt.date) -> int:
        return (today - self.date).days

    def scope(self, name: str) -> Scope:
        key = normalize(name)
        if key in self.packages:
            return Scope.IN_SNAPSHOT
        if key not in self.covered:
            return Scope.NONE_KNOWN
        return Scope.MISSING

    def active(self) -> list[Record]:
        """The advisories to match: every record not withdrawn."""
        return [record for record in self.advisories if not record.get("withdrawn")]


def load(directory: Path = SNAPSHOT_DIR) -> Snapshot:
    """Read the snapshot in `directory` (manifest and advisories)."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
        lines = (directory / ADVISORIES).read_text(encoding="utf-8").splitlines()
    except (OSError, ValueError) as exc:
        raise SnapshotError(f"cannot read the advisory snapshot in {directory}: {exc}") from exc
    if manifest.get("format") != FORMAT:
        raise SnapshotError(f"{directory / MANIFEST}: format {manifest.get('format')!r}")
    sources = tuple(
        Source(
            name=item["name"],
            repository=item["repository"],
            commit=item["commit"],
            commit_date=dt.datetime.fromisoformat(item["commit_date"]),
            advisories=item["advisories"],
        )
        for item in manifest["sources"]
    )
    if not sources:
        raise SnapshotError(f"{directory / MANIFEST}: no sources")
    return Snapshot(
        sources=sources,
        created=dt.datetime.fromisoformat(manifest["created"]),
        packages=frozenset(manifest["packages"]),
        covered=frozenset(manifest["covered"]),
        advisories=tuple(json.loads(line) for line in lines if line.strip()),
    )


def _yaml_loader() -> type:
    """A safe YAML loader that keeps every plain scalar but booleans and null a string.

    OSV versions are strings: read as YAML numbers, `fixed: 1.10` would become 1.1, and
    an unquoted date would become a datetime that JSON cannot hold.
    """
    try:
        import yaml
    except ImportError as exc:  # PyYAML is in the dev extra; refresh runs from .venv
        raise SnapshotError("refreshing needs PyYAML (run it with .venv/bin/python)") from exc
    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    dropped = {"tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}
    resolvers = {
        first: [(tag, regexp) for tag, regexp in entries if tag not in dropped]
        for first, entries in base.yaml_implicit_resolvers.items()
    }
    return type("OsvLoader", (base,), {"yaml_implicit_resolvers": resolvers})


def read_pypa(checkout: Path) -> Iterator[Record]:
    """Every OSV record of a pypa/advisory-database checkout (`vulns/*/*.yaml`)."""
    import yaml

    loader = _yaml_loader()
    files = sorted((checkout / "vulns").glob("*/*.yaml"))
    if not files:
        raise SnapshotError(f"{checkout}: no vulns/*/*.yaml (not a pypa/advisory-database?)")
    for path in files:
        record = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
        if not isinstance(record, dict) or "id" not in record:
            raise SnapshotError(f"{path}: not an OSV record")
        yield record


def read_ghsa(checkout: Path) -> Iterator[Record]:
    """The reviewed GitHub advisories of a github/advisory-database checkout that name a
    PyPI package (`advisories/github-reviewed/YYYY/MM/GHSA-*/GHSA-*.json`)."""
    root = checkout / "advisories" / "github-reviewed"
    if not root.is_dir():
        raise SnapshotError(f"{checkout}: no advisories/github-reviewed/")
    for path in sorted(root.glob("*/*/GHSA-*/GHSA-*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        if pypi_names(record):
            yield record


def _git(checkout: Path, *args: str) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(checkout), *args], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SnapshotError(f"{checkout}: not a git checkout ({exc})") from exc
    return done.stdout.strip()


def _source(name: str, repository: str, checkout: Path, advisories: int) -> Source:
    return Source(
        name=name,
        repository=repository,
        commit=_git(checkout, "rev-parse", "HEAD"),
        commit_date=dt.datetime.fromisoformat(_git(checkout, "log", "-1", "--format=%cI")),
        advisories=advisories,
    )


def refresh(
    pins: Path,
    pypa: Path,
    ghsa: Path | None = None,
    out: Path = SNAPSHOT_DIR,
    now: dt.datetime | None = None,
) -> Snapshot:
    """Rebuild the snapshot in `out` for the packages of `pins` from source checkouts.

    Each checkout must be a git work tree: its HEAD commit and commit date go into the
    manifest. Records are kept whole and sorted by package and id, so a refresh with
    unchanged sources writes the same bytes (only `created` moves).
    """
    wanted = {pin.key for pin in read_pins(pins)}
    sources: list[Source] = []
    covered: set[str] = set()
    kept: dict[tuple[str, str], Record] = {}
    inputs: list[tuple[str, str, Path, Iterable[Record]]] = [
        ("pypa", PYPA_REPOSITORY, pypa, read_pypa(pypa))
    ]
    if ghsa is not None:
        inputs.append(("ghsa", GHSA_REPOSITORY, ghsa, read_ghsa(ghsa)))
    for name, repository, checkout, records in inputs:
        count = 0
        for record in records:
            count += 1
            names = pypi_names(record)
            covered |= names
            ours = names & wanted
            if ours:
                kept[(min(ours), record["id"])] = record
        sources.append(_source(name, repository, checkout, count))

    created = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    manifest = {
        "format": FORMAT,
        "about": "advisories for the packages of constraints.txt; see README.md here",
        "created": created.isoformat(),
        "snapshot_date": min(source.commit_date for source in sources).date().isoformat(),
        "sources": [source.as_json() for source in sources],
        "advisories": len(kept),
        "packages": sorted(wanted),
        "covered": sorted(covered),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    lines = [json.dumps(kept[key], sort_keys=True, ensure_ascii=False) for key in sorted(kept)]
    (out / ADVISORIES).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return load(out)
