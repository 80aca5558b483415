"""The Helm chart, rendered by the real helm CLI and checked for what matters in a cluster.

Every case of ``CASES`` must pass ``helm lint --strict``, render with ``helm template``,
and every rendered manifest must validate against the Kubernetes schemas
(kubernetes-validate, offline). CRD objects (Prometheus Operator, KEDA) have no schema
there: their references (selectors, target names, secret names) are checked instead.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import threading
import urllib.error
import urllib.request
from typing import Any

import pytest

from consumer.settings import OPTIONS, settings_rows

from .tools import (
    CHART,
    NAMESPACE,
    RELEASE,
    find,
    helm,
    kinds,
    kubernetes_validate,
    load_yaml,
    render,
    render_result,
    values_file,
)

FULLNAME = f"{RELEASE}-elastic-rules-consumer"
SELECTOR = {
    "app.kubernetes.io/name": "elastic-rules-consumer",
    "app.kubernetes.io/instance": RELEASE,
}
# Settings the chart sets itself rather than through `config`.
CHART_OWNED = {
    "CONSUMER_RULES": "rules.*",
    "CONSUMER_METRICS_PORT": "metrics.port",
    "CONSUMER_INSTANCE_ID": "the pod name (one transactional id per member)",
}
SETTING_ENVS = {o.env for o in OPTIONS}
# Kubernetes versions the manifests must validate against: the chart's floor that
# kubernetes-validate still ships, and the newest it knows.
K8S_VERSIONS = ("1.30.0", "latest")

# A rule of our own (not Elastic's text), in detection-rules TOML.
EXTRA_RULE = """\
[metadata]
creation_date = "2026/01/01"
maturity = "production"
updated_date = "2026/01/01"

