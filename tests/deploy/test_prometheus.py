"""The dashboard and alert rules against a real Prometheus scraping a real consumer.

Debian's ``prometheus`` package gives ``prometheus`` and ``promtool``; this test starts
Prometheus itself on a free loopback port with a generated configuration and a
temporary storage directory (never the packaged service). It checks that:

- every alerting rule and every dashboard panel expression is valid PromQL (promtool);
- every metric the dashboard and the rules name is one the consumer exports;
- with a consumer member (``python -m consumer run``, on the embedded Tansu broker)
  processing events, the key panels return data through Prometheus's HTTP API, and the
  alerting rules evaluate without errors.

Without prometheus/promtool the test skips, or fails when ``CI`` is true.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from consumer.brokers import BrokerUnavailable, EmbeddedBroker, free_port
from consumer.generator import generate_events

pytestmark = pytest.mark.timeout(180)
ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "helm" / "dashboards" / "consumer.json"
ALERT_RULES = ROOT / "helm" / "files" / "alert-rules.yml"
JOB = "elastic-rules-consumer"
# Grafana's variables, as a person looking at all replicas would have them.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__range": "5m",
    '"$job"': '".*"',
    '"$instance"': '".*"',
}
# Panels that must show data once events flowed (by title).
KEY_PANELS = [
    "Events consumed /s by topic",
    "Events consumed /s per pod",
    "Input bytes /s by topic",
    "Consumer lag by topic (records)",
    "Freshness: age of the newest event",
    "Alerts /min by severity",
    "Alerts /min by rule",
    "Rule matches /s",
    "Dead letters /s by reason",
    "Transactions /s",
    "Event time to alert",
    "Kafka record to alert",
    "Batch and commit time p99 per pod",
    "Members and ready members",
    "Assigned partitions per pod",
    "Poll loop age per pod",
    "Brokers connected",
    "Loaded rules",
]
NOT_OURS = {"up"}  # Prometheus's own series about the scrape
PROMQL_WORDS = {
    "sum", "by", "rate", "increase", "max", "min", "count", "topk", "on", "group_left",
    "histogram_quantile", "time", "deriv", "and", "or", "unless", "absent", "clamp_min",
    "without", "le", "avg", "bool", "ignoring", "group_right",
}  # fmt: skip


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _unavailable(reason: str) -> None:
    if _in_ci():
        pytest.fail(f"{reason} (CI=true, so this fails; apt-get install prometheus)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def tools() -> dict[str, str]:
    found = {name: shutil.which(name) for name in ("prometheus", "promtool")}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        _unavailable(f"not installed: {', '.join(missing)}")
    return {k: str(v) for k, v in found.items()}


def panel_exprs() -> list[tuple[str, str]]:
    """(panel title, expression) of every target of every panel, variables substituted."""
    out = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            assert "$" not in expr, f"unknown variable in {panel['title']}: {expr}"
            out.append((panel["title"], expr))
    return out


def alert_exprs() -> list[str]:
    # The rule file is YAML; its expressions follow "expr:" (folded ">-" blocks included).
    text = ALERT_RULES.read_text()
    exprs = []
    for match in re.finditer(r"expr: (?:>-\n((?:          .*\n)+)|(.*)\n)", text):
        exprs.append(" ".join((match.group(1) or match.group(2)).split()))
    return exprs


def metric_names(expr: str) -> set[str]:
    """Identifiers in ``expr`` that name metrics (not functions, labels or keywords)."""
    expr = re.sub(r'"[^"]*"', '""', expr)  # label values
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    names = set(re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b", expr))
    return {n for n in names if n not in PROMQL_WORDS and not re.fullmatch(r"\d.*|e\d+", n)}


def test_every_alerting_rule_is_valid(tools) -> None:
    result = subprocess.run(
        [tools["promtool"], "check", "rules", str(ALERT_RULES)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_exprs())} rules found" in result.stdout


def test_every_dashboard_expression_is_valid(tools, tmp_path: Path) -> None:
    exprs = panel_exprs()
    assert len(exprs) >= 30
    lines = ["groups:", "  - name: dashboard", "    rules:"]
    for i, (_title, expr) in enumerate(exprs):
        lines += [f"      - record: dashboard:panel_{i}", f"        expr: {json.dumps(expr)}"]
    rules = tmp_path / "dashboard-rules.yml"
    rules.write_text("\n".join(lines) + "\n")
    result = subprocess.run(
        [tools["promtool"], "check", "rules", str(rules)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout


def test_the_dashboard_uses_a_datasource_variable_and_rows() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert {"job", "instance"} <= set(variables)
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert len(rows) == 5
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


# ----------------------------------------------------------------------- the live stack


def _get(url: str, timeout: float = 5) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body = response.read().decode()
    return json.loads(body) if body.startswith("{") else body


def _wait(what: str, check: Any, timeout: float, proc: subprocess.Popen | None = None) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: process exited {proc.returncode}")
        try:
            last = check()
            if last:
                return last
        except OSError as exc:
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"{what}: not after {timeout}s (last: {last!r})")


@pytest.fixture(scope="module")
def broker() -> Iterator[str]:
    embedded = EmbeddedBroker()
    try:
        embedded.start()
    except BrokerUnavailable as exc:
        _unavailable(f"Tansu did not start: {exc}")
    try:
        yield embedded.bootstrap_servers
    finally:
        embedded.stop()


@pytest.fixture(scope="module")
def member(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A consumer member processing attacks and bad records; its metrics port."""
    topic = "logs-endpoint.events.process-prom"
    admin = AdminClient({"bootstrap.servers": broker})
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(30)
    port = free_port()
    log_path = tmp_path_factory.mktemp("member") / "member.log"
    args = [
        "--bootstrap-servers", broker, "--group-id", "prom", "--instance-id", "prom-1",
        "--input-topics", topic, "--metrics-port", str(port), "--metrics-host", "127.0.0.1",
        "--kafka-config", "statistics.interval.ms=1000",
    ]  # fmt: skip
    env = {
        **os.environ,
        "KAFKA_CONFIG_SESSION_TIMEOUT_MS": "6000",
        "KAFKA_CONFIG_HEARTBEAT_INTERVAL_MS": "500",
    }
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "consumer", "run", *args], stdout=log, stderr=log, env=env
        )
    try:
        ready = f"http://127.0.0.1:{port}/readyz"
        _wait("member ready", lambda: _ready(ready), 60, proc)
        start = datetime.now(UTC) - timedelta(seconds=30)
        events = [json.dumps(e).encode() for e in generate_events(200, match_every=20, start=start)]
        producer = Producer({"bootstrap.servers": broker, "linger.ms": 5})
        for i, value in enumerate([*events, b"{broken json", b""]):
            producer.produce(topic, value, key=str(i).encode())
        assert producer.flush(30) == 0
        yield port
    except BaseException:
        print(log_path.read_text(errors="replace")[-4000:])
        raise
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def prometheus(tools, member: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus scraping the member every second, with the alert rules loaded."""
    base = tmp_path_factory.mktemp("prometheus")
    config = base / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"rule_files:\n  - {ALERT_RULES}\n"
        f"scrape_configs:\n  - job_name: {JOB}\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{member}']\n"
    )
    port = free_port()
    log = (base / "prometheus.log").open("ab")
    proc = subprocess.Popen(
        [
            tools["prometheus"],
            f"--config.file={config}",
            f"--storage.tsdb.path={base / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait("prometheus ready", lambda: _ready(f"{url}/-/ready"), 30, proc)
        yield url
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()


def _query(url: str, expr: str) -> list[dict[str, Any]]:
    answer = _get(f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def test_nothing_in_the_dashboard_or_rules_is_missing_from_the_consumer(member: int) -> None:
    exposition = _get(f"http://127.0.0.1:{member}/metrics")
    exported = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            exported.add(name)
            if kind == "counter":
                exported.add(name + "_total")
            if kind == "histogram":
                exported |= {name + "_bucket", name + "_count", name + "_sum"}
    named = set()
    for _title, expr in panel_exprs():
        named |= metric_names(expr)
    for expr in alert_exprs():
        named |= metric_names(expr)
    assert "detection_consumer_alerts_total" in named  # the parser does find names
    assert named - exported - NOT_OURS == set()


def test_key_panels_return_data_and_the_rules_evaluate(prometheus: str) -> None:
    exprs = panel_exprs()
    titles = {title for title, _ in exprs}
    assert set(KEY_PANELS) <= titles

    def empty_panels() -> list[str]:
        missing = []
        for title in KEY_PANELS:
            results = [_query(prometheus, e) for t, e in exprs if t == title]
            if not any(results):
                missing.append(title)
        return missing

    deadline = time.monotonic() + 60
    missing = empty_panels()
    while missing and time.monotonic() < deadline:
        time.sleep(1)
        missing = empty_panels()
    assert missing == []
    # Numbers that say the events really went through.
    consumed = _query(prometheus, "sum(detection_consumer_events_consumed_total)")
    assert float(consumed[0]["value"][1]) == 202
    alerts = _query(prometheus, "sum(detection_consumer_alerts_total)")
    assert float(alerts[0]["value"][1]) == 10
    # Every alerting rule evaluates cleanly against the real series.
    groups = _get(f"{prometheus}/api/v1/rules")["data"]["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert len(rules) == len(alert_exprs())
    assert all(r["health"] == "ok" for r in rules), [r for r in rules if r["health"] != "ok"]
