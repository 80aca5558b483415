"""Credentials in settings: taken from the environment or a mounted file, never shown.

The process-level proof (a member against a SASL_SSL broker, its whole output grepped)
is tests/integration/test_security.py; here, without a broker, every way a setting
reaches text: ``repr``/``str`` of the settings, the redacted start-up line, the error of
a bad setting, and the librdkafka configuration, which alone holds the value.
"""

from __future__ import annotations

import argparse
import json
import secrets
from pathlib import Path

import pytest

from consumer.settings import Secret, Settings, SettingsError, add_arguments

SECRET_PROPERTIES = {
    "KAFKA_CONFIG_SASL_PASSWORD": "sasl.password",
    "KAFKA_CONFIG_SSL_KEY_PASSWORD": "ssl.key.password",
    "KAFKA_CONFIG_SSL_KEYSTORE_PASSWORD": "ssl.keystore.password",
    "KAFKA_CONFIG_SASL_OAUTHBEARER_CLIENT_SECRET": "sasl.oauthbearer.client.secret",
    "KAFKA_CONFIG_SASL_OAUTHBEARER_CONFIG": "sasl.oauthbearer.config",
    "KAFKA_CONFIG_SASL_JAAS_CONFIG": "sasl.jaas.config",
    "KAFKA_CONFIG_SSL_KEY_PEM": "ssl.key.pem",
}


def _settings(environ: dict[str, str], *argv: str) -> Settings:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return Settings.from_args(parser.parse_args(list(argv)), environ)


def _value() -> str:
    return f"s3cr3t-{secrets.token_urlsafe(12)}"


def _shown(settings: Settings) -> str:
    """Every text a log line or an error could carry about these settings."""
    return "\n".join(
        [repr(settings), str(settings), json.dumps(settings.redacted()), str(settings.redacted())]
    )


@pytest.mark.parametrize(("env", "prop"), list(SECRET_PROPERTIES.items()))
def test_secret_properties_from_the_environment_are_never_shown(env: str, prop: str) -> None:
    value = _value()
    settings = _settings({env: value, "KAFKA_CONFIG_SASL_USERNAME": "alerts"})
    assert isinstance(settings.kafka_config[prop], Secret)
    assert value not in _shown(settings)
    assert settings.redacted()["kafka_config"][prop] == "****"
    assert settings.redacted()["kafka_config"]["sasl.username"] == "alerts"  # not a secret
    assert settings.librdkafka_config()[prop] == value  # the one place it is revealed


def test_secret_from_a_mounted_file(tmp_path: Path) -> None:
    value = _value()
    mounted = tmp_path / "password"
    mounted.write_text(value + "\n")  # kubectl create secret --from-file keeps the newline
    settings = _settings({"KAFKA_CONFIG_SASL_PASSWORD_FILE": str(mounted)})
    assert settings.librdkafka_config()["sasl.password"] == value
    assert value not in _shown(settings)


def test_secret_given_twice_is_refused_without_showing_it(tmp_path: Path) -> None:
    value = _value()
    mounted = tmp_path / "password"
    mounted.write_text(value)
    with pytest.raises(SettingsError) as info:
        _settings(
            {"KAFKA_CONFIG_SASL_PASSWORD": value, "KAFKA_CONFIG_SASL_PASSWORD_FILE": str(mounted)}
        )
    assert "KAFKA_CONFIG_SASL_PASSWORD" in str(info.value)
    assert value not in str(info.value) and value not in repr(info.value)


def test_unreadable_secret_file_names_the_file_not_the_content(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(SettingsError) as info:
        _settings({"KAFKA_CONFIG_SASL_PASSWORD_FILE": str(missing)})
    assert str(missing) in str(info.value)
    directory = tmp_path / "dir"
    directory.mkdir()
    with pytest.raises(SettingsError):
        _settings({"KAFKA_CONFIG_SASL_PASSWORD_FILE": str(directory)})


@pytest.mark.parametrize(
    "item",
    ["Sasl Password=VALUE", "sasl.password", "bootstrap.servers=VALUE", "=VALUE"],
)
def test_bad_kafka_config_flags_do_not_echo_the_value(item: str) -> None:
    value = _value()
    with pytest.raises(SettingsError) as info:
        _settings({}, "--kafka-config", item.replace("VALUE", value))
    assert value not in str(info.value)


def test_secret_on_the_command_line_is_still_redacted() -> None:
    """Discouraged (other users of the host see argv), but never logged either."""
    value = _value()
    settings = _settings({}, "--kafka-config", f"sasl.password={value}")
    assert value not in _shown(settings)


def test_secret_type_hides_itself() -> None:
    value = _value()
    secret = Secret(value)
    assert value not in f"{secret} {secret!r} {[secret]} { ({'k': secret}) }"
    assert secret.reveal() == value
