"""Deterministic generator of realistic ECS process events, for demos, tests and benchmarks.

The events look like what Elastic Defend (macOS exec events, ``logs-endpoint.events.process``)
and Auditbeat's ``system/process`` dataset write to Kafka: nested JSON objects, ECS arrays for
``event.category`` and ``event.type``, no ``event.ingested`` (no ingest pipeline runs on the
Kafka path), 1.4-2.5 KB of compact JSON each (mean about 1.8 KB). Values (hosts, ids,
hashes) are made up but shaped like the real thing; see ``shared/reference/elastic-semantics.md``
§5.

Besides benign traffic the generator mixes in *labeled* events for the seed rule ("Attempt
to Unload Elastic Endpoint Security Kernel Extension")::

    event.category:process and event.type:(start or process_started) and
    process.name:kextunload and process.args:("/System/Library/Extensions/EndpointSecurity.kext"
    or "EndpointSecurity.kext")

*Attacks* match it; *near misses* look alike but must not match under KQL's exact,
case-sensitive keyword semantics. :func:`labeled_events` gives each of them by name.

Determinism: the same arguments give the same events, byte for byte once serialised with
``json.dumps`` (nothing depends on the clock, hash seeds or the environment). Timestamps:
event ``i`` has ``@timestamp = start + i / events_per_second`` exactly (kept in integer
100 ns ticks, so there is no float drift), strictly increasing. Defend events render 7
fractional digits like the real agent; Auditbeat events render milliseconds (truncated) like
libbeat's codec. So at more than 1000 events/s two Auditbeat events can show the same
``@timestamp``, and an Auditbeat event can show up to 1 ms less than the Defend event before
it, as in a real mixed stream. At 1000 events/s or fewer the rendered times strictly increase.

Regenerate the package's sample file with ``python -m consumer.generator --write-sample``
(see :func:`sample_events`).
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import json
import random
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

__all__ = [
    "ATTACK_CASES",
    "DEFAULT_START",
    "NEAR_MISS_CASES",
    "SAMPLE_SEED",
    "STREAM_ATTACK_CASES",
    "STREAM_NEAR_MISS_CASES",
    "LabeledEvent",
    "expected_matches",
    "generate_events",
    "labeled_events",
    "main",
    "sample_events",
]

Event = dict[str, Any]

#: Used when ``start`` is not given, so that output never depends on the clock.
DEFAULT_START = datetime(2026, 12, 4, 9, 0, 0, tzinfo=UTC)
#: Seed of ``consumer/samples/macos_process_events.ndjson``.
SAMPLE_SEED = 20261204

_TICKS_PER_SECOND = 10_000_000  # 100 ns, Defend's timestamp resolution
_KEXT_PATH = "/System/Library/Extensions/EndpointSecurity.kext"
_KEXT_BARE = "EndpointSecurity.kext"
_ENDPOINT_VERSION = "8.12.2"
_BEAT_VERSION = "8.12.2"
_ECS_VERSION = "8.10.0"


# --------------------------------------------------------------------------------------------
# Pools: hosts, users, binaries
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Binary:
    """A program as the process table shows it: how it is started and who signs it."""

    name: str
    executable: str
    arg_sets: tuple[tuple[str, ...], ...]
    signer: str = "Software Signing"
    signing_id: str = ""
    team_id: str = ""
    parents: tuple[str, ...] = ("zsh",)
    weight: int = 10


def _apple(
    name: str,
    executable: str,
    *arg_sets: tuple[str, ...],
    parents: tuple[str, ...] = ("zsh",),
    weight: int = 10,
) -> _Binary:
    return _Binary(
        name, executable, arg_sets, "Software Signing", f"com.apple.{name}", "", parents, weight
    )


_CHROME_HELPER = (
    "/Applications/Google Chrome.app/Contents/Frameworks/Google Chrome Framework.framework/"
    "Versions/121.0.6167.160/Helpers/Google Chrome Helper.app/Contents/MacOS/Google Chrome Helper"
)
_CODE_HELPER = (
    "/Applications/Visual Studio Code.app/Contents/Frameworks/Code Helper.app/Contents/MacOS/"
    "Code Helper"
)

_MAC_BINARIES: tuple[_Binary, ...] = (
    _apple(
        "xpcproxy",
        "/usr/libexec/xpcproxy",
        ("xpcproxy", "com.apple.mdworker.shared"),
        ("xpcproxy", "com.apple.quicklook.ThumbnailsAgent"),
        parents=("launchd",),
        weight=40,
    ),
    _apple(
        "mdworker_shared",
        "/System/Library/Frameworks/CoreServices.framework/Frameworks/"
        "Metadata.framework/Versions/A/Support/mdworker_shared",
        (
            "/System/Library/Frameworks/CoreServices.framework/Frameworks/Metadata.framework/"
            "Versions/A/Support/mdworker_shared",
            "-s",
            "mdworker",
            "-c",
            "MDSImporterWorker",
            "-m",
            "com.apple.mdworker.shared",
        ),
        parents=("launchd",),
        weight=30,
    ),
    _apple(
        "git",
        "/usr/bin/git",
        ("git", "status", "--porcelain"),
        ("git", "fetch", "origin"),
        ("git", "rev-parse", "--abbrev-ref", "HEAD"),
        weight=25,
    ),
    _apple("ls", "/bin/ls", ("ls", "-la"), ("ls", "-G")),
    _apple("ps", "/bin/ps", ("ps", "-axo", "pid,ppid,command"), ("ps", "aux")),
    _apple(
        "grep",
        "/usr/bin/grep",
        ("grep", "-r", "TODO", "."),
        ("grep", "--color=auto", "-i", "error"),
    ),
    _apple(
        "curl",
        "/usr/bin/curl",
        ("curl", "-fsSL", "https://api.github.com/repos/elastic/beats"),
        (
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "https://intranet.example.com/health",
        ),
    ),
    _apple("ssh", "/usr/bin/ssh", ("ssh", "-T", "git@github.com"), ("ssh", "deploy@10.20.0.15")),
    _apple(
        "launchctl",
        "/bin/launchctl",
        ("launchctl", "list"),
        ("launchctl", "print", "system/com.apple.softwareupdated"),
        parents=("zsh", "launchd"),
    ),
    _apple(
        "sw_vers", "/usr/bin/sw_vers", ("sw_vers", "-productVersion"), parents=("zsh", "python3")
    ),
    _apple("defaults", "/usr/bin/defaults", ("defaults", "read", "com.apple.dock", "autohide")),
    _apple("plutil", "/usr/bin/plutil", ("plutil", "-convert", "json", "-o", "-", "Info.plist")),
    _apple(
        "codesign",
        "/usr/bin/codesign",
        ("codesign", "-dv", "--verbose=4", "/Applications/Slack.app"),
    ),
    _apple(
        "kextstat",
        "/usr/sbin/kextstat",
        ("kextstat", "-l"),
        ("kextstat", "-b", "com.apple.iokit.IOUSBHostFamily"),
        weight=3,
    ),
    _apple(
        "system_profiler",
        "/usr/sbin/system_profiler",
        ("system_profiler", "SPHardwareDataType"),
        weight=3,
    ),
    _apple("softwareupdate", "/usr/sbin/softwareupdate", ("softwareupdate", "--list"), weight=2),
    _apple(
        "diskutil",
        "/usr/sbin/diskutil",
        ("diskutil", "list"),
        ("diskutil", "apfs", "list"),
        weight=3,
    ),
    _apple(
        "osascript",
        "/usr/bin/osascript",
        ("osascript", "-e", 'tell application "Finder" to get name'),
        weight=3,
    ),
    _apple(
        "networksetup",
        "/usr/sbin/networksetup",
        ("networksetup", "-getairportnetwork", "en0"),
        weight=3,
    ),
    _apple(
        "zsh", "/bin/zsh", ("-zsh",), ("/bin/zsh", "-l"), parents=("login", "Terminal"), weight=8
    ),
    _apple(
        "python3",
        "/usr/bin/python3",
        ("python3", "-m", "pip", "list"),
        ("python3", "manage.py", "runserver"),
        weight=6,
    ),
    _Binary(
        "brew",
        "/opt/homebrew/Library/Homebrew/brew.sh",
        (("brew", "update"), ("brew", "upgrade", "--greedy")),
        "",
        "",
        "",
        ("zsh",),
        4,
    ),
    _Binary(
        "node",
        "/opt/homebrew/Cellar/node/21.6.1/bin/node",
        (("node", "/Users/dev/app/node_modules/.bin/vite"), ("node", "server.js")),
        "",
        "",
        "",
        ("zsh", "Code Helper"),
        8,
    ),
    _Binary(
        "Google Chrome Helper",
        _CHROME_HELPER,
        (
            (
                _CHROME_HELPER,
                "--type=utility",
                "--utility-sub-type=network.mojom.NetworkService",
                "--lang=en-US",
            ),
        ),
        "Developer ID Application: Google LLC (EQHXZ8M8AV)",
        "com.google.Chrome.helper",
        "EQHXZ8M8AV",
        ("Google Chrome",),
        20,
    ),
    _Binary(
        "Code Helper",
        _CODE_HELPER,
        (
            (
                _CODE_HELPER,
                "--type=utility",
                "--utility-sub-type=node.mojom.NodeService",
            ),
        ),
        "Developer ID Application: Microsoft Corporation (UBF8T346G9)",
        "com.microsoft.VSCode.helper",
        "UBF8T346G9",
        ("Electron",),
        10,
    ),
)

_LINUX_BINARIES: tuple[_Binary, ...] = (
    _Binary(
        "bash",
        "/usr/bin/bash",
        (("bash", "-c", "uptime"), ("-bash",)),
        parents=("sshd",),
        weight=10,
    ),
    _Binary("sshd", "/usr/sbin/sshd", (("sshd: deploy [priv]",),), parents=("sshd",), weight=5),
    _Binary("cron", "/usr/sbin/cron", (("/usr/sbin/CRON", "-f"),), parents=("cron",), weight=5),
    _Binary(
        "run-parts",
        "/usr/bin/run-parts",
        (("run-parts", "--report", "/etc/cron.hourly"),),
        parents=("cron",),
        weight=4,
    ),
    _Binary(
        "systemctl",
        "/usr/bin/systemctl",
        (("systemctl", "is-active", "nginx"), ("systemctl", "status", "elastic-agent")),
        parents=("bash",),
    ),
    _Binary(
        "apt-get",
        "/usr/bin/apt-get",
        (("apt-get", "update", "-qq"),),
        parents=("bash", "sudo"),
        weight=3,
    ),
    _Binary(
        "python3",
        "/usr/bin/python3.10",
        (("python3", "/opt/app/worker.py", "--queue", "default"),),
        parents=("systemd",),
        weight=8,
    ),
    _Binary(
        "curl",
        "/usr/bin/curl",
        (("curl", "-fsS", "http://127.0.0.1:9200/_cluster/health"),),
        parents=("bash",),
        weight=6,
    ),
    _Binary("ps", "/usr/bin/ps", (("ps", "-ef"),), parents=("bash",), weight=4),
)

# Parents that are not in the pools above.
_EXTRA_PARENTS = {
    "launchd": "/sbin/launchd",
    "login": "/usr/bin/login",
    "sudo": "/usr/bin/sudo",
    "Terminal": "/System/Applications/Utilities/Terminal.app/Contents/MacOS/Terminal",
    "Google Chrome": "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
    "Electron": "/Applications/Visual Studio Code.app/Contents/MacOS/Electron",
    "systemd": "/usr/lib/systemd/systemd",
    "sshd": "/usr/sbin/sshd",
    "cron": "/usr/sbin/cron",
    "bash": "/usr/bin/bash",
    "zsh": "/bin/zsh",
    "python3": "/usr/bin/python3",
    "Code Helper": _CODE_HELPER,
}

_MAC_USERS = ("alice", "bob", "carol", "dmitri", "erin", "farah", "gustavo", "hana")
_LINUX_USERS = (("deploy", "1001"), ("www-data", "33"), ("root", "0"), ("ubuntu", "1000"))
_MAC_OS = (
    ("12.7.3", "21.6.0", "arm64"),
    ("13.6.4", "22.6.0", "arm64"),
    ("14.3.1", "23.3.0", "arm64"),
    ("13.6.4", "22.6.0", "x86_64"),
)
_LINUX_OS = (
    ("ubuntu", "debian", "Ubuntu", "22.04.3 LTS (Jammy Jellyfish)", "5.15.0-92-generic"),
    ("rhel", "redhat", "Red Hat Enterprise Linux", "9.3 (Plow)", "5.14.0-362.18.1.el9_3.x86_64"),
)


@dataclass(slots=True)
class _Host:
    """One machine and its agent, with the counters its agent keeps."""

    name: str
    host_id: str
    agent_id: str
    ip: str
    mac: str
    os: dict[str, Any]
    linux: bool
    owner: str
    owner_uid: str
    sequence: int
    next_pid: int
    boot_epoch: int


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _make_hosts(rng: random.Random, mac_count: int = 24, linux_count: int = 6) -> list[_Host]:
    hosts: list[_Host] = []
    for n in range(mac_count):
        version, kernel, arch = rng.choice(_MAC_OS)
        owner = _MAC_USERS[n % len(_MAC_USERS)]
        name = f"mbp-{rng.choice(('eng', 'fin', 'ops', 'sales'))}-{n + 1:03d}"
        os_ = {
            "type": "macos",
            "family": "macos",
            "name": "macOS",
            "platform": "macos",
            "version": version,
            "full": f"macOS {version}",
            "kernel": kernel,
            "Ext": {"variant": "Darwin"},
        }
        hosts.append(
            _Host(
                name,
                str(uuid.UUID(int=rng.getrandbits(128))).upper(),
                _uuid(rng),
                f"10.20.{rng.randrange(1, 250)}.{rng.randrange(2, 250)}",
                "a4-83-e7-" + "-".join(f"{rng.randrange(256):02x}" for _ in range(3)),
                {**os_, "arch": arch},
                False,
                owner,
                str(501 + n % 3),
                rng.randrange(10_000, 900_000),
                rng.randrange(1_000, 60_000),
                1_733_000_000 + rng.randrange(1_000_000),
            )
        )
    for n in range(linux_count):
        platform, family, os_name, version, kernel = _LINUX_OS[n % len(_LINUX_OS)]
        owner, uid = _LINUX_USERS[n % len(_LINUX_USERS)]
        os_ = {
            "type": "linux",
            "family": family,
            "name": os_name,
            "platform": platform,
            "version": version,
            "kernel": kernel,
            "codename": "jammy" if family == "debian" else "plow",
        }
        hosts.append(
            _Host(
                f"ip-10-30-{n}-{rng.randrange(2, 250)}",
                rng.getrandbits(128).to_bytes(16, "big").hex(),
                _uuid(rng),
                f"10.30.{n}.{rng.randrange(2, 250)}",
                "02-42-" + "-".join(f"{rng.randrange(256):02x}" for _ in range(4)),
                {**os_, "arch": "x86_64"},
                True,
                owner,
                uid,
                0,
                rng.randrange(1_000, 60_000),
                1_733_000_000 + rng.randrange(1_000_000),
            )
        )
    return hosts


def _weighted(pool: Sequence[_Binary]) -> list[_Binary]:
    return [b for b in pool for _ in range(b.weight)]


# --------------------------------------------------------------------------------------------
# Labeled cases
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LabeledEvent:
    """An event built for a known reason.

    ``matches`` says whether the seed rule's query must match it under Elastic's KQL
    semantics (exact, case-sensitive keywords; any element of an array field may match).
    """

    name: str
    matches: bool
    description: str
    event: Event


@dataclass(frozen=True, slots=True)
class _Case:
    name: str
    matches: bool
    description: str
    args: tuple[str, ...]
    process_name: str = "kextunload"
    executable: str = "/sbin/kextunload"
    event_type: Any = ("start",)  # a tuple becomes a JSON array, a str stays a scalar
    action: str = "exec"
    parent: str = "zsh"
    auditbeat: bool = False
    flatten: bool = False
    in_stream: bool = True


_CASES: tuple[_Case, ...] = (
    # --- attacks: the query must match
    _Case(
        "attack_full_path",
        True,
        "kextunload with the full bundle path, from an interactive root shell",
        ("kextunload", _KEXT_PATH),
    ),
    _Case(
        "attack_bare_kext",
        True,
        "kextunload run inside /System/Library/Extensions with the bare bundle name",
        ("kextunload", _KEXT_BARE),
    ),
    _Case(
        "attack_sudo_parent",
        True,
        "sudo /sbin/kextunload -v 6 <full path>: parent is sudo, extra flags",
        ("/sbin/kextunload", "-v", "6", _KEXT_PATH),
        executable="/sbin/kextunload",
        parent="sudo",
    ),
    _Case(
        "attack_auditbeat_process_started",
        True,
        'Auditbeat system/process event with the legacy event.type ["process_started"]',
        ("kextunload", _KEXT_BARE),
        event_type=("process_started",),
        action="process_started",
        parent="sudo",
        auditbeat=True,
    ),
    _Case(
        "attack_scalar_event_type",
        True,
        'Auditbeat-shaped event whose producer sent event.type as the scalar "process_started"',
        ("kextunload", _KEXT_PATH),
        event_type="process_started",
        action="process_started",
        parent="sudo",
        auditbeat=True,
        in_stream=False,
    ),
    _Case(
        "attack_flattened_keys",
        True,
        'full-path attack with every field as a flattened dotted key ("process.name": ...)',
        ("kextunload", _KEXT_PATH),
        parent="sudo",
        flatten=True,
        in_stream=False,
    ),
    # --- near misses: the query must NOT match
    _Case(
        "miss_uppercase_name",
        False,
        "process.name KEXTUNLOAD (wrong case; keyword match is exact)",
        ("KEXTUNLOAD", _KEXT_PATH),
        process_name="KEXTUNLOAD",
        executable="/sbin/KEXTUNLOAD",
    ),
    _Case(
        "miss_lowercase_arg",
        False,
        "bundle path in the wrong case",
        ("kextunload", "/system/library/extensions/endpointsecurity.kext"),
    ),
    _Case(
        "miss_trailing_slash",
        False,
        "shell completion left a trailing slash on the bundle path",
        ("kextunload", _KEXT_PATH + "/"),
        parent="sudo",
    ),
    _Case(
        "miss_substring_arg",
        False,
        "arguments only contain the bundle name as a substring",
        ("kextunload", "./EndpointSecurity.kext.bak"),
    ),
    _Case(
        "miss_event_end",
        False,
        'the exit (event.type ["end"]) of a real attack process',
        ("kextunload", _KEXT_PATH),
        event_type=("end",),
        action="end",
        parent="sudo",
    ),
    _Case(
        "miss_command_line_as_one_arg",
        False,
        "the whole command line sent as a single args string",
        ("kextunload " + _KEXT_PATH,),
    ),
    _Case(
        "miss_other_kext",
        False,
        "kextunload of a different kernel extension",
        ("kextunload", "/Library/Extensions/SoftRAID.kext"),
        parent="sudo",
    ),
    _Case(
        "miss_kextstat",
        False,
        "kextstat looking for the bundle (only process.name differs)",
        ("kextstat", _KEXT_BARE),
        process_name="kextstat",
        executable="/usr/sbin/kextstat",
    ),
)

#: Names of the cases the seed query matches, in a stable order.
ATTACK_CASES: tuple[str, ...] = tuple(c.name for c in _CASES if c.matches)
#: Names of the near misses the seed query must not match.
NEAR_MISS_CASES: tuple[str, ...] = tuple(c.name for c in _CASES if not c.matches)
#: Cases mixed into :func:`generate_events`: nested objects and ECS arrays only, the form
#: Defend and Beats write (and the only form engines like ``eql`` walk).
STREAM_ATTACK_CASES: tuple[str, ...] = tuple(c.name for c in _CASES if c.matches and c.in_stream)
STREAM_NEAR_MISS_CASES: tuple[str, ...] = tuple(
    c.name for c in _CASES if not c.matches and c.in_stream
)
_CASES_BY_NAME = {c.name: c for c in _CASES}


# --------------------------------------------------------------------------------------------
# Building events
# --------------------------------------------------------------------------------------------


def _flatten(obj: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists are leaves."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_flatten(value, path + "."))
        else:
            out[path] = value
    return out


def _render_time(ticks: int, *, millis: bool) -> str:
    base = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=ticks // _TICKS_PER_SECOND)
    frac = ticks % _TICKS_PER_SECOND
    text = base.strftime("%Y-%m-%dT%H:%M:%S")
    if millis:
        return f"{text}.{frac // 10_000:03d}Z"
    return f"{text}.{frac:07d}Z"


class _Builder:
    """Holds the pools and per-host counters; turns (index, what) into an event."""

    def __init__(self, seed: int, start: datetime | None, events_per_second: float) -> None:
        if start is None:
            start = DEFAULT_START
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware (UTC is what agents write)")
        if not events_per_second > 0:
            raise ValueError("events_per_second must be positive")
        self.seed = seed
        self.rng = random.Random(seed)
        self.hosts = _make_hosts(self.rng)
        self.mac_hosts = [h for h in self.hosts if not h.linux]
        self.linux_hosts = [h for h in self.hosts if h.linux]
        self.mac_pool = _weighted(_MAC_BINARIES)
        self.linux_pool = _weighted(_LINUX_BINARIES)
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        delta = start.astimezone(UTC) - epoch
        self.start_ticks = (
            delta.days * 86_400 + delta.seconds
        ) * _TICKS_PER_SECOND + delta.microseconds * 10
        self.eps = events_per_second
        self.id_prefix = (seed & 0xFFFF_FFFF).to_bytes(4, "big")

    # -- identities -------------------------------------------------------------------------

    def ticks(self, index: int) -> int:
        return self.start_ticks + int(index * _TICKS_PER_SECOND // self.eps)

    def event_id(self, index: int, *, auditbeat: bool) -> str:
        # Unique by construction: the seed and the stream index are in the bytes.
        raw = self.rng.randbytes(6) + self.id_prefix + index.to_bytes(6, "big")
        if auditbeat:
            return str(uuid.UUID(bytes=raw))
        return base64.b64encode(raw).decode()

    def entity_id(self, host: _Host, pid: int, started: int) -> str:
        # Defend's layout: the agent id's first three groups, the pid, the start time.
        return base64.b64encode(f"{host.agent_id[:18]}-{pid}-{started}".encode()).decode()

    def next_pid(self, host: _Host) -> int:
        host.next_pid += self.rng.randrange(1, 24)
        if host.next_pid > 99_998:
            host.next_pid = 300 + self.rng.randrange(100)
        return host.next_pid

    # -- events -----------------------------------------------------------------------------

    def benign(self, index: int) -> Event:
        rng = self.rng
        linux = rng.random() < 0.15
        host = rng.choice(self.linux_hosts if linux else self.mac_hosts)
        binary = rng.choice(self.linux_pool if linux else self.mac_pool)
        args = list(rng.choice(binary.arg_sets))
        parent = rng.choice(binary.parents)
        root = binary.name in {
            "launchctl",
            "softwareupdate",
            "apt-get",
            "cron",
            "run-parts",
            "sshd",
        } or parent in {"launchd", "systemd", "sudo"}
        return self.build(
            index,
            host,
            binary.name,
            binary.executable,
            args,
            parent,
            ("start",),
            "process_started" if linux else "exec",
            auditbeat=linux,
            root=root,
            signer=(binary.signer, binary.signing_id, binary.team_id),
        )

    def case(self, index: int, case: _Case) -> Event:
        host = self.rng.choice(self.mac_hosts)
        event = self.build(
            index,
            host,
            case.process_name,
            case.executable,
            list(case.args),
            case.parent,
            case.event_type,
            case.action,
            auditbeat=case.auditbeat,
            root=True,
            signer=("Software Signing", "com.apple.kextunload", ""),
        )
        return _flatten(event) if case.flatten else event

    def build(
        self,
        index: int,
        host: _Host,
        name: str,
        executable: str,
        args: list[str],
        parent_name: str,
        event_type: Any,
        action: str,
        *,
        auditbeat: bool,
        root: bool,
        signer: tuple[str, str, str],
    ) -> Event:
        """One exec event in Defend's layout, or Auditbeat's when ``auditbeat`` is set."""
        rng = self.rng
        ticks = self.ticks(index)
        ts = _render_time(ticks, millis=auditbeat)
        epoch = ticks // _TICKS_PER_SECOND
        ppid = self.next_pid(host)
        pid = self.next_pid(host)
        parent_entity = self.entity_id(host, ppid, epoch - rng.randrange(1, 3600))
        entity = self.entity_id(host, pid, epoch)
        parent_exe = _EXTRA_PARENTS.get(parent_name, f"/usr/bin/{parent_name}")
        if root:
            user: dict[str, Any] = {"id": "0", "name": "root"}
            group = {"id": "0", "name": "wheel" if not host.linux else "root"}
        else:
            user = {"id": host.owner_uid, "name": host.owner}
            group = (
                {"id": "20", "name": "staff"}
                if not host.linux
                else {"id": host.owner_uid, "name": host.owner}
            )
        etype = list(event_type) if isinstance(event_type, tuple) else event_type
        os_ = {k: dict(v) if isinstance(v, dict) else v for k, v in host.os.items() if k != "arch"}
        host_doc: dict[str, Any] = {
            "name": host.name,
            "hostname": host.name,
            "id": host.host_id,
            "architecture": host.os["arch"],
            "ip": [host.ip],
            "mac": [host.mac],
            "os": os_,
        }
        command_line = " ".join(args)
        if auditbeat:
            return {
                "@timestamp": ts,
                "@metadata": {"beat": "auditbeat", "type": "_doc", "version": _BEAT_VERSION},
                "agent": {
                    "id": host.agent_id,
                    "name": host.name,
                    "type": "auditbeat",
                    "version": _BEAT_VERSION,
                    "ephemeral_id": _uuid(rng),
                },
                "ecs": {"version": _ECS_VERSION},
                "event": {
                    "kind": "event",
                    "category": ["process"],
                    "type": etype,
                    "action": action,
                    "id": self.event_id(index, auditbeat=auditbeat),
                    "module": "system",
                    "dataset": "process",
                },
                "host": host_doc,
                "user": {**user, "group": dict(group)},
                "process": {
                    "pid": pid,
                    "entity_id": entity,
                    "name": name,
                    "executable": executable,
                    "args": args,
                    "args_count": len(args),
                    "command_line": command_line,
                    "working_directory": "/root" if root else f"/home/{host.owner}",
                    "start": ts,
                    "hash": {"sha1": _sha256(executable)[:40]},
                    "parent": {"pid": ppid, "entity_id": parent_entity},
                },
                "service": {"type": "system"},
                "message": f"Process {name} (PID: {pid}) by user {user['name']} STARTED",
            }
        host.sequence += rng.randrange(1, 40)
        signer_name, signing_id, team_id = signer
        code_signature: dict[str, Any]
        if signer_name:
            code_signature = {
                "exists": True,
                "trusted": True,
                "status": "trusted",
                "signing_id": signing_id,
                "subject_name": signer_name,
            }
            if team_id:
                code_signature["team_id"] = team_id
        else:
            code_signature = {"exists": False}
        return {
            "@timestamp": ts,
            "message": "Endpoint process event",
            "agent": {"id": host.agent_id, "type": "endpoint", "version": _ENDPOINT_VERSION},
            "elastic": {"agent": {"id": host.agent_id}},
            "data_stream": {
                "type": "logs",
                "dataset": "endpoint.events.process",
                "namespace": "default",
            },
            "ecs": {"version": _ECS_VERSION},
            "event": {
                "kind": "event",
                "category": ["process"],
                "type": etype,
                "action": action,
                "module": "endpoint",
                "dataset": "endpoint.events.process",
                "id": self.event_id(index, auditbeat=auditbeat),
                "sequence": host.sequence,
                "created": ts,
                "outcome": "success" if action != "end" else "unknown",
            },
            "host": host_doc,
            "user": {**user, "Ext": {"real": {"id": host.owner_uid, "name": host.owner}}},
            "group": {**group, "Ext": {"real": {"id": "20", "name": "staff"}}},
            "process": {
                "pid": pid,
                "entity_id": entity,
                "name": name,
                "executable": executable,
                "args": args,
                "args_count": len(args),
                "command_line": command_line,
                "code_signature": code_signature,
                "hash": {"sha256": _sha256(executable)},
                "Ext": {"ancestry": [parent_entity]},
                "parent": {
                    "pid": ppid,
                    "name": parent_name,
                    "executable": parent_exe,
                    "args_count": 1 if parent_name != "sudo" else len(args) + 1,
                    "entity_id": parent_entity,
                },
            },
        }


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def _check_match_every(match_every: int | None) -> None:
    if match_every is not None and match_every < 1:
        raise ValueError("match_every must be None or at least 1")


def expected_matches(count: int, match_every: int | None = 10_000) -> int:
    """How many events of ``generate_events(count, match_every=...)`` the seed query matches."""
    _check_match_every(match_every)
    return 0 if match_every is None else count // match_every


def generate_events(
    count: int,
    *,
    seed: int = 0,
    match_every: int | None = 10_000,
    start: datetime | None = None,
    events_per_second: float = 1000.0,
) -> Iterator[Event]:
    """Yield ``count`` process events, each a fresh nested ``dict`` (safe to mutate).

    Event ``i`` (from 0) is an attack when ``i % match_every == match_every - 1``, so exactly
    :func:`expected_matches` events match the seed rule, and a near miss when
    ``i % match_every == match_every // 2`` (``match_every >= 2``). Attacks and near misses
    rotate through :data:`STREAM_ATTACK_CASES` and :data:`STREAM_NEAR_MISS_CASES`. With
    ``match_every=None`` every event is benign. About 85% of benign events are Defend macOS
    exec events, the rest Auditbeat ``system/process`` events from Linux hosts.

    ``start`` (timezone-aware; default :data:`DEFAULT_START`) is the ``@timestamp`` of event 0;
    event ``i`` is ``i / events_per_second`` seconds later. ``event.id`` is unique within the
    stream and across seeds (the seed's low 32 bits and ``i`` are encoded in it).
    """
    if count < 0:
        raise ValueError("count must not be negative")
    _check_match_every(match_every)
    builder = _Builder(seed, start, events_per_second)
    return _stream(builder, count, match_every)


def _stream(builder: _Builder, count: int, match_every: int | None) -> Iterator[Event]:
    attacks = [_CASES_BY_NAME[n] for n in STREAM_ATTACK_CASES]
    misses = [_CASES_BY_NAME[n] for n in STREAM_NEAR_MISS_CASES]
    half = match_every // 2 if match_every is not None and match_every >= 2 else -1
    for i in range(count):
        if match_every is not None:
            slot, pos = divmod(i, match_every)
            if pos == match_every - 1:
                yield builder.case(i, attacks[slot % len(attacks)])
                continue
            if pos == half:
                yield builder.case(i, misses[slot % len(misses)])
                continue
        yield builder.benign(i)


def labeled_events(
    *, seed: int = 0, start: datetime | None = None, events_per_second: float = 1.0
) -> dict[str, LabeledEvent]:
    """Every attack and near miss, by name (attacks first, then near misses).

    Names are :data:`ATTACK_CASES` and :data:`NEAR_MISS_CASES`. Case ``k`` in that order has
    ``@timestamp = start + k / events_per_second``. ``attack_flattened_keys`` uses flattened
    dotted keys and ``attack_scalar_event_type`` a scalar ``event.type``; the others use the
    nested objects and arrays that agents write.
    """
    builder = _Builder(seed, start, events_per_second)
    return {
        c.name: LabeledEvent(c.name, c.matches, c.description, builder.case(k, c))
        for k, c in enumerate(_CASES)
    }


def sample_events(seed: int = SAMPLE_SEED, benign: int = 285) -> list[Event]:
    """The content of ``consumer/samples/macos_process_events.ndjson``, in order.

    ``benign`` benign events from :func:`generate_events` (one every 2 s from
    :data:`DEFAULT_START`), with every labeled case of :func:`labeled_events` placed at an
    evenly spread position and given that slot's time, plus ``attack_full_path`` delivered a
    second time, unchanged (same ``event.id``), a little later: Kafka redelivery.
    """
    cases = list(_CASES)
    total = benign + len(cases) + 1
    builder = _Builder(seed, DEFAULT_START, 0.5)
    step = total // (len(cases) + 1)
    slots: dict[int, _Case | None] = {step * (k + 1): c for k, c in enumerate(cases)}
    first = next(i for i, c in slots.items() if c is not None and c.name == "attack_full_path")
    slots[first + 3] = None  # the redelivery
    out: list[Event] = []
    for i in range(total):
        if i not in slots:
            out.append(builder.benign(i))
        elif (case := slots[i]) is None:
            out.append(copy.deepcopy(out[first]))
        else:
            out.append(builder.case(i, case))
    return out


def _sample_path() -> Path:
    return Path(__file__).resolve().parent / "samples" / "macos_process_events.ndjson"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m consumer.generator``: write events as NDJSON to stdout (or the sample file)."""
    parser = argparse.ArgumentParser(
        prog="python -m consumer.generator", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--match-every", type=int, default=10_000, help="0 for no attacks")
    parser.add_argument("--events-per-second", type=float, default=1000.0)
    parser.add_argument(
        "--start",
        type=datetime.fromisoformat,
        default=None,
        help="ISO 8601 with offset, e.g. 2026-12-04T09:00:00+00:00",
    )
    parser.add_argument(
        "--write-sample",
        action="store_true",
        help=f"(re)write {_sample_path().name} in the package, ignoring the other options",
    )
    ns = parser.parse_args(argv)
    if ns.write_sample:
        path = _sample_path()
        with path.open("w", encoding="utf-8", newline="\n") as fh:
            for event in sample_events():
                fh.write(json.dumps(event, separators=(",", ":")) + "\n")
        print(f"wrote {path}", file=sys.stderr)
        return 0
    out = sys.stdout
    for event in generate_events(
        ns.count,
        seed=ns.seed,
        match_every=ns.match_every or None,
        start=ns.start,
        events_per_second=ns.events_per_second,
    ):
        out.write(json.dumps(event, separators=(",", ":")) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
