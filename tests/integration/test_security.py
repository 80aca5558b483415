"""Kafka security end to end: TLS and SASL through settings, and no credential ever shown.

One Apache Kafka node (KRaft) with a SASL_SSL listener: a CA and the broker's certificate
are made here with the openssl CLI, PLAIN users live in the listener's JAAS config and
SCRAM-SHA-256/512 credentials are written when the storage is formatted (``kafka-storage
format --add-scram``). Members run as ``python -m consumer run`` with nothing but the
documented settings (``KAFKA_CONFIG_SECURITY_PROTOCOL``, ``..._SASL_MECHANISM``,
``..._SASL_USERNAME``, ``..._SASL_PASSWORD`` or ``..._SASL_PASSWORD_FILE``,
``..._SSL_CA_LOCATION``). The test's own clients use the node's PLAINTEXT listener.

Every secret is random per run, and everything a member wrote (its stdout and stderr,
librdkafka's own log with ``debug=conf,security``, its alerts, dead letters with their
headers, its /metrics and health answers) is searched for them, plain and encoded.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from consumer.brokers import BrokerUnavailable, KafkaNode, SecureListener, free_port

from .conftest import broker_unavailable, wait_for_topic
from .members import MemberProcess, Stream, read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(240)]

PLAIN_USER, SCRAM_USER = "alerts-plain", "alerts-scram"
STARTUP_TIMEOUT_S = 4  # for the members meant to fail: how long they retry


@dataclass(frozen=True)
class SecureKafka:
    """The secured node: where to connect, what to trust, and the secrets to look for."""

    plaintext: str
    secure: str
    ca: Path
    rogue_ca: Path
    plain_password: str
    scram_password: str
    keystore_password: str
    wrong_password: str

    @property
    def secrets(self) -> dict[str, str]:
        return {
            "PLAIN password": self.plain_password,
            "SCRAM password": self.scram_password,
            "keystore password": self.keystore_password,
            "wrong password": self.wrong_password,
        }


def _openssl(directory: Path, *args: str) -> None:
    result = subprocess.run(["openssl", *args], cwd=directory, capture_output=True, check=False)
    assert result.returncode == 0, result.stderr.decode(errors="replace")


def make_pki(directory: Path, keystore_password: str) -> tuple[Path, Path, Path]:
    """(CA certificate, broker PKCS#12 keystore, an unrelated CA's certificate)."""
    directory.mkdir(parents=True, exist_ok=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
    for ca in ("ca", "rogue-ca"):
        _openssl(directory, "req", "-x509", *ec, "-keyout", f"{ca}.key", "-out", f"{ca}.pem",
                 "-days", "2", "-subj", f"/CN=consumer test {ca}")  # fmt: skip
    # librdkafka checks the host name (ssl.endpoint.identification.algorithm=https).
    (directory / "broker.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
    )
    _openssl(directory, "req", *ec, "-keyout", "broker.key", "-out", "broker.csr",
             "-subj", "/CN=localhost")  # fmt: skip
    _openssl(directory, "x509", "-req", "-in", "broker.csr", "-CA", "ca.pem",
             "-CAkey", "ca.key", "-CAcreateserial", "-out", "broker.pem", "-days", "2",
             "-extfile", "broker.ext")  # fmt: skip
    _openssl(directory, "pkcs12", "-export", "-in", "broker.pem", "-inkey", "broker.key",
             "-certfile", "ca.pem", "-name", "broker", "-out", "broker.p12",
             "-passout", f"pass:{keystore_password}")  # fmt: skip
    return directory / "ca.pem", directory / "broker.p12", directory / "rogue-ca.pem"


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafka]:
    root = tmp_path_factory.mktemp("secure-kafka")
    passwords = {k: f"{k}-{secrets.token_urlsafe(18)}" for k in ("plain", "scram", "ks", "wrong")}
    ca, keystore, rogue_ca = make_pki(root / "pki", passwords["ks"])
    listener = SecureListener(
        protocol="SASL_SSL",
        keystore=keystore,
        keystore_password=passwords["ks"],
        plain_users={PLAIN_USER: passwords["plain"]},
        scram_users={SCRAM_USER: passwords["scram"]},
    )
    node = KafkaNode(root / "node", secure_listener=listener)
    try:
        node.start()
    except BrokerUnavailable as exc:
        broker_unavailable(f"the secured Apache Kafka node did not start: {exc}")
    try:
        yield SecureKafka(
            plaintext=node.bootstrap_servers,
            secure=node.secure_bootstrap_servers,
            ca=ca,
            rogue_ca=rogue_ca,
            plain_password=passwords["plain"],
            scram_password=passwords["scram"],
            keystore_password=passwords["ks"],
            wrong_password=passwords["wrong"],
        )
    finally:
        node.stop()


# --------------------------------------------------------------------------- helpers


def _attack(event_id: str) -> bytes:
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    return json.dumps(
        {
            "@timestamp": now,
            "event": {"category": ["process"], "type": ["start"], "id": event_id, "ingested": now},
            "process": {
                "name": "kextunload",
                "args": ["kextunload", "/System/Library/Extensions/EndpointSecurity.kext"],
                "pid": 4242,
            },
            "host": {"name": "mac-security-test", "os": {"type": "macos"}},
        }
    ).encode()


def _new_stream(kafka: SecureKafka, label: str) -> Stream:
    group = f"sec-{label}-{uuid.uuid4().hex[:8]}"
    topic = f"logs-endpoint.events.process-{group}"
    admin = AdminClient({"bootstrap.servers": kafka.plaintext})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
    wait_for_topic(admin, topic, 1, 30)
    return Stream(kafka.secure, group, topic)


def _security_env(kafka: SecureKafka, mechanism: str, user: str) -> dict[str, str]:
    return {
        "KAFKA_CONFIG_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_CONFIG_SASL_MECHANISM": mechanism,
        "KAFKA_CONFIG_SASL_USERNAME": user,
        "KAFKA_CONFIG_SSL_CA_LOCATION": str(kafka.ca),
    }


def _clean_env() -> None:
    # Our members must get their security settings from us alone.
    for key in list(os.environ):
        if key.startswith("KAFKA_CONFIG_"):
            pytest.fail(f"{key} is set in the test environment; unset it to run this test")


def _leaks(text: str, kafka: SecureKafka) -> list[str]:
    """Names of the secrets found in ``text``, as is or base64/hex/URL-encoded."""
    found = []
    for name, value in kafka.secrets.items():
        forms = {
            value,
            base64.b64encode(value.encode()).decode(),
            value.encode().hex(),
            urllib.parse.quote(value),
        }
        if any(form in text for form in forms):
            found.append(name)
    return found


def _records_text(messages: list[Message]) -> str:
    parts = []
    for m in messages:
        parts.append(repr(m.key()))
        parts.append((m.value() or b"").decode(errors="replace"))
        for name, value in m.headers() or []:
            parts.append(f"{name}={(value or b'').decode(errors='replace')}")
    return "\n".join(parts)


def _listening_address(port: int) -> str | None:
    """The local address a socket listens on at ``port`` (Linux /proc/net/tcp), or None."""
    table = Path("/proc/net/tcp")
    if not table.exists():
        return None
    for line in table.read_text().splitlines()[1:]:
        fields = line.split()
        host_hex, port_hex = fields[1].split(":")
        if int(port_hex, 16) == port and fields[3] == "0A":  # LISTEN
            return ".".join(str(b) for b in reversed(bytes.fromhex(host_hex)))
    return None


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


# --------------------------------------------------------------------------- tests


def test_alerts_flow_over_sasl_ssl_with_plain_and_scram(
    secure_kafka: SecureKafka, tmp_path: Path
) -> None:
    """Three members, one per mechanism, each with its own group and topics, run side by
    side; each turns an attack into one alert and a malformed record into a dead letter.
    Nothing any of them wrote holds a secret."""
    _clean_env()
    kafka = secure_kafka
    password_file = tmp_path / "scram-password"  # a mounted secret: value and a newline
    password_file.write_text(kafka.scram_password + "\n")
    password_file.chmod(0o600)
    metrics_port = free_port()
    setups = {
        # PLAIN, password from the environment, every log on, librdkafka's too.
        "plain": (
            {**_security_env(kafka, "PLAIN", PLAIN_USER),
             "KAFKA_CONFIG_SASL_PASSWORD": kafka.plain_password,
             "KAFKA_CONFIG_DEBUG": "conf,security"},
            ["--log-level", "DEBUG", "--metrics-port", str(metrics_port),
             "--metrics-host", "127.0.0.1"],
        ),
        # SCRAM-SHA-256, password from a file (Kubernetes / Docker secret).
        "scram256": (
            {**_security_env(kafka, "SCRAM-SHA-256", SCRAM_USER),
             "KAFKA_CONFIG_SASL_PASSWORD_FILE": str(password_file)},
            [],
        ),
        # SCRAM-SHA-512, password from the environment; a small record size limit.
        "scram512": (
            {**_security_env(kafka, "SCRAM-SHA-512", SCRAM_USER),
             "KAFKA_CONFIG_SASL_PASSWORD": kafka.scram_password},
            ["--max-record-bytes", "4096"],
        ),
    }  # fmt: skip
    started: dict[str, tuple[MemberProcess, Stream]] = {}
    try:
        for label, (env, extra) in setups.items():
            stream = _new_stream(kafka, label)
            member = MemberProcess(
                stream.member_args(f"m-{label}", *extra), tmp_path / f"{label}.log", env=env
            ).start()
            started[label] = (member, stream)
        producer = Producer({"bootstrap.servers": kafka.plaintext})
        for label, (member, stream) in started.items():
            member.wait_for_log("assigned", timeout=60)
            producer.produce(stream.input_topic, _attack(f"attack-{label}"), key=b"k1")
            # Malformed, with a header of the producer's own: the dead letter keeps it.
            producer.produce(
                stream.input_topic, b'{"oops": NaN', key=b"k2", headers=[("source", b"test")]
            )
            if label == "scram512":  # over its --max-record-bytes: dead-lettered unparsed
                producer.produce(stream.input_topic, b'{"pad":"' + b"x" * 10_000 + b'"}')
        assert producer.flush(30) == 0

        outputs: dict[str, str] = {}
        for label, (member, stream) in started.items():
            alerts = read_topic(kafka.plaintext, stream.alerts, expect=1, settle=1.0)
            expected = ["invalid_json", "too_large"] if label == "scram512" else ["invalid_json"]
            dead = read_topic(
                kafka.plaintext, stream.dead_letters, expect=len(expected), settle=1.0
            )
            assert len(alerts) == 1, f"{label}: {len(alerts)} alerts\n{member.log()[-3000:]}"
            document = json.loads(alerts[0].value())
            assert document["kibana.alert.rule.name"].startswith("Attempt to Unload")
            assert document["event"]["id"] == f"attack-{label}"
            reasons = [dict(d.headers() or [])["x-dead-letter-reason"].decode() for d in dead]
            assert reasons == expected, f"{label}: dead letters {reasons}"
            assert dict(dead[0].headers() or [])["source"] == b"test"  # the producer's header
            outputs[label] = _records_text(alerts) + "\n" + _records_text(dead)

        scrapes = []
        for path in ("/metrics", "/healthz", "/readyz"):
            status, body = _get(f"http://127.0.0.1:{metrics_port}{path}")
            assert status in (200, 503), (path, status)
            scrapes.append(body)
        assert "# TYPE" in scrapes[0]
        if Path("/proc/net/tcp").exists():  # IPv4 only there: "::" would show as None
            assert _listening_address(metrics_port) == "127.0.0.1", "--metrics-host ignored"

        for label, (member, _) in started.items():
            assert member.terminate(30) == 0, f"{label} did not stop cleanly"
    finally:
        for member, _ in started.values():
            member.stop_quietly()

    for label, (member, _) in started.items():
        log = member.log()
        assert "[thrd:sasl_ssl://" in log or label != "plain", "librdkafka debug log expected"
        assert _leaks(log, kafka) == [], f"{label}: secret in the process output"
        assert _leaks(outputs[label], kafka) == [], f"{label}: secret in alerts/dead letters"
    assert "****" in started["plain"][0].log(), "the settings line shows the redacted password"
    assert _leaks("\n".join(scrapes), kafka) == [], "secret in /metrics or health answers"


def _run_to_failure(
    kafka: SecureKafka, tmp_path: Path, label: str, env: dict[str, str]
) -> tuple[int, str, float]:
    stream = _new_stream(kafka, label)
    member = MemberProcess(
        stream.member_args(f"m-{label}", "--startup-timeout-s", str(STARTUP_TIMEOUT_S)),
        tmp_path / f"{label}.log",
        env=env,
    )
    started = time.monotonic()
    member.start()
    try:
        assert member.process is not None
        code = member.process.wait(timeout=STARTUP_TIMEOUT_S + 60)
    finally:
        member.stop_quietly()
    return code, member.log(), time.monotonic() - started


def _final_error(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith(("error:", "fatal:"))]
    assert lines, f"no final error line:\n{output[-3000:]}"
    return lines[-1]


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
def test_wrong_credentials_are_a_clear_fatal_error(
    secure_kafka: SecureKafka, tmp_path: Path, mechanism: str
) -> None:
    _clean_env()
    kafka = secure_kafka
    user = PLAIN_USER if mechanism == "PLAIN" else SCRAM_USER
    env = {
        **_security_env(kafka, mechanism, user),
        "KAFKA_CONFIG_SASL_PASSWORD": kafka.wrong_password,
    }
    code, output, seconds = _run_to_failure(kafka, tmp_path, f"wrong-{mechanism.lower()}", env)
    assert code != 0
    assert seconds < STARTUP_TIMEOUT_S + 30
    assert "Authentication failed" in output, output[-3000:]
    assert _leaks(output, kafka) == [], "a secret (the wrong password too) in the output"
    final = _final_error(output)
    assert final.startswith("fatal: the brokers refused this client"), final
    assert "authentication" in final.lower(), final
    assert code == 3


def test_untrusted_broker_certificate_is_a_clear_fatal_error(
    secure_kafka: SecureKafka, tmp_path: Path
) -> None:
    _clean_env()
    kafka = secure_kafka
    env = {
        **_security_env(kafka, "SCRAM-SHA-256", SCRAM_USER),
        "KAFKA_CONFIG_SASL_PASSWORD": kafka.scram_password,
        "KAFKA_CONFIG_SSL_CA_LOCATION": str(kafka.rogue_ca),  # trusts another CA only
    }
    code, output, seconds = _run_to_failure(kafka, tmp_path, "rogue-ca", env)
    assert code != 0
    assert seconds < STARTUP_TIMEOUT_S + 30
    assert "certificate verify failed" in output, output[-3000:]
    assert _leaks(output, kafka) == []
    final = _final_error(output)
    assert final.startswith("fatal: the brokers refused this client"), final
    assert "certificate" in final.lower() or "ssl" in final.lower(), final
    assert code == 3


def test_plaintext_client_cannot_use_the_secured_listener(secure_kafka: SecureKafka) -> None:
    """The listener really requires TLS and SASL: a PLAINTEXT client gets no metadata."""
    admin = AdminClient({"bootstrap.servers": secure_kafka.secure, "log_level": 0})
    with pytest.raises(Exception, match=r"(?i)transport|timed out"):
        admin.list_topics(timeout=3)


LIMITED_USER = "alerts-limited"


@pytest.fixture(scope="module")
def acl_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A node that enforces ACLs: (bootstrap of a SASL_PLAINTEXT listener, the password of
    a user granted nothing). PLAINTEXT clients (the broker itself, the test) are super users."""
    root = tmp_path_factory.mktemp("acl-kafka")
    password = f"limited-{secrets.token_urlsafe(18)}"
    listener = SecureListener(
        protocol="SASL_PLAINTEXT", mechanisms=("PLAIN",), plain_users={LIMITED_USER: password}
    )
    node = KafkaNode(
        root / "node",
        secure_listener=listener,
        overrides={
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": "User:ANONYMOUS",
            "allow.everyone.if.no.acl.found": "false",
        },
    )
    try:
        node.start()
    except BrokerUnavailable as exc:
        broker_unavailable(f"the ACL-enforcing Apache Kafka node did not start: {exc}")
    try:
        yield node.secure_bootstrap_servers, password
    finally:
        node.stop()


def test_a_principal_that_may_not_create_the_topics_gets_a_clear_fatal_error(
    acl_kafka: tuple[str, str], tmp_path: Path
) -> None:
    _clean_env()
    bootstrap, password = acl_kafka
    group = f"acl-{uuid.uuid4().hex[:8]}"
    member = MemberProcess(
        Stream(bootstrap, group, f"logs-endpoint.events.process-{group}").member_args(
            "m-acl", "--startup-timeout-s", "20"
        ),
        tmp_path / "acl.log",
        env={
            "KAFKA_CONFIG_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "KAFKA_CONFIG_SASL_MECHANISM": "PLAIN",
            "KAFKA_CONFIG_SASL_USERNAME": LIMITED_USER,
            "KAFKA_CONFIG_SASL_PASSWORD": password,
        },
    )
    member.start()
    try:
        assert member.process is not None
        code = member.process.wait(timeout=90)
    finally:
        member.stop_quietly()
    output = member.log()
    final = _final_error(output)
    assert code == 3, output[-3000:]
    assert "may not create it" in final and f"{group}-alerts" in final, final
    assert password not in output
