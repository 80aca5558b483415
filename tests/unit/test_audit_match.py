"""security.osv_match: OSV's ECOSYSTEM ranges in PEP 440 order, on real advisory shapes.

The records are pypa/advisory-database's (CC-BY 4.0), cut to the fields the matcher
reads; a `versions` list cut short says so in a comment.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from security.osv_match import MatchError, affects, fixed_in, in_range, normalize, parse

# introduced/fixed after a GIT range: the ECOSYSTEM range must still count. 2.5.0 is in
# the range but not in the versions list (cut here to its first entries, as upstream).
PYGMENTS_2021_141: dict[str, Any] = {
    "id": "PYSEC-2021-141",
    "aliases": ["CVE-2021-27291", "GHSA-pq64-v7f5-gqh8"],
    "affected": [
        {
            "package": {"name": "pygments", "ecosystem": "PyPI", "purl": "pkg:pypi/pygments"},
            "ranges": [
                {
                    "type": "GIT",
                    "repo": "https://github.com/pygments/pygments",
                    "events": [
                        {"introduced": "0"},
                        {"fixed": "2e7e8c4a7b318f4032493773732754e418279a14"},
                    ],
                },
                {"type": "ECOSYSTEM", "events": [{"introduced": "1.1"}, {"fixed": "2.7.4"}]},
            ],
            "versions": ["1.1", "1.1.1", "1.2"],
        }
    ],
}

# Two introduced/fixed pairs in one range, out of order in the record.
ANSIBLE_2018_42: dict[str, Any] = {
    "id": "PYSEC-2018-42",
    "aliases": ["CVE-2018-10855", "GHSA-jwcc-j78w-j73w"],
    "affected": [
        {
            "package": {"name": "ansible", "ecosystem": "PyPI", "purl": "pkg:pypi/ansible"},
            "ranges": [
                {
                    "type": "ECOSYSTEM",
                    "events": [
                        {"introduced": "2.5"},
                        {"fixed": "2.5.5"},
                        {"introduced": "2.4"},
                        {"fixed": "2.4.5.0"},
                    ],
                }
            ],
        }
    ],
}

# Fixed in release candidates; a second line introduced at 2.9.0.
ANSIBLE_2020_209: dict[str, Any] = {
    "id": "PYSEC-2020-209",
    "aliases": ["CVE-2020-14365", "GHSA-m429-fhmv-c6q2"],
    "affected": [
        {
            "package": {"name": "ansible", "ecosystem": "PyPI", "purl": "pkg:pypi/ansible"},
            "ranges": [
                {
                    "type": "ECOSYSTEM",
                    "events": [
                        {"introduced": "2.8.0"},
                        {"fixed": "2.8.16rc1"},
                        {"introduced": "2.9.0"},
                        {"fixed": "2.9.14rc1"},
                    ],
                }
            ],
        }
    ],
}

# last_affected: everything up to and including 1.11.0 (versions list cut short).
PY_2022_42969: dict[str, Any] = {
    "id": "PYSEC-2022-42969",
    "aliases": ["CVE-2022-42969", "GHSA-w596-4wvx-j9j6"],
    "affected": [
        {
            "package": {"name": "py", "ecosystem": "PyPI", "purl": "pkg:pypi/py"},
            "ranges": [
                {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"last_affected": "1.11.0"}]}
            ],
            "versions": ["0.8.0-alpha2", "0.9.0", "1.10.0", "1.11.0"],
        }
    ],
}

# A versions list and no range: one malicious release.
GRATIENT_2024_1: dict[str, Any] = {
    "id": "PYSEC-2024-1",
    "summary": "gratient 0.5 contains credential harvesting code",
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "gratient", "purl": "pkg:pypi/gratient"},
            "versions": ["0.5"],
        }
    ],
}

# Withdrawn, with a range open to every version (versions list cut short).
REDIS_2023_73: dict[str, Any] = {
    "id": "PYSEC-2023-73",
    "aliases": ["CVE-2023-31655"],
    "withdrawn": "2023-06-06T10:37:00Z",
    "affected": [
        {
            "package": {"name": "redis", "ecosystem": "PyPI", "purl": "pkg:pypi/redis"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}],
            "versions": ["0.6.0", "4.6.0", "5.0.0rc1"],
        }
    ],
}

# GitHub's record for CVE-2020-14343 names the package as PyPI displays it.
PYYAML_GHSA: dict[str, Any] = {
    "id": "GHSA-8q59-q68h-6hv4",
    "aliases": ["CVE-2020-14343"],
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "PyYAML"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "5.4"}]}],
        }
    ],
}


@pytest.mark.parametrize(
    ("version", "expected"),
    [("1.0", False), ("1.1", True), ("2.5.0", True), ("2.7.3", True), ("2.7.4", False)],
)
def test_introduced_fixed_after_a_git_range(version: str, expected: bool) -> None:
    assert affects(PYGMENTS_2021_141, "pygments", version) is expected


def test_fixed_in_is_the_next_fix_above_the_version() -> None:
    assert fixed_in(PYGMENTS_2021_141, "Pygments", "2.5.0") == ("2.7.4",)
    assert fixed_in(ANSIBLE_2018_42, "ansible", "2.4.3") == ("2.4.5.0", "2.5.5")
    assert fixed_in(ANSIBLE_2018_42, "ansible", "2.5.1") == ("2.5.5",)
    assert fixed_in(PY_2022_42969, "py", "1.11.0") == ()


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("2.3.9", False),
        ("2.4", True),
        ("2.4.4", True),
        ("2.4.5", False),  # 2.4.5 == 2.4.5.0 in PEP 440
        ("2.4.9", False),
        ("2.5.0", True),
        ("2.5.4", True),
        ("2.5.5", False),
        ("2.6.0", False),
    ],
)
def test_two_pairs_out_of_order(version: str, expected: bool) -> None:
    assert affects(ANSIBLE_2018_42, "ansible", version) is expected


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("2.8.0b1", False),  # before the introducing release
        ("2.8.0", True),
        ("2.8.15", True),
        ("2.8.16b1", True),  # a beta sits below the rc that fixed it
        ("2.8.16rc1", False),
        ("2.8.16", False),
        ("2.9.0rc1", False),  # between the 2.8 fix and the 2.9.0 introduction
        ("2.9.0", True),
        ("2.9.14rc1", False),
    ],
)
def test_pre_releases_in_pep440_order(version: str, expected: bool) -> None:
    assert affects(ANSIBLE_2020_209, "ansible", version) is expected


@pytest.mark.parametrize(
    ("version", "expected"),
    [("0.1", True), ("1.4.7.dev3", True), ("1.11.0", True), ("1.11.1", False), ("2.0", False)],
)
def test_last_affected_is_inclusive(version: str, expected: bool) -> None:
    assert affects(PY_2022_42969, "py", version) is expected


def test_versions_list_alone() -> None:
    assert affects(GRATIENT_2024_1, "gratient", "0.5")
    assert affects(GRATIENT_2024_1, "gratient", "0.5.0")  # the same version in PEP 440
    assert not affects(GRATIENT_2024_1, "gratient", "0.4")
    assert not affects(GRATIENT_2024_1, "gratient", "0.6")


def test_versions_list_spelled_unlike_the_pin() -> None:
    record = copy.deepcopy(PY_2022_42969)
    record["affected"][0].pop("ranges")
    assert affects(record, "py", "0.8.0a2")  # listed as 0.8.0-alpha2
    assert not affects(record, "py", "1.11.1")


def test_withdrawn_affects_nothing() -> None:
    assert not affects(REDIS_2023_73, "redis", "4.6.0")
    assert not affects(REDIS_2023_73, "redis", "5.0.0rc1")
    live = {k: v for k, v in REDIS_2023_73.items() if k != "withdrawn"}
    assert affects(live, "redis", "4.6.0")


def test_package_names_are_compared_normalized() -> None:
    assert affects(PYYAML_GHSA, "pyyaml", "5.3.1")
    assert affects(PYYAML_GHSA, "PyYAML", "5.4b2")
    assert not affects(PYYAML_GHSA, "PyYAML", "5.4")
    assert not affects(PYYAML_GHSA, "pyyaml-include", "1.0")
    assert normalize("typing_extensions") == normalize("Typing.Extensions") == "typing-extensions"


def test_other_ecosystems_do_not_count() -> None:
    record = copy.deepcopy(PYYAML_GHSA)
    record["affected"][0]["package"]["ecosystem"] = "npm"
    assert not affects(record, "PyYAML", "5.3")


def test_limit_bounds_the_range() -> None:
    events = [{"introduced": "1.0"}, {"limit": "2.0"}]
    assert in_range(parse("1.5"), events)
    assert not in_range(parse("2.0"), events)
    assert not in_range(parse("0.9"), events)


def test_versions_pep440_cannot_read_are_an_error_not_a_pass() -> None:
    with pytest.raises(MatchError):
        affects(PYGMENTS_2021_141, "pygments", "not-a-version")
    record = copy.deepcopy(PYGMENTS_2021_141)
    record["affected"][0]["ranges"][1]["events"][1] = {"fixed": "2.7.4-final-really"}
    with pytest.raises(MatchError):
        affects(record, "pygments", "2.8.0")
