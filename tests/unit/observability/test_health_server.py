"""/healthz, /readyz and /metrics as Kubernetes and Prometheus see them."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter

from consumer.observability import Health, Metrics, ObservabilityServer


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def health(clock: FakeClock) -> Health:
    return Health(liveness_timeout_s=30, clock=clock)


@pytest.fixture
def server(health: Health) -> Iterator[ObservabilityServer]:
    registry = CollectorRegistry()
    Metrics(registry, health=health)
    Counter("probe_total", "a metric of the test", registry=registry).inc()
    served = ObservabilityServer(registry, health, "127.0.0.1", 0).start()
    yield served
    served.stop()


def get(server: ObservabilityServer, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_healthz_is_green_while_starting_and_while_the_loop_polls(server, health, clock) -> None:
    assert get(server, "/healthz")[0] == 200  # start-up steps have timeouts of their own
    health.beat()
    clock.now += 29
    assert get(server, "/healthz") == (200, "ok: polled 29.0s ago\n")


def test_a_stuck_poll_loop_turns_healthz_red(server, health, clock) -> None:
    health.beat()
    clock.now += 31
    status, body = get(server, "/healthz")
    assert status == 503
    assert "poll loop stuck" in body
    health.beat()  # the loop came back
    assert get(server, "/healthz")[0] == 200


def test_readyz_needs_connection_assignment_and_restored_state(server, health, clock) -> None:
    health.beat()
    assert get(server, "/readyz") == (503, "unavailable: not connected to Kafka\n")
    health.connected = True
    assert "assignment" in get(server, "/readyz")[1]
    health.assigned = True
    health.restoring = True
    assert get(server, "/readyz") == (503, "unavailable: restoring window state\n")
    health.restoring = False
    assert get(server, "/readyz") == (200, "ok: ready\n")
    clock.now += 31  # stuck: not ready either
    assert get(server, "/readyz")[0] == 503


def test_metrics_serve_the_registry_with_readiness_and_poll_age(server, health, clock) -> None:
    health.beat()
    clock.now += 2.5
    status, text = get(server, "/metrics")
    assert status == 200
    assert "probe_total 1.0" in text
    assert "detection_consumer_ready 0.0" in text
    assert "detection_consumer_poll_age_seconds 2.5" in text
    health.connected = health.assigned = True
    assert "detection_consumer_ready 1.0" in get(server, "/metrics")[1]


def test_unknown_paths_are_404(server) -> None:
    assert get(server, "/nope")[0] == 404
