"""Settings: one typed, frozen object, read once at start-up from flags and environment.

Precedence: a command-line flag beats its environment variable, which beats the default.
Nothing is read when this module is imported: the CLI calls ``add_arguments`` on its
parser and ``Settings.from_args(namespace, os.environ)`` once, and every bad value
raises ``SettingsError`` naming the flag, the variable and the cause.

Any variable ``NAME`` may instead be given as ``NAME_FILE``, the path of a file holding
the value (a mounted Kubernetes or Docker secret); one trailing newline is removed.
Giving both is an error.

librdkafka pass-through: every ``KAFKA_CONFIG_<NAME>`` variable (and every
``--kafka-config key=value`` flag) becomes a librdkafka property: the name is lowercased
and ``_`` becomes ``.``, with ``__`` standing for a literal ``_``
(``KAFKA_CONFIG_SECURITY_PROTOCOL=SASL_SSL`` -> ``security.protocol``,
``KAFKA_CONFIG_SASL_PASSWORD_FILE=/run/secrets/kafka`` -> ``sasl.password``). Properties
that hold credentials (their name contains password, secret, passphrase, jaas,
oauthbearer.config or .pem) are kept as ``Secret`` and never shown by ``repr`` or
``redacted()``. ``bootstrap.servers`` and ``group.id`` have settings of their own and are
refused here, so there is one place to set them.
"""

from __future__ import annotations

import argparse
import re
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from consumer.errors import ConsumerError

if TYPE_CHECKING:
    from consumer.codecs import EventCodec

KAFKA_CONFIG_PREFIX = "KAFKA_CONFIG_"
FILE_SUFFIX = "_FILE"
INPUT_FORMATS = ("json", "avro", "auto")
GUARANTEES = ("exactly-once", "at-least-once")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("auto", "json", "text")
_SECRET_MARKERS = ("password", "secret", "passphrase", "jaas", "oauthbearer.config", ".pem")
_OWN_PROPERTIES = {"bootstrap.servers": "--bootstrap-servers", "group.id": "--group-id"}
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_SPACE_ID = re.compile(r"^[a-z0-9_-]{1,1024}$")
_PROPERTY = re.compile(r"^[a-z0-9][a-z0-9._]*$")


class SettingsError(ConsumerError):
    """A setting has a bad value; the process refuses to start. Names flag, variable, cause."""

    def __init__(self, setting: str, flag: str, env: str, cause: str) -> None:
        self.setting = setting
        self.flag = flag
        self.env = env
        self.cause = cause
        super().__init__(f"setting {setting} ({flag} / {env}): {cause}")


class Secret:
    """A value that must not be logged: ``str`` and ``repr`` show ``****``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself, for the one place that needs it (the librdkafka config)."""
        return self._value

    def __repr__(self) -> str:
        return "'****'"

    def __str__(self) -> str:
        return "****"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


# -- value parsers: each takes the raw text (or list of texts) and raises ValueError ---------


def _text(raw: str) -> str:
    value = raw.strip()
    if not value:
        raise ValueError("must not be empty")
    return value


def _choice(choices: Sequence[str], *, upper: bool = False) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().upper() if upper else raw.strip().lower()
        if value not in choices:
            raise ValueError(f"{raw!r} is not one of {', '.join(choices)}")
        return value

    return parse