[rule]
author = ["Example"]
description = "Test rule: curl piped to a shell."
from = "now-9m"
index = ["logs-endpoint.events.*"]
language = "kuery"
license = "Apache-2.0"
name = "Curl piped to shell"
risk_score = 47
rule_id = "0b7f7d4e-1d2e-4c9b-9c55-000000000001"
severity = "medium"
type = "query"
version = 1
query = 'process.name:sh and process.parent.name:curl'
"""

SASL = {
    "enabled": True,
    "mechanism": "SCRAM-SHA-512",
    "existingSecret": "kafka-user",
    "usernameKey": "user",
    "passwordKey": "pass",
}
MTLS = {
    "enabled": True,
    "existingSecret": "kafka-tls",
    "caKey": "ca.crt",
    "certKey": "tls.crt",
    "keyKey": "tls.key",
}

CASES: dict[str, dict[str, Any]] = {
    "default": {},
    "monitors-on": {
        "serviceMonitor": {"enabled": True, "additionalLabels": {"release": "kps"}},
        "podMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True, "additionalLabels": {"release": "kps"}},
    },
    "monitors-off": {
        "serviceMonitor": {"enabled": False},
        "podMonitor": {"enabled": False},
        "prometheusRule": {"enabled": False},
        "grafana": {"dashboards": {"enabled": False}},
        "podDisruptionBudget": {"enabled": False},
    },
    "keda": {"autoscaling": {"keda": {"enabled": True, "maxReplicas": 8}}},
    "keda-sasl-tls": {
        "autoscaling": {"keda": {"enabled": True}},
        "kafka": {"sasl": SASL, "tls": MTLS},
    },
    "sasl-existing-secret": {"kafka": {"sasl": SASL, "tls": {"enabled": True}}},
    "mtls": {"kafka": {"tls": MTLS}},
    "extra-rules": {
        "rules": {"files": {"curl_sh.toml": EXTRA_RULE}, "existingConfigMap": "team-rules"}
    },
    "extra-rules-only": {"rules": {"builtin": False, "files": {"curl_sh.toml": EXTRA_RULE}}},
    "hpa": {"autoscaling": {"hpa": {"enabled": True}}},
    "every-setting": {
        "config": {
            "KAFKA_BOOTSTRAP_SERVERS": "b-1.kafka:9092,b-2.kafka:9092",
            "KAFKA_GROUP_ID": "detections",
            "CONSUMER_INPUT_TOPICS": "^logs-endpoint\\.events\\..*,auditbeat-8",
            "CONSUMER_ALERTS_TOPIC": "alerts",
            "CONSUMER_DEAD_LETTER_TOPIC": "dlq",
            "CONSUMER_STATUS_TOPIC": "status",
            "CONSUMER_MATCHES_TOPIC": "m",
            "CONSUMER_CHANGELOG_TOPIC": "c",
            "CONSUMER_INPUT_FORMAT": "avro",
            "CONSUMER_GUARANTEE": "at-least-once",
            "CONSUMER_METRICS_HOST": "0.0.0.0",
            "CONSUMER_LIVENESS_TIMEOUT_S": 90,
            "CONSUMER_COMMIT_INTERVAL_MS": "250",
            "CONSUMER_STARTUP_TIMEOUT_S": 120,
            "CONSUMER_MAX_RECORD_BYTES": 2097152,
            "CONSUMER_LOG_LEVEL": "DEBUG",
            "CONSUMER_LOG_FORMAT": "text",
            "CONSUMER_SPACE_ID": "soc",
            "CONSUMER_AVRO_SCHEMA_DIR": "/opt/schemas",
            "CONSUMER_AVRO_SCHEMA_IDS": "1=ecs_process_event,7=ecs_process_event",
            "CONSUMER_AVRO_READER_SCHEMA": "ecs_process_event",
            "CONSUMER_AVRO_RAW_WRITER_SCHEMA": "ecs_process_event",
        },
        "kafka": {"extraConfig": {"session.timeout.ms": 45000, "client.rack": "eu-1a"}},
    },
}


def deployment(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    return find(manifests, "Deployment")


def container(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    (consumer,) = deployment(manifests)["spec"]["template"]["spec"]["containers"]
    return consumer


def environment(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    """The consumer's environment: the env ConfigMap (envFrom) overlaid by ``env``."""
    data = dict(find(manifests, "ConfigMap", "-env")["data"])
    for item in container(manifests).get("env", []):
        data[item["name"]] = item.get("value", item.get("valueFrom"))
    return data


# ------------------------------------------------------------------ lint, render, validate


@pytest.mark.parametrize("case", CASES)
def test_lint_passes(case: str) -> None:
    result = helm("lint", "--strict", str(CHART), "--values", values_file(CASES[case]))
    assert result.returncode == 0, result.stdout + result.stderr
    # helm lint only reports a template's `fail` as INFO: the render below catches those.
    assert "[ERROR]" not in result.stdout and "[WARNING]" not in result.stdout, result.stdout


@pytest.mark.parametrize("case", CASES)
def test_every_manifest_validates(case: str) -> None:
    kv = kubernetes_validate()
    manifests = render(CASES[case])
    assert {"Deployment", "Service", "ConfigMap"} <= kinds(manifests)
    checked = 0
    for manifest in manifests:
        if "/" in manifest["apiVersion"] and manifest["apiVersion"].split("/")[0].endswith(
            ("coreos.com", "keda.sh")
        ):
            continue  # CRDs: see test_crd_references
        for version in K8S_VERSIONS:
            version = kv.utils.latest_version() if version == "latest" else version
            try:
                kv.validate(manifest, version, strict=True)
            except kv.ValidationError as exc:
                name = f"{manifest['kind']}/{manifest['metadata']['name']}"
                pytest.fail(f"{case}: {name} is not valid Kubernetes {version}: {exc}")
        checked += 1
    assert checked >= 4


