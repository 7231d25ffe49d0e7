"""The API's own Prometheus metrics (issue #13), on a port of their own.

kailash-nexus 2.16 with its ``[metrics]`` extra (prometheus_client) emits
``nexus_http_requests_total`` and ``nexus_http_request_duration_seconds`` (labels method,
route template, status) when it is wired like this:

- ``app.enable_monitoring()`` after construction registers nexus.metrics' collectors and a
  ``/metrics`` route with prometheus_client's output. (``Nexus(enable_monitoring=True)``
  alone keeps the gateway's own ``/metrics``, whose ``# TYPE ... timer`` lines Prometheus
  rejects: the target is marked down.)
- ``RequestMetricsMiddleware`` added last, so it is the outermost middleware and measures
  every request, the refusals of the JWT middleware included.

The edge proxies every path to the API port, so the API port must not serve metrics: the
``/metrics`` route is taken off the API's app (any path there answers as an unknown one)
and its handler is served on ``NEXUS_METRICS_PORT`` by a small threaded stdlib server,
which the stack publishes nowhere and NGINX does not route to. Scrapes never run on the
API's event loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger("kailash_app.metrics")

PATH = "/metrics"


def _routes_app(app):
    """The FastAPI app that holds the API's routes."""
    fastapi_app = getattr(app, "fastapi_app", None)
    if isinstance(getattr(fastapi_app, "routes", None), list):
        return fastapi_app
    return app._http_transport.gateway.app


def take_metrics_route(app):
    """Remove every ``GET /metrics`` route from the API's app; the endpoint nexus registered
    (the last one), or None."""
    fastapi_app = _routes_app(app)
    found = [r for r in fastapi_app.routes
             if getattr(r, "path", None) == PATH and "GET" in (getattr(r, "methods", None) or ())]
    fastapi_app.routes[:] = [r for r in fastapi_app.routes if r not in found]
    return found[-1].endpoint if found else None


def enable(app, port: int) -> ThreadingHTTPServer:
    """Switch the Nexus metrics on and serve them on ``port`` (all interfaces)."""
    from nexus.middleware.request_metrics import RequestMetricsMiddleware

    app.enable_monitoring()
    endpoint = take_metrics_route(app)
    if endpoint is None:  # prometheus_client missing: enable_monitoring only warned
        raise RuntimeError(
            "NEXUS_METRICS_PORT is set but kailash-nexus registered no /metrics endpoint "
            "(is the [metrics] extra, prometheus_client, installed?)"
        )
    app.add_middleware(RequestMetricsMiddleware)
    return serve(endpoint, port)


def serve(endpoint, port: int, host: str = "0.0.0.0") -> ThreadingHTTPServer:  # noqa: S104
    """A daemon thread answering ``GET /metrics`` with ``endpoint()``'s response."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            if self.path.split("?", 1)[0] != PATH:
                self.send_error(404)
                return
            try:
                response = asyncio.run(endpoint())
            except Exception:  # noqa: BLE001 - a failed scrape is a 500, never a crash
                log.exception("metrics: scrape failed")
                self.send_error(500)
                return
            self.send_response(200)
            self.send_header("Content-Type", response.media_type)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(response.body)

        def log_message(self, *args):  # no line per scrape
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    log.info("metrics on :%d%s", port, PATH)
    return server
