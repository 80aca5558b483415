"""The metrics and health server against hostile HTTP: it serves metrics and health only.

Its whole surface is read-only: GET (and HEAD) of ``/metrics``, ``/healthz`` and
``/readyz``. Every other method is refused with 405, every other path with 404, nothing a
request carries is echoed back or changes what the next request sees, malformed or idle
connections do not stop it answering, and it binds the address it is given, nothing else.
tests/unit/observability/test_health_server.py covers what the answers mean.
"""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter

from consumer.observability import Health, Metrics, ObservabilityServer

pytestmark = pytest.mark.timeout(60)

ENDPOINTS = ("/metrics", "/healthz", "/readyz")
MARKER = "zz-injected-<script>-marker"


@pytest.fixture(scope="module")
def health() -> Health:
    health = Health(liveness_timeout_s=30)
    health.connected = True
    health.assigned = True
    health.beat()
    return health


@pytest.fixture(scope="module")
def server(health: Health) -> Iterator[ObservabilityServer]:
    """One server for the module: no request may change what the next one sees."""
    registry = CollectorRegistry()
    Metrics(registry, health=health)
    Counter("probe_total", "a metric of the test", registry=registry).inc(7)
    served = ObservabilityServer(registry, health, "127.0.0.1", 0).start()
    yield served
    served.stop()


def _request(
    server: ObservabilityServer,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _snapshot(server: ObservabilityServer) -> tuple[int, int, bytes]:
    """What a scraper sees: readiness, liveness, and the test's own counter line."""
    ready, _ = _request(server, "GET", "/readyz")
    live, _ = _request(server, "GET", "/healthz")
    _, metrics = _request(server, "GET", "/metrics")
    probe = [line for line in metrics.splitlines() if line.startswith(b"probe_total")]
    return ready, live, b"\n".join(probe)


@pytest.mark.parametrize("path", ENDPOINTS)
def test_the_three_endpoints_answer_get(server: ObservabilityServer, path: str) -> None:
    status, body = _request(server, "GET", path)
    assert status == 200
    assert body


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"])
@pytest.mark.parametrize("path", [*ENDPOINTS, "/", "/admin"])
def test_other_methods_are_refused_and_change_nothing(
    server: ObservabilityServer, method: str, path: str
) -> None:
    before = _snapshot(server)
    status, body = _request(
        server, method, path, body=MARKER.encode() * 100, headers={"X-Marker": MARKER}
    )
    assert status in (404, 405), f"{method} {path} answered {status}"
    if path in ENDPOINTS:
        assert status == 405, f"{method} {path} must be 405 Method Not Allowed"
    assert MARKER.encode() not in body
    assert _snapshot(server) == before


@pytest.mark.parametrize(
    "path",
    [
        "/admin",
        "/metrics/",
        "/metricsx",
        "/healthz/../metrics/../../etc/passwd",
        "/../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/static/" + MARKER,
        "/" + "a" * 8000,
        "/debug/pprof",
        "/-/reload",  # Prometheus' own admin endpoints
        "/-/quit",
        "/api/v1/admin/tsdb/delete_series",
    ],
)
def test_other_paths_are_not_found_and_not_echoed(server: ObservabilityServer, path: str) -> None:
    status, body = _request(server, "GET", path)
    assert status in (404, 414), f"GET {path[:60]} answered {status}"
    assert MARKER.encode() not in body and b"root:" not in body


def test_query_strings_do_not_change_state(server: ObservabilityServer) -> None:
    before = _snapshot(server)
    for path in ("/metrics?name[]=probe_total", "/readyz?ready=false", "/healthz?reset=1"):
        status, _ = _request(server, "GET", path)
        assert status in (200, 400, 404)
    assert _snapshot(server) == before


@pytest.mark.parametrize(
    "raw",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # a TLS ClientHello
        b"GET /metrics HTTP/1.1\r\n" + b"X: " + b"a" * 200_000 + b"\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(5000)) + b"\r\n",
        b"GARBAGE\r\n\r\n",
        b"GET /metrics\r\n\r\n",  # HTTP/0.9
        b"GET /metrics HTTP/9.9\r\n\r\n",
        b"POST /metrics HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n" + b"x" * 1000,
        b"\xff\xfe\x00" * 1000,
        b"",
    ],
    ids=[
        "tls",
        "huge-header",
        "many-headers",
        "garbage",
        "http09",
        "http99",
        "lying-length",
        "binary",
        "nothing",
    ],
)
def test_malformed_requests_do_not_stop_it(server: ObservabilityServer, raw: bytes) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        try:
            sock.sendall(raw)
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(5)
            while sock.recv(65536):
                pass
        except OSError:
            pass  # the server may close on us: fine
    status, _ = _request(server, "GET", "/healthz")
    assert status == 200


def test_idle_connections_do_not_block_probes(server: ObservabilityServer) -> None:
    idle = []
    for _ in range(30):
        idle.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
        time.sleep(0.01)  # let it accept: socketserver's listen backlog is only 5
    try:
        for sock in idle[:25]:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # never finished
        start = time.monotonic()
        status, _ = _request(server, "GET", "/healthz")
        assert status == 200
        assert time.monotonic() - start < 2.0
    finally:
        for sock in idle:
            sock.close()


def test_binds_the_address_it_is_told(health: Health) -> None:
    registry = CollectorRegistry()
    served = ObservabilityServer(registry, health, "127.0.0.1", 0).start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # no traffic: picks the outward interface
            outward = probe.getsockname()[0]
        address = _bound_address(served.port)
        assert address == "127.0.0.1", f"bound to {address}"
        if outward != "127.0.0.1":
            with pytest.raises(OSError):
                socket.create_connection((outward, served.port), timeout=1).close()
    finally:
        served.stop()


def _bound_address(port: int) -> str:
    """The local address of the listening socket on ``port`` (from /proc/net/tcp)."""
    for line in open("/proc/net/tcp").read().splitlines()[1:]:  # noqa: PTH123, SIM115
        local, state = line.split()[1], line.split()[3]
        host_hex, port_hex = local.split(":")
        if int(port_hex, 16) == port and state == "0A":  # LISTEN
            return socket.inet_ntoa(bytes.fromhex(host_hex)[::-1])
    pytest.skip("no /proc/net/tcp entry (not Linux?)")