@pytest.mark.parametrize("case", CASES)
def test_crd_references(case: str) -> None:
    manifests = render(CASES[case])
    service = find(manifests, "Service")
    for m in manifests:
        if m["kind"] == "ServiceMonitor":
            assert (
                m["spec"]["selector"]["matchLabels"].items()
                <= service["metadata"]["labels"].items()
            )
            assert [e["port"] for e in m["spec"]["endpoints"]] == ["metrics"]
            assert m["spec"]["endpoints"][0]["path"] == "/metrics"
        if m["kind"] == "PodMonitor":
            pod_labels = deployment(manifests)["spec"]["template"]["metadata"]["labels"]
            assert m["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
            assert m["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
        if m["kind"] == "PrometheusRule":
            groups = m["spec"]["groups"]
            assert groups and all(g["name"] and g["rules"] for g in groups)
            assert all(
                "expr" in r and ("alert" in r or "record" in r) for g in groups for r in g["rules"]
            )
        if m["kind"] == "ScaledObject":
            assert m["spec"]["scaleTargetRef"]["name"] == deployment(manifests)["metadata"]["name"]
            (trigger,) = m["spec"]["triggers"]
            env = environment(manifests)
            assert trigger["type"] == "kafka"
            assert trigger["metadata"]["bootstrapServers"] == env["KAFKA_BOOTSTRAP_SERVERS"]
            assert trigger["metadata"]["consumerGroup"] == env["KAFKA_GROUP_ID"]
            assert trigger["metadata"]["allowIdleConsumers"] == "false"
            assert m["spec"]["maxReplicaCount"] >= m["spec"]["minReplicaCount"]
            if "authenticationRef" in trigger:
                auth = find(manifests, "TriggerAuthentication")
                assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
                assert trigger["metadata"]["sasl"] == "scram_sha512"
                assert trigger["metadata"]["tls"] == "enable"
                refs = {
                    (r["parameter"], r["name"], r["key"]) for r in auth["spec"]["secretTargetRef"]
                }
                assert ("username", "kafka-user", "user") in refs
                assert ("password", "kafka-user", "pass") in refs
                assert ("ca", "kafka-tls", "ca.crt") in refs


def test_optional_objects_follow_their_switches() -> None:
    default = kinds(render())
    assert {
        "Deployment",
        "Service",
        "ServiceAccount",
        "PodDisruptionBudget",
        "ConfigMap",
    } <= default
    assert not default & {
        "ServiceMonitor",
        "PodMonitor",
        "PrometheusRule",
        "ScaledObject",
        "HorizontalPodAutoscaler",
        "TriggerAuthentication",
    }
    assert {"ServiceMonitor", "PodMonitor", "PrometheusRule"} <= kinds(render(CASES["monitors-on"]))
    off = render(CASES["monitors-off"])
    assert not kinds(off) & {
        "ServiceMonitor",
        "PodMonitor",
        "PrometheusRule",
        "PodDisruptionBudget",
    }
    assert [m["metadata"]["name"] for m in off if m["kind"] == "ConfigMap"] == [f"{FULLNAME}-env"]
    keda = render(CASES["keda"])
    assert "ScaledObject" in kinds(keda) and "TriggerAuthentication" not in kinds(keda)
    assert "replicas" not in deployment(keda)["spec"], "KEDA owns the replica count"
    assert "TriggerAuthentication" in kinds(render(CASES["keda-sasl-tls"]))
    hpa = render(CASES["hpa"])
    assert "HorizontalPodAutoscaler" in kinds(hpa) and "replicas" not in deployment(hpa)["spec"]
    assert deployment(render())["spec"]["replicas"] == 2


def test_chart_ships_the_shared_dashboard_and_alert_rules() -> None:
    manifests = render(CASES["monitors-on"])
    dashboard = find(manifests, "ConfigMap", "-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["annotations"]["grafana_folder"] == "Security"
    shipped = json.loads(dashboard["data"]["consumer.json"])
    assert shipped == json.loads((CHART / "dashboards/consumer.json").read_text(encoding="utf-8"))
    rule = find(manifests, "PrometheusRule")
    on_disk = load_yaml((CHART / "files/alert-rules.yml").read_text(encoding="utf-8"))
    assert rule["spec"]["groups"] == on_disk["groups"]
    assert rule["metadata"]["labels"]["release"] == "kps"


# ------------------------------------------------------------------ probes and endpoints


def test_probes_point_at_the_consumers_real_endpoints() -> None:
    """The probe paths answer on the consumer's own server; an unknown path does not."""
    from prometheus_client import CollectorRegistry, Counter

    from consumer.observability.health import Health
    from consumer.observability.server import ObservabilityServer

    manifests = render()
    consumer = container(manifests)
    (port,) = consumer["ports"]
    assert port["name"] == "metrics"
    assert environment(manifests)["CONSUMER_METRICS_PORT"] == str(port["containerPort"])
    paths = {
        name: consumer[name]["httpGet"]
        for name in ("livenessProbe", "readinessProbe", "startupProbe")
    }
    assert all(probe["port"] == "metrics" for probe in paths.values())
    assert paths["livenessProbe"]["path"] == "/healthz"
    assert paths["readinessProbe"]["path"] == "/readyz"
    assert paths["startupProbe"]["path"] == "/healthz"
    service = find(manifests, "Service")
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"

    registry = CollectorRegistry()
    Counter("probe_check", "a metric so /metrics has content", registry=registry).inc()
    health = Health(60.0)
    health.connected = health.assigned = True
    health.beat()
    server = ObservabilityServer(registry, health, host="127.0.0.1", port=0).start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        for probe in paths.values():
            with urllib.request.urlopen(base + probe["path"], timeout=5) as response:
                assert response.status == 200, probe
        with urllib.request.urlopen(base + "/metrics", timeout=5) as response:
            assert "# TYPE probe_check" in response.read().decode()
        with pytest.raises(urllib.error.HTTPError) as missing_path:
            urllib.request.urlopen(base + "/not-an-endpoint", timeout=5)
        assert missing_path.value.code == 404
        health.assigned = False
        with pytest.raises(urllib.error.HTTPError) as not_ready:
            urllib.request.urlopen(base + paths["readinessProbe"]["path"], timeout=5)
        assert not_ready.value.code == 503
    finally:
        server.stop()
    assert threading.active_count() >= 1


def test_helm_test_hook_checks_the_metrics_endpoint() -> None:
    manifests = render()
    (pod,) = [m for m in manifests if m["kind"] == "Pod"]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    # Not selected by the Service or the PDB.
    assert not SELECTOR.items() <= pod["metadata"]["labels"].items()
    script = pod["spec"]["containers"][0]["command"][-1]
    service = find(manifests, "Service")
    assert (
        f"http://{service['metadata']['name']}.{NAMESPACE}.svc:{service['spec']['ports'][0]['port']}"
        in script
    )
    assert '"/metrics"' in script and '"/healthz"' in script
    compile(script, "helm-test", "exec")
    assert pod["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True


# ------------------------------------------------------------------ security


def test_security_defaults() -> None:
    manifests = render()
    spec = deployment(manifests)["spec"]["template"]["spec"]
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 10001
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    ctx = container(manifests)["securityContext"]
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["privileged"] is False
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert spec["automountServiceAccountToken"] is False
    assert find(manifests, "ServiceAccount")["automountServiceAccountToken"] is False
    resources = container(manifests)["resources"]
    assert {"cpu", "memory"} <= resources["requests"].keys()
    assert {"cpu", "memory"} <= resources["limits"].keys()
    # The only writable path: /tmp, a size-limited emptyDir.
    mounts = {m["mountPath"]: m["name"] for m in container(manifests)["volumeMounts"]}
    assert mounts == {"/tmp": "tmp"}
    (tmp,) = spec["volumes"]
    assert tmp["emptyDir"]["sizeLimit"]


def test_rollout_and_shutdown_settings() -> None:
    manifests = render()
    spec = deployment(manifests)["spec"]
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    assert spec["minReadySeconds"] > 0
    # Above the consumer's ~30 s shutdown bound (finish batch, commit, leave the group).
    assert spec["template"]["spec"]["terminationGracePeriodSeconds"] > 30
    assert find(manifests, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    spread = spec["template"]["spec"]["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in spread} == {
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
    }
    assert all(c["labelSelector"]["matchLabels"] == SELECTOR for c in spread)


@pytest.mark.parametrize("case", ["sasl-existing-secret", "keda-sasl-tls", "mtls"])
def test_credentials_come_from_the_existing_secret_never_inline(case: str) -> None:
    values = CASES[case]
    manifests = render(values)
    assert "Secret" not in kinds(manifests), "the chart must not create a Secret"
    spec = deployment(manifests)["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["name"]: m for m in container(manifests)["volumeMounts"]}
    env = environment(manifests)
    sasl = values["kafka"].get("sasl", {})
    tls = values["kafka"].get("tls", {})
    if sasl.get("enabled"):
        secret = volumes["kafka-sasl"]["secret"]
        assert secret["secretName"] == sasl["existingSecret"]
        assert {i["key"] for i in secret["items"]} == {sasl["usernameKey"], sasl["passwordKey"]}
        assert mounts["kafka-sasl"]["readOnly"] is True
        base = mounts["kafka-sasl"]["mountPath"]
        # Files, read by the consumer's *_FILE convention: never a value in the env.
        assert env["KAFKA_CONFIG_SASL_USERNAME_FILE"] == f"{base}/username"
        assert env["KAFKA_CONFIG_SASL_PASSWORD_FILE"] == f"{base}/password"
        assert "KAFKA_CONFIG_SASL_PASSWORD" not in env
        assert env["KAFKA_CONFIG_SASL_MECHANISMS"] == sasl["mechanism"]
        assert env["KAFKA_CONFIG_SECURITY_PROTOCOL"] == (
            "SASL_SSL" if tls.get("enabled") else "SASL_PLAINTEXT"
        )
    if tls.get("existingSecret"):
        secret = volumes["kafka-tls"]["secret"]
        assert secret["secretName"] == tls["existingSecret"]
        base = mounts["kafka-tls"]["mountPath"]
        assert env["KAFKA_CONFIG_SSL_CA_LOCATION"] == f"{base}/ca.crt"
        assert env["KAFKA_CONFIG_SSL_KEY_LOCATION"] == f"{base}/tls.key"
    # No credential text anywhere in what is rendered: only references.
    code, text, _ = render_result(values)
    assert code == 0
    for word in ("password:", "sasl.password=", "BEGIN CERTIFICATE", "PRIVATE KEY"):
        assert word not in text


def test_sasl_without_an_existing_secret_is_refused() -> None:
    code, _, err = render_result({"kafka": {"sasl": {"enabled": True}}})
    assert code != 0 and "kafka.sasl.existingSecret" in err


# ------------------------------------------------------------------ settings: one list


def test_config_names_are_exactly_the_consumers_settings() -> None:
    """values.yaml's `config`, the schema and the README all list the consumer's settings."""
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    values = load_yaml((CHART / "values.yaml").read_text(encoding="utf-8"))
    configurable = SETTING_ENVS - CHART_OWNED.keys()
    assert set(schema["properties"]["config"]["properties"]) == configurable
    assert schema["properties"]["config"]["additionalProperties"] is False
    assert set(values["config"]) == configurable
    assert set(CHART_OWNED) <= SETTING_ENVS
    readme = (CHART / "README.md").read_text(encoding="utf-8")
    for flag, env, _default, _meaning in settings_rows():
        if env in SETTING_ENVS:
            assert f"`{env}`" in readme, f"chart README does not list {env} ({flag})"


def test_config_choices_match_the_consumers() -> None:
    from consumer import settings

    props = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))["properties"][
        "config"
    ]["properties"]
    assert set(props["CONSUMER_LOG_LEVEL"]["enum"]) - {""} == set(settings.LOG_LEVELS)
    assert set(props["CONSUMER_GUARANTEE"]["enum"]) - {""} == set(settings.GUARANTEES)
    assert set(props["CONSUMER_INPUT_FORMAT"]["enum"]) - {""} == set(settings.INPUT_FORMATS)
    log_formats = getattr(settings, "LOG_FORMATS", None)
    if log_formats is not None:
        assert set(props["CONSUMER_LOG_FORMAT"]["enum"]) - {""} == set(log_formats)


@pytest.mark.parametrize("case", CASES)
def test_rendered_environment_uses_only_real_setting_names(case: str) -> None:
    env = environment(render(CASES[case]))
    for name in env:
        base = name.removesuffix("_FILE")
        assert base in SETTING_ENVS or re.fullmatch(r"KAFKA_CONFIG_[A-Z0-9_]+", base), (
            f"{name} is not a setting of the consumer (consumer/settings.py)"
        )


def test_every_setting_reaches_the_consumer_and_parses() -> None:
    """Render every setting, then let the consumer's own parser read that environment."""
    import argparse

    from consumer.settings import Settings, add_arguments

    values = CASES["every-setting"]
    env = environment(render(values))
    for name, value in values["config"].items():
        assert env[name] == str(value)
    assert env["KAFKA_CONFIG_SESSION_TIMEOUT_MS"] == "45000"
    assert env["KAFKA_CONFIG_CLIENT_RACK"] == "eu-1a"
    assert env["CONSUMER_INSTANCE_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    # What the kubelet would give the process (the pod name filled in; paths that exist here).
    env = {**env, "CONSUMER_INSTANCE_ID": "det-elastic-rules-consumer-5d9c-x2x7q"}
    env.pop("CONSUMER_AVRO_SCHEMA_DIR")
    env.pop("CONSUMER_RULES", None)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    settings = Settings.from_args(parser.parse_args([]), env)
    assert settings.group_id == "detections"
    assert settings.guarantee == "at-least-once"
    assert settings.metrics_port == 9464
    assert settings.kafka_config["session.timeout.ms"] == "45000"
    assert settings.kafka_config["client.rack"] == "eu-1a"


# ------------------------------------------------------------------ rules and checksums


def test_rules_default_to_the_builtin_rule() -> None:
    manifests = render()
    assert "CONSUMER_RULES" not in environment(manifests), "default: the consumer's built-in rules"
    assert not [m for m in manifests if m["metadata"]["name"].endswith("-rules")]


def test_extra_rules_are_mounted_beside_the_builtin_one() -> None:
    manifests = render(CASES["extra-rules"])
    rules = find(manifests, "ConfigMap", "-rules")
    assert rules["data"] == {"curl_sh.toml": EXTRA_RULE}
    mounts = {m["name"]: m["mountPath"] for m in container(manifests)["volumeMounts"]}
    assert environment(manifests)["CONSUMER_RULES"].split(",") == [
        "/opt/consumer/builtin-rules",
        mounts["rules"],
        mounts["rules-extra"],
    ]
    volumes = {v["name"]: v for v in deployment(manifests)["spec"]["template"]["spec"]["volumes"]}
    assert volumes["rules-extra"]["configMap"]["name"] == "team-rules"
    only = render(CASES["extra-rules-only"])
    assert environment(only)["CONSUMER_RULES"] == "/etc/consumer/rules"


def test_extra_rule_files_load_with_the_consumers_loader(tmp_path) -> None:
    from consumer.rules import load_rules

    rules = find(render(CASES["extra-rules"]), "ConfigMap", "-rules")
    for name, text in rules["data"].items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    result = load_rules([tmp_path])
    assert not result.failures, result.failures
    assert [r.name for r in result.rules] == ["Curl piped to shell"]


def test_builtin_rules_path_is_the_one_the_image_makes() -> None:
    from .tools import REPO

    path = load_yaml((CHART / "values.yaml").read_text(encoding="utf-8"))["rules"]["builtinPath"]
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    # The image links the package's built-in rules there and loads them at build time.
    assert f"check-rules {path}" in dockerfile
    assert re.search(r"ln -s .*builtin_rules_path\(\).*\s+" + re.escape(path), dockerfile, re.S)


def test_no_rules_at_all_is_refused() -> None:
    code, _, err = render_result({"rules": {"builtin": False}})
    assert code != 0 and "no rules to run" in err


def _checksums(values: dict[str, Any]) -> dict[str, str]:
    annotations = deployment(render(values))["spec"]["template"]["metadata"]["annotations"]
    return {k: v for k, v in annotations.items() if k.startswith("checksum/")}


def test_checksums_change_when_rules_or_settings_change() -> None:
    base = _checksums(CASES["extra-rules"])
    assert set(base) == {"checksum/config", "checksum/rules"}
    assert all(re.fullmatch(r"[0-9a-f]{64}", v) for v in base.values())
    assert _checksums(CASES["extra-rules"]) == base, "rendering is deterministic"

    edited = copy.deepcopy(CASES["extra-rules"])
    edited["rules"]["files"]["curl_sh.toml"] = EXTRA_RULE.replace(
        "risk_score = 47", "risk_score = 48"
    )
    changed = _checksums(edited)
    assert changed["checksum/rules"] != base["checksum/rules"]
    assert changed["checksum/config"] == base["checksum/config"]

    added = copy.deepcopy(CASES["extra-rules"])
    added["rules"]["files"]["second.toml"] = EXTRA_RULE.replace("000000000001", "000000000002")
    assert _checksums(added)["checksum/rules"] != base["checksum/rules"]

    setting = copy.deepcopy(CASES["extra-rules"])
    setting["config"] = {"CONSUMER_LOG_LEVEL": "DEBUG"}
    changed = _checksums(setting)
    assert changed["checksum/config"] != base["checksum/config"]
    assert changed["checksum/rules"] == base["checksum/rules"]


# ------------------------------------------------------------------ schema refusals

REFUSED = {
    "replica count below one": ({"replicaCount": 0}, "/replicaCount"),
    "unknown setting name": ({"config": {"CONSUMER_LOGLEVEL": "DEBUG"}}, "CONSUMER_LOGLEVEL"),
    "bad log level": ({"config": {"CONSUMER_LOG_LEVEL": "LOUD"}}, "/config/CONSUMER_LOG_LEVEL"),
    "bad guarantee": (
        {"config": {"CONSUMER_GUARANTEE": "exactly_once"}},
        "/config/CONSUMER_GUARANTEE",
    ),
    "bootstrap without port": (
        {"config": {"KAFKA_BOOTSTRAP_SERVERS": "kafka"}},
        "/config/KAFKA_BOOTSTRAP_SERVERS",
    ),
    "bad topic name": (
        {"config": {"CONSUMER_ALERTS_TOPIC": "alerts topic"}},
        "/config/CONSUMER_ALERTS_TOPIC",
    ),
    "commit interval out of range": (
        {"config": {"CONSUMER_COMMIT_INTERVAL_MS": 0}},
        "/config/CONSUMER_COMMIT_INTERVAL_MS",
    ),
    "inline sasl password": (
        {"kafka": {"extraConfig": {"sasl.password": "hunter2"}}},
        "/kafka/extraConfig/sasl.password",
    ),
    "inline sasl password field": (
        {"kafka": {"sasl": {"password": "hunter2"}}},
        "'password' not allowed",
    ),
    "bootstrap through extraConfig": (
        {"kafka": {"extraConfig": {"bootstrap.servers": "x:1"}}},
        "/kafka/extraConfig/bootstrap.servers",
    ),
    "unknown sasl mechanism": (
        {"kafka": {"sasl": {"mechanism": "GSSAPI"}}},
        "/kafka/sasl/mechanism",
    ),
    "grace period below the shutdown bound": (
        {"terminationGracePeriodSeconds": 30},
        "/terminationGracePeriodSeconds",
    ),
    "root allowed": (
        {"podSecurityContext": {"runAsNonRoot": False}},
        "/podSecurityContext/runAsNonRoot",
    ),
    "bad pull policy": ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    "bad rule file name": ({"rules": {"files": {"rule.yaml": "x"}}}, "rule.yaml"),
    "metrics port privileged": ({"metrics": {"port": 80}}, "/metrics/port"),
    "typo in a top-level key": ({"replicas": 3}, "'replicas' not allowed"),
    "keda max replicas zero": (
        {"autoscaling": {"keda": {"maxReplicas": 0}}},
        "/autoscaling/keda/maxReplicas",
    ),
}


@pytest.mark.parametrize("name", REFUSED)
def test_schema_refuses_wrong_values_clearly(name: str) -> None:
    values, where = REFUSED[name]
    code, _, err = render_result(values)
    assert code != 0, f"{name}: accepted"
    assert "values don't meet the specifications of the schema" in err
    assert where in err, f"{name}: the message does not say where:\n{err}"
    lint = helm("lint", str(CHART), "--values", values_file(values))
    assert lint.returncode != 0, f"{name}: helm lint accepted it"


def test_template_level_refusals_say_what_to_do() -> None:
    both = {"autoscaling": {"keda": {"enabled": True}, "hpa": {"enabled": True}}}
    code, _, err = render_result(both)
    assert code != 0 and "keda or hpa, not both" in err
    half = {"kafka": {"tls": {"enabled": True, "existingSecret": "t", "certKey": "tls.crt"}}}
    code, _, err = render_result(half)
    assert code != 0 and "certKey and keyKey together" in err
    clash = {"kafka": {"sasl": SASL, "extraConfig": {"security.protocol": "SSL"}}}
    code, _, err = render_result(clash)
    assert code != 0 and "kafka.extraConfig.security.protocol" in err


# ------------------------------------------------------------------ documentation


def _value_paths(node: Any, prefix: str = "") -> list[str]:
    """Leaf paths of values.yaml; maps that are free-form (empty or env) stop at their key."""
    if (
        isinstance(node, dict)
        and node
        and prefix not in ("config", "updateStrategy")
        and not any(
            prefix.endswith(p) for p in ("Probe", "SecurityContext", "securityContext", "resources")
        )
    ):
        out: list[str] = []
        for key, child in node.items():
            out += _value_paths(child, f"{prefix}.{key}" if prefix else key)
        return out
    return [prefix]


def test_readme_lists_every_value() -> None:
    values = load_yaml((CHART / "values.yaml").read_text(encoding="utf-8"))
    readme = (CHART / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([^`]+)` \|", readme, re.M))
    paths = set(_value_paths(values))
    assert paths - documented == set(), "values missing from helm/README.md"
    assert documented - paths - SETTING_ENVS == set(), "README lists values that do not exist"


def test_notes_render_with_the_values_in_force(tmp_path) -> None:
    # `helm install --dry-run` needs a cluster; render NOTES.txt through `tpl` in a copy.
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    shutil.copy(chart / "templates/NOTES.txt", chart / "notes-probe.txt")  # .Files skips templates/
    (chart / "templates/notes-probe.yaml").write_text(
        '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "notes"}, '
        '"data": {"notes": {{ tpl (.Files.Get "notes-probe.txt") . | toJson }}}}\n',
        encoding="utf-8",
    )
    result = helm(
        "template",
        RELEASE,
        str(chart),
        "--namespace",
        NAMESPACE,
        "--show-only",
        "templates/notes-probe.yaml",
        "--values",
        values_file(CASES["sasl-existing-secret"]),
    )
    assert result.returncode == 0, result.stderr
    notes = load_yaml(result.stdout)["data"]["notes"]
    assert "SASL_SSL" in notes and f"svc/{FULLNAME} 9464:9464" in notes
    assert f"helm test {RELEASE} --namespace {NAMESPACE}" in notes
    assert "rpk group describe elastic-rules-consumer" in notes