def _int_in(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError(f"{raw!r} is not a whole number") from None
        if not low <= value <= high:
            raise ValueError(f"{value} is outside {low}..{high}")
        return value

    return parse


def _topic(raw: str) -> str:
    value = raw.strip()
    if not _TOPIC.match(value) or value in (".", ".."):
        raise ValueError(f"{raw!r} is not a Kafka topic name (letters, digits, . _ -; max 249)")
    return value


def _subscriptions(raw: list[str]) -> tuple[str, ...]:
    out: list[str] = []
    for item in raw:
        item = item.strip()
        if item.startswith("^"):
            try:
                re.compile(item)
            except re.error as exc:
                raise ValueError(f"{item!r} is not a valid regular expression: {exc}") from None
            out.append(item)
        else:
            out.append(_topic(item))
    if not out:
        raise ValueError("must name at least one topic or ^pattern")
    return tuple(out)


def _paths(raw: list[str]) -> tuple[Path, ...]:
    paths = tuple(Path(item.strip()) for item in raw if item.strip())
    for path in paths:
        if not path.exists():
            raise ValueError(f"{path} does not exist")
    return paths


def _directory(raw: str) -> Path:
    path = Path(_text(raw))
    if not path.is_dir():
        raise ValueError(f"{path} is not a directory")
    return path


def _space_id(raw: str) -> str:
    value = raw.strip()
    if not _SPACE_ID.match(value):
        raise ValueError(f"{raw!r} is not a Kibana space id (lowercase letters, digits, _ -)")
    return value


def _schema_ids(raw: str) -> Mapping[int, str]:
    ids: dict[int, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        number, sep, name = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"{item!r} is not ID=SCHEMA_NAME")
        schema_id = _int_in(0, 2**32 - 1)(number)
        if schema_id in ids:
            raise ValueError(f"schema id {schema_id} is given twice")
        ids[schema_id] = name.strip().removesuffix(".avsc")
    return MappingProxyType(ids)


def _instance_id(raw: str) -> str:
    value = raw.strip()
    if not _TOPIC.match(value):
        raise ValueError(f"{raw!r} is not a name of letters, digits, . _ - (max 249)")
    return value


def _schema_name(raw: str) -> str:
    return _text(raw).removesuffix(".avsc")


@dataclass(frozen=True)
class Option:
    """One setting: where it comes from, its default and what it means (a README row)."""

    field: str
    flag: str
    env: str
    default: Any
    default_text: str
    meaning: str
    parse: Callable[[Any], Any]
    metavar: str = "VALUE"
    repeatable: bool = False  # the flag may repeat; the variable is comma-separated


OPTIONS: tuple[Option, ...] = (
    Option("bootstrap_servers", "--bootstrap-servers", "KAFKA_BOOTSTRAP_SERVERS",
           "localhost:9092", "`localhost:9092`", "Kafka brokers, host:port[,host:port...]",
           _text, "HOST:PORT"),
    Option("group_id", "--group-id", "KAFKA_GROUP_ID", "elastic-rules-consumer",
           "`elastic-rules-consumer`",
           "consumer group; replicas with the same id share the work", _text, "ID"),
    Option("rules", "--rules", "CONSUMER_RULES", (), "the built-in rules",
           "rule files or directories (flag repeatable, variable comma-separated)",
           _paths, "PATH", repeatable=True),
    Option("input_topics", "--input-topics", "CONSUMER_INPUT_TOPICS", None,
           "derived from the rules' index patterns",
           "topics or ^regex patterns to read events from (comma-separated or repeated)",
           _subscriptions, "TOPIC", repeatable=True),
    Option("alerts_topic", "--alerts-topic", "CONSUMER_ALERTS_TOPIC", "security-alerts",
           "`security-alerts`", "topic the alerts are written to", _topic, "TOPIC"),
    Option("dead_letter_topic", "--dead-letter-topic", "CONSUMER_DEAD_LETTER_TOPIC",
           "security-alerts-dead-letter", "`security-alerts-dead-letter`",
           "topic for records that cannot be decoded (original bytes, reason in headers)",
           _topic, "TOPIC"),
    Option("status_topic", "--status-topic", "CONSUMER_STATUS_TOPIC",
           "security-alerts-rule-status", "`security-alerts-rule-status`",
           "topic for rule-status records (max-signals warnings), keyed by rule and window",
           _topic, "TOPIC"),
    Option("instance_id", "--instance-id", "CONSUMER_INSTANCE_ID", None, "the host name",
           "this member's stable name; with the group id it makes the transactional id, "
           "so a restarted member fences its previous self", _instance_id, "NAME"),
    Option("matches_topic", "--matches-topic", "CONSUMER_MATCHES_TOPIC", None,
           "`<group id>-matches`", "internal topic of rule matches, keyed by rule",
           _topic, "TOPIC"),
    Option("changelog_topic", "--changelog-topic", "CONSUMER_CHANGELOG_TOPIC", None,
           "`<group id>-changelog`", "internal compacted topic of window state",
           _topic, "TOPIC"),
    Option("input_format", "--input-format", "CONSUMER_INPUT_FORMAT", "auto", "`auto`",
           "event encoding: json, avro or auto (told per record)",
           _choice(INPUT_FORMATS), "FORMAT"),
    Option("guarantee", "--guarantee", "CONSUMER_GUARANTEE", "exactly-once", "`exactly-once`",
           "exactly-once (Kafka transactions) or at-least-once (brokers without them)",
           _choice(GUARANTEES), "MODE"),
    Option("metrics_port", "--metrics-port", "CONSUMER_METRICS_PORT", 9464, "`9464`",
           "port of /metrics, /healthz and /readyz; 0 turns the server off",
           _int_in(0, 65535), "PORT"),
    Option("metrics_host", "--metrics-host", "CONSUMER_METRICS_HOST", "0.0.0.0", "`0.0.0.0`",
           "address the metrics and health server binds; all interfaces, so Prometheus and "
           "Kubernetes probes reach the pod (127.0.0.1: this host only)", _text, "ADDRESS"),
    Option("liveness_timeout_s", "--liveness-timeout-s", "CONSUMER_LIVENESS_TIMEOUT_S", 60,
           "`60`", "/healthz fails when the poll loop has not gone round for this long, in s",
           _int_in(1, 3600), "SECONDS"),
    Option("commit_interval_ms", "--commit-interval-ms", "CONSUMER_COMMIT_INTERVAL_MS", 1000,
           "`1000`", "how often a transaction (or an offset commit) closes, in ms; each costs "
           "the loop a broker round of 5-20 ms, and a restart redoes up to this much work",
           _int_in(1, 600_000), "MS"),
    Option("alert_commit_ms", "--alert-commit-ms", "CONSUMER_ALERT_COMMIT_MS", 10, "`10`",
           "when keeping up with its input, how soon after the last commit ended a transaction "
           "holding a match or an alert closes, in ms (at most the commit interval): an "
           "alert takes two such transactions, so this bounds alert latency; with a backlog "
           "(records older than the commit interval), the commit interval applies",
           _int_in(1, 600_000), "MS"),
    Option("prefilter", "--prefilter", "CONSUMER_PREFILTER", "on", "`on`",
           "on: records no rule can match (told from their bytes) and that look well formed "
           "are not decoded; off: decode and check every record", _choice(("on", "off")),
           "on|off"),
    Option("startup_timeout_s", "--startup-timeout-s", "CONSUMER_STARTUP_TIMEOUT_S", 60,
           "`60`", "how long to wait for the brokers at start-up before giving up, in s",
           _int_in(1, 3600), "SECONDS"),
    Option("max_record_bytes", "--max-record-bytes", "CONSUMER_MAX_RECORD_BYTES", 1_048_576,
           "`1048576` (1 MiB)", "larger records are dead-lettered as too_large, unparsed",
           _int_in(1, 2**31 - 1), "BYTES"),
    Option("log_level", "--log-level", "CONSUMER_LOG_LEVEL", "INFO", "`INFO`",
           "DEBUG, INFO, WARNING, ERROR or CRITICAL", _choice(LOG_LEVELS, upper=True), "LEVEL"),
    Option("log_format", "--log-format", "CONSUMER_LOG_FORMAT", "auto", "`auto`",
           "json (one object per line on stdout), text, or auto: text on a terminal, else json",
           _choice(LOG_FORMATS), "FORMAT"),
    Option("space_id", "--space-id", "CONSUMER_SPACE_ID", "default", "`default`",
           "Kibana space the alerts belong to (part of each alert id and index)",
           _space_id, "SPACE"),
    Option("avro_schema_dir", "--avro-schema-dir", "CONSUMER_AVRO_SCHEMA_DIR", None,
           "the bundled `schemas/`", "directory of .avsc files, each named by its file stem",
           _directory, "DIR"),
    Option("avro_schema_ids", "--avro-schema-ids", "CONSUMER_AVRO_SCHEMA_IDS",
           MappingProxyType({1: "ecs_process_event"}), "`1=ecs_process_event`",
           "Confluent schema id -> schema name, comma-separated ID=NAME pairs",
           _schema_ids, "ID=NAME,..."),
    Option("avro_reader_schema", "--avro-reader-schema", "CONSUMER_AVRO_READER_SCHEMA",
           "ecs_process_event", "`ecs_process_event`",
           "schema Avro events are decoded into (writer schemas resolve to it)",
           _schema_name, "NAME"),
    Option("avro_raw_writer_schema", "--avro-raw-writer-schema",
           "CONSUMER_AVRO_RAW_WRITER_SCHEMA", None, "none",
           "schema of Avro records without the Confluent header; unset: not read",
           _schema_name, "NAME"),
)
KAFKA_CONFIG_ROW = (
    "--kafka-config KEY=VALUE",
    f"{KAFKA_CONFIG_PREFIX}<NAME>",
    "none",
    "any other librdkafka property (repeatable flag); NAME: upper case, . as _, _ as __",
)


def settings_rows() -> list[tuple[str, str, str, str]]:
    """(flag, environment variable, default, meaning) per setting, for the README table."""
    rows = [(o.flag, o.env, o.default_text, o.meaning) for o in OPTIONS]
    return [*rows, KAFKA_CONFIG_ROW]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every setting's flag to ``parser``; defaults stay None so env can fill in."""
    group = parser.add_argument_group("settings (flag, else environment, else default)")
    for o in OPTIONS:
        group.add_argument(
            o.flag,
            dest=o.field,
            metavar=o.metavar,
            action="append" if o.repeatable else "store",
            default=None,
            help=f"{o.meaning} [env {o.env}; default {o.default_text}]",
        )
    group.add_argument(
        "--kafka-config",
        dest="kafka_config",
        metavar="KEY=VALUE",
        action="append",
        default=None,
        help=f"librdkafka property, e.g. security.protocol=SASL_SSL [env {KAFKA_CONFIG_ROW[1]}]",
    )


@dataclass(frozen=True)
class Settings:
    """Every setting, validated; build with ``from_args`` (or ``Settings()`` for defaults)."""

    bootstrap_servers: str = "localhost:9092"
    group_id: str = "elastic-rules-consumer"
    rules: tuple[Path, ...] = ()
    input_topics: tuple[str, ...] | None = None
    alerts_topic: str = "security-alerts"
    dead_letter_topic: str = "security-alerts-dead-letter"
    status_topic: str = "security-alerts-rule-status"
    instance_id: str | None = None
    matches_topic: str | None = None
    changelog_topic: str | None = None
    input_format: str = "auto"
    guarantee: str = "exactly-once"
    metrics_port: int = 9464
    metrics_host: str = "0.0.0.0"
    liveness_timeout_s: int = 60
    commit_interval_ms: int = 1000
    alert_commit_ms: int = 10
    prefilter: str = "on"
    startup_timeout_s: int = 60
    max_record_bytes: int = 1_048_576
    log_level: str = "INFO"
    log_format: str = "auto"
    space_id: str = "default"
    avro_schema_dir: Path | None = None
    avro_schema_ids: Mapping[int, str] = field(
        default_factory=lambda: MappingProxyType({1: "ecs_process_event"})
    )
    avro_reader_schema: str = "ecs_process_event"
    avro_raw_writer_schema: str | None = None
    kafka_config: Mapping[str, str | Secret] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        # Derived defaults are filled in here so every construction path agrees.
        if self.matches_topic is None:
            object.__setattr__(self, "matches_topic", f"{self.group_id}-matches")
        if self.changelog_topic is None:
            object.__setattr__(self, "changelog_topic", f"{self.group_id}-changelog")
        if self.instance_id is None:
            object.__setattr__(self, "instance_id", socket.gethostname())
        topics = {
            "alerts_topic": self.alerts_topic,
            "dead_letter_topic": self.dead_letter_topic,
            "status_topic": self.status_topic,
            "matches_topic": self.matches_topic,
            "changelog_topic": self.changelog_topic,
        }
        if self.alert_commit_ms > self.commit_interval_ms:
            o = _option("alert_commit_ms")
            raise SettingsError(
                "alert_commit_ms", o.flag, o.env,
                f"{self.alert_commit_ms} is more than the commit interval "
                f"({self.commit_interval_ms} ms); it can only bring a commit forward",
            )  # fmt: skip
        seen: dict[str, str] = {}
        for name, topic in topics.items():
            if topic in seen:
                o = _option(name)
                raise SettingsError(
                    name, o.flag, o.env, f"{topic!r} is also the {seen[topic]}; use distinct topics"
                )
            seen[topic] = name

    @classmethod
    def from_args(cls, namespace: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
        """Build settings from parsed flags (``add_arguments``) over ``environ``."""
        values: dict[str, Any] = {}
        for o in OPTIONS:
            raw = getattr(namespace, o.field, None)
            if raw is None:
                raw = _from_env(environ, o.env, o)
                if raw is not None and o.repeatable:
                    raw = raw.split(",")
            elif o.repeatable:
                raw = [part for item in raw for part in item.split(",")]
            if raw is None:
                continue
            try:
                values[o.field] = o.parse(raw)
            except ValueError as exc:
                raise SettingsError(o.field, o.flag, o.env, str(exc)) from None
        values["kafka_config"] = _kafka_config(environ, getattr(namespace, "kafka_config", None))
        return cls(**values)

    def redacted(self) -> dict[str, Any]:
        """Every setting as plain data for a start-up log line; secrets show as ``****``."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Mapping):
                value = {k: str(v) if isinstance(v, Secret) else v for k, v in value.items()}
            elif isinstance(value, tuple):
                value = [str(v) for v in value]
            elif isinstance(value, Path):
                value = str(value)
            out[f.name] = value
        return out

    def build_codec(self) -> EventCodec:
        """The event codec these settings describe; schema problems name their setting."""
        from consumer.codecs import EventCodec, SchemaError, default_schema_dir, load_schema_dir

        def fail(name: str, cause: str) -> SettingsError:
            o = _option(name)
            return SettingsError(name, o.flag, o.env, cause)

        directory = self.avro_schema_dir or default_schema_dir()
        try:
            schemas = load_schema_dir(directory)
        except SchemaError as exc:
            raise fail("avro_schema_dir", str(exc)) from None
        known = ", ".join(sorted(schemas)) or "none"
        for name in ("avro_reader_schema", "avro_raw_writer_schema"):
            wanted = getattr(self, name)
            if wanted is not None and wanted not in schemas:
                raise fail(name, f"no schema {wanted!r} in {directory} (known: {known})")
        for schema_id, wanted in self.avro_schema_ids.items():
            if wanted not in schemas:
                cause = f"id {schema_id}: no schema {wanted!r} (known: {known})"
                raise fail("avro_schema_ids", cause)
        return EventCodec.from_schema_dir(
            directory,
            schema_ids=self.avro_schema_ids,
            reader_schema=self.avro_reader_schema,
            raw_writer_schema=self.avro_raw_writer_schema,
            format=self.input_format,  # type: ignore[arg-type]
            max_record_bytes=self.max_record_bytes,
        )

    def librdkafka_config(self) -> dict[str, str]:
        """``bootstrap.servers`` plus the pass-through properties, secrets revealed.

        The pipeline merges its own defaults under these (user settings win) and adds
        ``group.id``; never log the result.
        """
        config = {"bootstrap.servers": self.bootstrap_servers}
        for key, value in self.kafka_config.items():
            config[key] = value.reveal() if isinstance(value, Secret) else value
        return config


def _option(field_name: str) -> Option:
    return next(o for o in OPTIONS if o.field == field_name)


def _from_env(environ: Mapping[str, str], name: str, o: Option | None) -> str | None:
    """``environ[name]``, or the contents of the file ``environ[name + '_FILE']``."""
    direct = environ.get(name)
    file_name = environ.get(name + FILE_SUFFIX)
    setting, flag = (o.field, o.flag) if o else (name, "--kafka-config")
    if direct is not None and file_name is not None:
        raise SettingsError(setting, flag, name, f"both {name} and {name}{FILE_SUFFIX} are set")
    if file_name is None:
        return direct
    try:
        text = Path(file_name).read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(
            setting, flag, name + FILE_SUFFIX, f"cannot read {file_name}: {exc.strerror}"
        ) from None
    return text.removesuffix("\n").removesuffix("\r")


def _property_name(env_suffix: str) -> str:
    # "__" is a literal underscore; every single "_" is a dot.
    return "_".join(chunk.replace("_", ".") for chunk in env_suffix.lower().split("__"))


def _kafka_config(
    environ: Mapping[str, str], flags: Sequence[str] | None
) -> Mapping[str, str | Secret]:
    config: dict[str, str | Secret] = {}
    env_names: set[str] = set()
    for key in environ:
        if key.startswith(KAFKA_CONFIG_PREFIX) and len(key) > len(KAFKA_CONFIG_PREFIX):
            env_names.add(key.removesuffix(FILE_SUFFIX) if key.endswith(FILE_SUFFIX) else key)
    for env_name in sorted(env_names):
        value = _from_env(environ, env_name, None)
        assert value is not None
        prop = _property_name(env_name[len(KAFKA_CONFIG_PREFIX) :])
        config[prop] = _checked_property(prop, value, env_name)
    for item in flags or ():
        prop, sep, value = item.partition("=")
        prop = prop.strip()
        if not sep:
            raise SettingsError("kafka_config", "--kafka-config", KAFKA_CONFIG_PREFIX + "*",
                                f"{item!r} is not KEY=VALUE")
        config[prop] = _checked_property(prop, value, "--kafka-config")
    return MappingProxyType(config)


def _checked_property(prop: str, value: str, source: str) -> str | Secret:
    env = source if source.startswith(KAFKA_CONFIG_PREFIX) else KAFKA_CONFIG_PREFIX + "*"
    if not _PROPERTY.match(prop):
        raise SettingsError("kafka_config", "--kafka-config", env,
                            f"{prop!r} is not a librdkafka property name")
    if prop in _OWN_PROPERTIES:
        raise SettingsError("kafka_config", "--kafka-config", env,
                            f"{prop} has its own setting: use {_OWN_PROPERTIES[prop]}")
    return Secret(value) if any(m in prop for m in _SECRET_MARKERS) else value
