"""docker-compose.yml: accepted by docker-compose, wired to the consumer's real settings
and commands, and provisioning the same Prometheus rules and Grafana dashboard as the chart."""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

from consumer.settings import OPTIONS, Settings, add_arguments

from .tools import REPO, compose_bin, load_yaml, missing

COMPOSE = REPO / "docker-compose.yml"
SETTING_ENVS = {o.env for o in OPTIONS}


@cache
def _resolved() -> dict[str, Any]:
    result = subprocess.run(
        [compose_bin(), "-f", str(COMPOSE), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    return load_yaml(result.stdout)


def services() -> dict[str, Any]:
    return _resolved()["services"]


def bind_mounts(service: str) -> dict[str, Path]:
    """Container path -> host file of the service's bind mounts inside the repository."""
    out: dict[str, Path] = {}
    for volume in services()[service].get("volumes", []):
        if isinstance(volume, str):  # short syntax: SRC:DST[:MODE]
            source, target = volume.split(":")[:2]
        else:
            if volume.get("type") != "bind":
                continue
            source, target = volume["source"], volume["target"]
        if source.startswith(("/", ".")):
            out[target] = Path(source) if Path(source).is_absolute() else REPO / source
    return out


def test_docker_compose_accepts_the_file() -> None:
    result = subprocess.run(
        [compose_bin(), "-f", str(COMPOSE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr


def test_the_stack_has_every_part() -> None:
    assert {
        "redpanda",
        "redpanda-init",
        "console",
        "generator",
        "consumer",
        "prometheus",
        "grafana",
    } <= services().keys()
    redpanda = services()["redpanda"]
    assert "rpk cluster health" in " ".join(redpanda["healthcheck"]["test"])
    init = services()["redpanda-init"]
    assert init["depends_on"]["redpanda"]["condition"] == "service_healthy"
    for name in ("consumer", "generator"):
        assert services()[name]["depends_on"]["redpanda-init"]["condition"] == (
            "service_completed_successfully"
        )
    # Pinned images, never `latest`.
    for name, service in services().items():
        if "image" in service and "build" not in service:
            assert re.search(r":v?\d+\.\d+\.\d+$", service["image"]), f"{name}: pin the image tag"


def test_ports_are_bound_to_localhost_only() -> None:
    for name, service in services().items():
        for port in service.get("ports", []):
            text = (
                port if isinstance(port, str) else f"{port.get('host_ip')}:{port.get('published')}"
            )
            assert str(text).startswith("127.0.0.1:"), f"{name} publishes {port} beyond localhost"


def test_consumer_environment_uses_real_setting_names_and_parses() -> None:
    consumer = services()["consumer"]
    env = {k: str(v) for k, v in consumer["environment"].items()}
    for name in env:
        base = name.removesuffix("_FILE")
        assert base in SETTING_ENVS or re.fullmatch(r"KAFKA_CONFIG_[A-Z0-9_]+", base), (
            f"consumer: {name} is not a setting of the consumer (consumer/settings.py)"
        )
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    settings = Settings.from_args(parser.parse_args([]), env)
    assert settings.bootstrap_servers == "redpanda:9092"
    assert consumer["command"] == ["run"]
    # The health check and the published port follow the metrics port setting.
    port = settings.metrics_port
    assert f"127.0.0.1:{port}/readyz" in " ".join(consumer["healthcheck"]["test"])
    assert int(_duration_s(consumer["stop_grace_period"])) > 30
    # Hardened like the chart: read-only root, /tmp the only writable path, no capabilities.
    assert consumer["read_only"] is True and consumer["cap_drop"] == ["ALL"]
    assert "/tmp" in consumer["tmpfs"]
    init = " ".join(services()["redpanda-init"]["command"])
    for topic in (
        settings.alerts_topic,
        settings.dead_letter_topic,
        settings.status_topic,
        settings.matches_topic,
        settings.changelog_topic,
    ):
        assert f"create {topic} " in init, f"redpanda-init does not create {topic}"


def _duration_s(text: str) -> float:
    value, unit = re.fullmatch(r"(\d+)(ms|s|m)", str(text)).groups()  # type: ignore[union-attr]
    return int(value) * {"ms": 0.001, "s": 1, "m": 60}[unit]


def test_generator_runs_a_real_command_into_a_topic_the_rules_read() -> None:
    """The generator's flags are the `generate` command's own, and its topic is one the
    built-in rule subscribes to (so the dashboard shows detections)."""
    from consumer.cli import _parser
    from consumer.rules import builtin_rules_path, load_rules, rule_topics

    command = services()["generator"]["command"]
    args = _parser().parse_args(command)
    assert args.command.__name__ == "run_generate"
    assert args.bootstrap_servers == "redpanda:9092"
    assert (
        args.match_every and args.duplicate_every and args.match_every % args.duplicate_every == 0
    )
    patterns = rule_topics(load_rules([builtin_rules_path()]).rules)
    assert any(re.fullmatch(p.lstrip("^"), args.topic) for p in patterns), (args.topic, patterns)
    init = " ".join(services()["redpanda-init"]["command"])
    assert f"create {args.topic} " in init


def test_prometheus_mounts_the_charts_alert_rules_and_scrapes_the_consumer() -> None:
    mounts = bind_mounts("prometheus")
    config_path = mounts["/etc/prometheus/prometheus.yml"]
    assert config_path.is_file()
    config = load_yaml(config_path.read_text(encoding="utf-8"))
    rules_target = next(t for t, p in mounts.items() if p == REPO / "helm/files/alert-rules.yml")
    assert any(fnmatch.fnmatch(rules_target, pattern) for pattern in config["rule_files"])
    rules = load_yaml((REPO / "helm/files/alert-rules.yml").read_text(encoding="utf-8"))
    assert rules["groups"] and all(g["rules"] for g in rules["groups"])
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    consumer_port = services()["consumer"]["environment"]["CONSUMER_METRICS_PORT"]
    (job,) = [
        j for j in jobs.values() if f"consumer:{consumer_port}" in j["static_configs"][0]["targets"]
    ]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    # The alert rules select the consumer's job by name: the compose job must match.
    for selector in re.findall(
        r'job=~"([^"]+)"', (REPO / "helm/files/alert-rules.yml").read_text()
    ):
        assert re.fullmatch(selector, job["job_name"]), (selector, job["job_name"])
    promtool = shutil.which("promtool")
    if promtool is None:
        missing("promtool", "apt-get install -y prometheus")
    result = subprocess.run(
        [promtool, "check", "rules", str(REPO / "helm/files/alert-rules.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_provisions_the_charts_dashboard_and_a_prometheus_datasource() -> None:
    mounts = bind_mounts("grafana")
    for path in mounts.values():
        assert path.is_file(), f"grafana mounts {path}, which does not exist"
    datasources = load_yaml(next(p for t, p in mounts.items() if "/datasources/" in t).read_text())
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["isDefault"] is True
    assert source["url"] == "http://prometheus:9090"
    providers = load_yaml(
        next(p for t, p in mounts.items() if "/provisioning/dashboards/" in t).read_text()
    )
    (provider,) = providers["providers"]
    dashboard_target = next(
        t for t, p in mounts.items() if p == REPO / "helm/dashboards/consumer.json"
    )
    assert PurePosixPath(dashboard_target).parent == PurePosixPath(provider["options"]["path"])
    dashboard = json.loads((REPO / "helm/dashboards/consumer.json").read_text(encoding="utf-8"))
    assert dashboard["panels"] and dashboard.get("uid")
    # The documented URL (top of docker-compose.yml) opens this dashboard.
    assert f"http://localhost:3000/d/{dashboard['uid']}" in COMPOSE.read_text(encoding="utf-8")
    env = services()["grafana"]["environment"]
    assert env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"] == dashboard_target


def test_compose_and_chart_use_the_same_dashboard_and_rules_files() -> None:
    chart_files = {REPO / "helm/dashboards/consumer.json", REPO / "helm/files/alert-rules.yml"}
    mounted = set(bind_mounts("prometheus").values()) | set(bind_mounts("grafana").values())
    assert chart_files <= mounted
