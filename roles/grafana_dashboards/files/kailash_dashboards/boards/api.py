"""API: the Nexus replicas' own request metrics (nexus_http_requests_total and the
nexus_http_request_duration_seconds histogram, labels method/route/status) and the edge in
front of them (NGINX stub_status, the access-log counter, the TLS certificate probe)."""

from __future__ import annotations

from ..panels import dashboard, query_variable, stat, steps, timeseries

UID = "kailash-api"
RATE = "[$__rate_interval]"
SEL = 'job=~"$job", route=~"$route"'
REQS = f"nexus_http_requests_total{{{SEL}}}"
BUCKET = f"nexus_http_request_duration_seconds_bucket{{{SEL}}}"
P95_TARGET = steps(("green", None), ("orange", 0.5))


def quantile(q: float, by: str = "") -> str:
    labels = f"le, {by}" if by else "le"
    return f"histogram_quantile({q}, sum by ({labels}) (rate({BUCKET}{RATE})))"


def build():
    requests = [
        timeseries(
            "Requests by status",
            [(f"sum by (status) (rate({REQS}{RATE}))", "{{status}}")],
            "reqps",
            "Requests per second per HTTP status, all replicas.",
            width=8,
            stacked=True,
        ),
        timeseries(
            "Requests by route",
            [(f"sum by (method, route) (rate({REQS}{RATE}))", "{{method}} {{route}}")],
            "reqps",
            "Requests per second per route template (never the concrete path).",
            width=8,
        ),
        timeseries(
            "5xx share",
            [
                (
                    f'sum(rate(nexus_http_requests_total{{{SEL}, status=~"5.."}}{RATE}))'
                    f" / sum(rate({REQS}{RATE}))",
                    "5xx",
                )
            ],
            "percentunit",
            "Share of responses with a 5xx status.",
            width=8,
            thresholds=steps(("green", None), ("orange", 0.01), ("red", 0.05)),
        ),
    ]
    latency = [
        timeseries(
            "Latency percentiles",
            [
                (quantile(0.5), "p50"),
                (quantile(0.95), "p95"),
                (quantile(0.99), "p99"),
            ],
            "s",
            "Request duration over all replicas; ADR-002's target is p95 < 0.5 s (alert "
            "HighResponseTime).",
            width=8,
            thresholds=P95_TARGET,
        ),
        timeseries(
            "p95 by route",
            [(quantile(0.95, "route"), "{{route}}")],
            "s",
            "95th percentile per route template.",
            width=8,
            thresholds=P95_TARGET,
        ),
        timeseries(
            "p95 by replica",
            [(quantile(0.95, "instance"), "{{instance}}")],
            "s",
            "95th percentile per API replica: one slow replica shows here first.",
            width=8,
            thresholds=P95_TARGET,
        ),
    ]
    replicas = [
        stat(
            "Replicas up",
            'sum(up{job=~"$job"})',
            "none",
            "API replicas whose metrics endpoint answers (of the jobs selected above).",
            thresholds=steps(("red", None), ("green", 1)),
        ),
        timeseries(
            "Requests per replica",
            [(f"sum by (instance) (rate({REQS}{RATE}))", "{{instance}}")],
            "reqps",
            "How evenly NGINX spreads the load over the replicas.",
            width=20,
        ),
    ]
    edge = [
        stat(
            "TLS certificate expires in",
            "min(probe_ssl_earliest_cert_expiry - time())",
            "s",
            "Time left on the earliest-expiring certificate the blackbox probes saw; alert "
            "CertificateExpiring under 14 days.",
            thresholds=steps(("red", None), ("orange", 14 * 86400), ("green", 30 * 86400)),
        ),
        timeseries(
            "Edge responses by status",
            [(f"sum by (status) (rate(edge_http_requests_total{RATE}))", "{{status}}")],
            "reqps",
            "Responses per second per status from NGINX's access log; alert EdgeHigh5xxRatio "
            "above 10 % 5xx.",
            width=10,
            stacked=True,
        ),
        timeseries(
            "Edge connections",
            [
                ("sum(nginx_connections_active)", "active"),
                ("sum(nginx_connections_reading)", "reading"),
                ("sum(nginx_connections_writing)", "writing"),
                ("sum(nginx_connections_waiting)", "waiting (keep-alive)"),
                (f"sum(rate(nginx_http_requests_total{RATE}))", "requests/s"),
            ],
            "short",
            "NGINX stub_status: client connections by state and requests per second.",
            width=10,
        ),
    ]
    return dashboard(
        UID,
        "Kailash / API",
        "The Nexus API replicas (request rate, errors, latency) and NGINX in front of them.",
        [
            ("Requests", requests),
            ("Latency", latency),
            ("Replicas", replicas),
            ("Edge", edge),
        ],
        variables=[
            query_variable("job", "Job", "label_values(nexus_http_requests_total, job)"),
            query_variable(
                "route", "Route", 'label_values(nexus_http_requests_total{job=~"$job"}, route)'
            ),
        ],
    )
