"""Settings: flags beat environment beat defaults; bad values name their setting."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from consumer.settings import (
    OPTIONS,
    Secret,
    Settings,
    SettingsError,
    add_arguments,
    settings_rows,
)


def load(argv: list[str] | None = None, env: dict[str, str] | None = None) -> Settings:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return Settings.from_args(parser.parse_args(argv or []), env or {})


def test_defaults() -> None:
    s = load()
    assert s.bootstrap_servers == "localhost:9092"
    assert s.group_id == "elastic-rules-consumer"
    assert s.matches_topic == "elastic-rules-consumer-matches"
    assert s.changelog_topic == "elastic-rules-consumer-changelog"
    assert s.input_topics is None and s.rules == ()
    assert (s.input_format, s.guarantee, s.metrics_port) == ("auto", "exactly-once", 9464)
    assert s == Settings()


def test_option_defaults_match_the_dataclass() -> None:
    defaults = {f.name: f for f in dataclasses.fields(Settings)}
    for o in OPTIONS:
        f = defaults[o.field]
        value = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        assert value == o.default, o.field


def test_flag_beats_env_beats_default() -> None:
    env = {"KAFKA_BOOTSTRAP_SERVERS": "env:9092", "KAFKA_GROUP_ID": "from-env"}
    s = load(["--group-id", "from-flag"], env)
    assert s.bootstrap_servers == "env:9092"
    assert s.group_id == "from-flag"
    assert s.matches_topic == "from-flag-matches"
    assert s.alerts_topic == "security-alerts"


def test_repeatable_flags_and_comma_separated_env(tmp_path: Path) -> None:
    s = load(["--input-topics", "a,^logs-.*", "--input-topics", "b"])
    assert s.input_topics == ("a", "^logs-.*", "b")
    s = load(env={"CONSUMER_INPUT_TOPICS": "x, y", "CONSUMER_RULES": f"{tmp_path}"})
    assert s.input_topics == ("x", "y")
    assert s.rules == (tmp_path,)


def test_values_are_typed_and_normalised() -> None:
    env = {
        "CONSUMER_METRICS_PORT": "0",
        "CONSUMER_LOG_LEVEL": "debug",
        "CONSUMER_GUARANTEE": "At-Least-Once",
        "CONSUMER_AVRO_SCHEMA_IDS": "7=ecs_process_event.avsc, 8=other",
    }
    s = load(env=env)
    assert (s.metrics_port, s.log_level, s.guarantee) == (0, "DEBUG", "at-least-once")
    assert dict(s.avro_schema_ids) == {7: "ecs_process_event", 8: "other"}


@pytest.mark.parametrize(
    ("argv", "env", "setting"),
    [
        (["--metrics-port", "http"], {}, "metrics_port"),
        ([], {"CONSUMER_METRICS_PORT": "70000"}, "metrics_port"),
        ([], {"CONSUMER_INPUT_FORMAT": "xml"}, "input_format"),
        ([], {"CONSUMER_GUARANTEE": "maybe"}, "guarantee"),
        ([], {"CONSUMER_COMMIT_INTERVAL_MS": "0"}, "commit_interval_ms"),
        ([], {"CONSUMER_MAX_RECORD_BYTES": "-1"}, "max_record_bytes"),
        ([], {"CONSUMER_LOG_LEVEL": "loud"}, "log_level"),
        ([], {"CONSUMER_SPACE_ID": "My Space"}, "space_id"),
        ([], {"CONSUMER_ALERTS_TOPIC": "bad topic"}, "alerts_topic"),
        (["--input-topics", "^logs-(.*"], {}, "input_topics"),
        (["--rules", "/no/such/rules"], {}, "rules"),
        ([], {"CONSUMER_AVRO_SCHEMA_DIR": "/no/such/dir"}, "avro_schema_dir"),
        ([], {"CONSUMER_AVRO_SCHEMA_IDS": "one=x"}, "avro_schema_ids"),
        ([], {"CONSUMER_AVRO_SCHEMA_IDS": "1"}, "avro_schema_ids"),
        ([], {"KAFKA_BOOTSTRAP_SERVERS": " "}, "bootstrap_servers"),
        ([], {"CONSUMER_ALERTS_TOPIC": "security-alerts-dead-letter"}, "dead_letter_topic"),
        ([], {"CONSUMER_ALERT_COMMIT_MS": "0"}, "alert_commit_ms"),
        (["--commit-interval-ms", "5"], {}, "alert_commit_ms"),
    ],
)
def test_bad_values_name_the_setting(argv: list[str], env: dict[str, str], setting: str) -> None:
    option = next(o for o in OPTIONS if o.field == setting)
    with pytest.raises(SettingsError) as info:
        load(argv, env)
    err = info.value
    assert (err.setting, err.flag, err.env) == (setting, option.flag, option.env)
    assert option.flag in str(err) and option.env in str(err) and err.cause in str(err)


def test_passthrough_prefix_maps_names_and_types_secrets() -> None:
    env = {
        "KAFKA_CONFIG_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_CONFIG_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_CONFIG_SASL_PASSWORD": "hunter2",
        "KAFKA_CONFIG_SSL_KEY_PASSWORD": "p@ss",
        "KAFKA_CONFIG_SOME__ODD_NAME": "1",
        "UNRELATED": "x",
    }
    s = load(["--kafka-config", "client.id=pod-0", "--kafka-config", "sasl.mechanism=PLAIN"], env)
    assert s.kafka_config["security.protocol"] == "SASL_SSL"
    assert s.kafka_config["sasl.mechanism"] == "PLAIN"  # the flag wins
    assert s.kafka_config["some_odd.name"] == "1"
    assert isinstance(s.kafka_config["sasl.password"], Secret)
    assert isinstance(s.kafka_config["ssl.key.password"], Secret)
    config = s.librdkafka_config()
    assert config["sasl.password"] == "hunter2"
    assert config["bootstrap.servers"] == "localhost:9092"
    assert config["client.id"] == "pod-0"


def test_file_variant_reads_mounted_secrets(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    brokers = tmp_path / "brokers"
    brokers.write_text("b1:9092,b2:9092")
    env = {
        "KAFKA_CONFIG_SASL_PASSWORD_FILE": str(secret),
        "KAFKA_BOOTSTRAP_SERVERS_FILE": str(brokers),
    }
    s = load(env=env)
    assert s.librdkafka_config()["sasl.password"] == "s3cret"
    assert s.bootstrap_servers == "b1:9092,b2:9092"


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"KAFKA_CONFIG_SASL_PASSWORD": "a", "KAFKA_CONFIG_SASL_PASSWORD_FILE": "/x"}, "both"),
        ({"KAFKA_CONFIG_SASL_PASSWORD_FILE": "/no/such/file"}, "cannot read"),
        ({"KAFKA_CONFIG_BOOTSTRAP_SERVERS": "x:1"}, "--bootstrap-servers"),
        ({"KAFKA_CONFIG_GROUP_ID": "g"}, "--group-id"),
    ],
)
def test_bad_passthrough(env: dict[str, str], match: str) -> None:
    with pytest.raises(SettingsError, match=match):
        load(env=env)


def test_bad_passthrough_flag() -> None:
    with pytest.raises(SettingsError, match="KEY=VALUE"):
        load(["--kafka-config", "no-equals-sign"])


def test_secrets_never_show() -> None:
    env = {
        "KAFKA_CONFIG_SASL_PASSWORD": "hunter2",
        "KAFKA_CONFIG_SASL_OAUTHBEARER_CLIENT_SECRET": "zz9",
    }
    s = load(env=env)
    for text in (repr(s), str(s), str(s.redacted()), repr(s.kafka_config)):
        assert "hunter2" not in text and "zz9" not in text
    assert s.redacted()["kafka_config"]["sasl.password"] == "****"
    assert str(Secret("x")) == "****" and repr(Secret("x")) == "'****'"


def test_redacted_is_plain_data() -> None:
    import json

    json.dumps(load(["--rules", "."]).redacted())


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        load().group_id = "x"  # type: ignore[misc]


def test_nothing_is_read_from_the_environment_at_import() -> None:
    import os
    import subprocess
    import sys

    code = "import consumer.settings as m; print(m.Settings().bootstrap_servers)"
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": "import-time:1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "localhost:9092", out.stderr


def test_rows_cover_every_flag() -> None:
    rows = settings_rows()
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    flags = {a.option_strings[0] for a in parser._actions if a.option_strings} - {"-h"}
    assert {row[0].split()[0] for row in rows} == flags
    assert all(len(row) == 4 and all(row) for row in rows)


def test_build_codec_uses_the_settings(tmp_path: Path) -> None:
    codec = load(["--input-format", "json", "--max-record-bytes", "10"]).build_codec()
    assert codec.format == "json" and codec.max_record_bytes == 10
    with pytest.raises(SettingsError) as info:
        load(["--avro-raw-writer-schema", "nope"]).build_codec()
    assert info.value.setting == "avro_raw_writer_schema"
    with pytest.raises(SettingsError) as info:
        load(["--avro-schema-ids", "3=missing"]).build_codec()
    assert info.value.setting == "avro_schema_ids"


