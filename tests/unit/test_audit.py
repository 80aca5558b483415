"""The dependency audit against the committed advisory snapshot: offline, deterministic.

The first tests run the real check on the real pins, so a pin moved onto a version with a
known advisory fails here as well as in scripts/audit.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from security.audit import main
from security.snapshot import Scope, load, read_pins, refresh

ROOT = Path(__file__).parents[2]
CONSTRAINTS = ROOT / "constraints.txt"


def audit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "security.audit", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_committed_pins_pass_the_audit() -> None:
    done = audit("check", "--pins", str(CONSTRAINTS))
    assert done.returncode == 0, done.stdout + done.stderr
    snapshot = load()
    assert f"audit: snapshot of {snapshot.date}" in done.stdout
    assert "VULNERABLE" not in done.stdout and "NOT CHECKED" not in done.stdout
    assert f"audit: OK: constraints.txt ({len(read_pins(CONSTRAINTS))} packages)" in done.stdout


def test_the_installed_environment_passes_the_audit() -> None:
    # The interpreter running the tests: .venv as scripts/bootstrap made it from the pins.
    done = audit("check", "--pins", str(CONSTRAINTS), "--venv-python", sys.executable)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_vulnerable_pin_is_reported(tmp_path: Path) -> None:
    pins = tmp_path / "constraints.txt"
    pins.write_text("lark==1.3.1\nsetuptools==65.5.0\nPyYAML==5.3.1\n", encoding="utf-8")
    done = audit("check", "--pins", str(pins))
    assert done.returncode == 1, done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("VULNERABLE")]
    assert lines == [
        "VULNERABLE constraints.txt: setuptools==65.5.0 PYSEC-2022-43012 (CVE-2022-40897) "
        "fixed in 65.5.1",
        "VULNERABLE constraints.txt: PyYAML==5.3.1 PYSEC-2021-142 "
        "(CVE-2020-14343, GHSA-8q59-q68h-6hv4) fixed in 5.4",
    ]
    assert "audit: FAILED" in done.stdout


def test_a_pin_whose_advisories_the_snapshot_lacks_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    snapshot = load()
    assert snapshot.scope("Django") is Scope.MISSING  # the sources have Django advisories
    assert snapshot.scope("no-such-package-anywhere") is Scope.NONE_KNOWN
    assert snapshot.scope("lark") is Scope.IN_SNAPSHOT
    pins = tmp_path / "pins.txt"
    pins.write_text("no-such-package-anywhere==1.0\n", encoding="utf-8")
    assert main(["check", "--pins", str(pins)]) == 0
    pins.write_text("no-such-package-anywhere==1.0\nDjango==5.0\n", encoding="utf-8")
    assert main(["check", "--pins", str(pins)]) == 1
    assert (
        "NOT CHECKED pins.txt: Django==5.0: the sources have advisories" in capsys.readouterr().out
    )


def test_accepted_findings_pass_until_their_review_date(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pins = tmp_path / "pins.txt"
    pins.write_text("setuptools==65.5.0\n", encoding="utf-8")
    accepted = tmp_path / "accepted.toml"
    accepted.write_text(
        '[[accepted]]\nid = "CVE-2022-40897"\npackage = "setuptools"\n'
        'reason = "package_index is never used"\naccepted = 2026-01-01\n'
        "review_by = 2026-06-30\n",
        encoding="utf-8",
    )
    base = ["--accepted", str(accepted)]
    assert main([*base, "--today", "2026-06-30", "check", "--pins", str(pins)]) == 0
    assert "ACCEPTED pins.txt: setuptools==65.5.0 PYSEC-2022-43012" in capsys.readouterr().out
    assert main([*base, "--today", "2026-07-01", "check", "--pins", str(pins)]) == 1
    assert "(accepted until 2026-06-30: expired)" in capsys.readouterr().out
    assert main([*base, "--today", "2026-06-30", "accepted-ids"]) == 0
    assert capsys.readouterr().out == "CVE-2022-40897\n"


def test_an_old_snapshot_is_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pins = tmp_path / "pins.txt"
    pins.write_text("lark==1.3.1\n", encoding="utf-8")
    date = load().date
    assert main(["--today", date.isoformat(), "check", "--pins", str(pins)]) == 0
    assert "WARNING" not in capsys.readouterr().out
    later = date.replace(year=date.year + 1).isoformat()
    assert main(["--today", later, "check", "--pins", str(pins)]) == 0
    assert "WARNING: the snapshot is over 90 days old" in capsys.readouterr().out


def test_a_line_that_is_not_an_exact_pin_stops_the_audit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pins = tmp_path / "pins.txt"
    pins.write_text("# fine\nlark==1.3.1\nsetuptools>=65\n", encoding="utf-8")
    assert main(["check", "--pins", str(pins)]) == 2
    assert "pins.txt:3: not an exact pin" in capsys.readouterr().err


def _git_checkout(path: Path, files: dict[str, str]) -> str:
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text, encoding="utf-8")
    env = ["-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    subprocess.run(["git", "-C", str(path), "add", "."], check=True)
    subprocess.run(["git", "-C", str(path), *env, "commit", "-qm", "data"], check=True)
    return subprocess.run(
        ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_refresh_keeps_our_packages_and_records_the_scope(tmp_path: Path) -> None:
    # Real records: the committed snapshot's, written back the way the sources hold them.
    records = {r["id"]: r for r in load().advisories}
    setuptools, pyyaml = records["PYSEC-2022-43012"], records["PYSEC-2021-142"]
    other_package = {"ecosystem": "PyPI", "name": "Other_Package"}
    other = {**pyyaml, "id": "PYSEC-2099-1", "affected": [{"package": other_package}]}
    pypa = tmp_path / "pypa"
    pypa_commit = _git_checkout(
        pypa,
        {
            "vulns/setuptools/PYSEC-2022-43012.yaml": yaml.safe_dump(setuptools),
            "vulns/pyyaml/PYSEC-2021-142.yaml": yaml.safe_dump(pyyaml),
            "vulns/other-package/PYSEC-2099-1.yaml": yaml.safe_dump(other),
        },
    )
    ghsa_record = {
        "id": "GHSA-8q59-q68h-6hv4",
        "aliases": ["CVE-2020-14343"],
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "PyYAML"},
                "ranges": [
                    {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "5.4"}]}
                ],
            }
        ],
    }
    npm_package = {"ecosystem": "npm", "name": "pyyaml"}
    npm_record = {"id": "GHSA-xxxx-xxxx-xxxx", "affected": [{"package": npm_package}]}
    ghsa = tmp_path / "ghsa"
    base = "advisories/github-reviewed/2021/03"
    _git_checkout(
        ghsa,
        {
            f"{base}/GHSA-8q59-q68h-6hv4/GHSA-8q59-q68h-6hv4.json": json.dumps(ghsa_record),
            f"{base}/GHSA-xxxx-xxxx-xxxx/GHSA-xxxx-xxxx-xxxx.json": json.dumps(npm_record),
        },
    )
    pins = tmp_path / "constraints.txt"
    pins.write_text("PyYAML==5.3.1\nsetuptools==84.2.1\nlark==1.3.1\n", encoding="utf-8")

    snapshot = refresh(pins, pypa, ghsa, tmp_path / "out")

    assert [r["id"] for r in snapshot.advisories] == [
        "GHSA-8q59-q68h-6hv4",
        "PYSEC-2021-142",
        "PYSEC-2022-43012",
    ]
    assert snapshot.advisories[1] == pyyaml  # unchanged by the YAML round trip
    assert snapshot.packages == {"pyyaml", "setuptools", "lark"}
    assert snapshot.covered == {"pyyaml", "setuptools", "other-package"}
    assert [(s.name, s.advisories) for s in snapshot.sources] == [("pypa", 3), ("ghsa", 1)]
    assert snapshot.sources[0].commit == pypa_commit
    assert snapshot.scope("other_package") is Scope.MISSING
    assert snapshot.scope("lark") is Scope.IN_SNAPSHOT

    # The aliased PYSEC and GHSA records are one finding.
    pins.write_text("PyYAML==5.3.1\n", encoding="utf-8")
    out = tmp_path / "out"
    done = audit("--snapshot", str(out), "check", "--pins", str(pins))
    assert done.returncode == 1
    assert (
        "VULNERABLE constraints.txt: PyYAML==5.3.1 GHSA-8q59-q68h-6hv4, PYSEC-2021-142 "
        "(CVE-2020-14343) fixed in 5.4"
    ) in done.stdout.splitlines()
