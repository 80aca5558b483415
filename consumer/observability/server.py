"""One small HTTP server for ``/metrics``, ``/healthz`` and ``/readyz``.

stdlib ``wsgiref`` with a thread per request, in a daemon thread of its own, so a
scrape or a probe never waits for the poll loop and a stuck loop can still be reported
as stuck. ``/metrics`` is prometheus-client's WSGI app over the member's registry (it
honours ``Accept`` for OpenMetrics and gzip). No access log: probes every few seconds
would drown the structured log.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from consumer.observability.health import Health

StartResponse = Callable[..., Any]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    # socketserver's backlog of 5 made 50 simultaneous scrapes and probes wait seconds.
    request_queue_size = 64


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class ObservabilityServer:
    """Serve ``registry`` and ``health`` on ``host:port`` (port 0: a free port, for tests)."""

    def __init__(
        self, registry: CollectorRegistry, health: Health, host: str = "0.0.0.0", port: int = 0
    ) -> None:
        self._metrics = make_wsgi_app(registry)
        self._health = health
        self._host = host
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (after ``start``)."""
        assert self._server is not None, "not started"
        return int(self._server.server_port)

    def start(self) -> ObservabilityServer:
        """Bind and serve in a daemon thread; ``OSError`` if the address is taken."""
        self._server = make_server(
            self._host, self._port, self.app, server_class=_Server, handler_class=_QuietHandler
        )
        server = self._server
        self._thread = threading.Thread(
            # A short poll interval: stop() returns quickly at shutdown.
            target=lambda: server.serve_forever(poll_interval=0.1),
            name="observability-http",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """The WSGI application: health endpoints here, everything else is metrics."""
        path = environ.get("PATH_INFO", "/")
        if path not in _PATHS:
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"not found: try /metrics, /healthz or /readyz\n"]
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            # Read-only by design: no endpoint takes a body or changes anything.
            start_response(
                "405 Method Not Allowed",
                [("Allow", "GET, HEAD"), ("Content-Type", "text/plain; charset=utf-8")],
            )
            return [b"method not allowed: GET or HEAD\n"]
        if path == "/healthz":
            return _answer(start_response, *self._health.live())
        if path == "/readyz":
            return _answer(start_response, *self._health.ready())
        return self._metrics(environ, start_response)


_PATHS = frozenset(("/metrics", "/", "/healthz", "/readyz"))


def _answer(start_response: StartResponse, ok: bool, why: str) -> list[bytes]:
    status = "200 OK" if ok else "503 Service Unavailable"
    start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
    return [f"{'ok' if ok else 'unavailable'}: {why}\n".encode()]
