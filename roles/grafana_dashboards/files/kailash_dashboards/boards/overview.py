"""Overview: what is down, what alerts fire, the API in three numbers, containers against
their limits, the host. Generic metrics only (up, ALERTS, probe_success, cAdvisor's names,
node_exporter), grouped by their labels: no service is named."""

from __future__ import annotations

from ..panels import dashboard, query_variable, stat, steps, table, timeseries

UID = "kailash-overview"
RATE = "[$__rate_interval]"
CONTAINER = 'name=~"$container"'

API_RATE = f"sum(rate(nexus_http_requests_total{RATE}))"


def build():
    health = [
        stat(
            "Scrape targets down",
            "count(up == 0) or vector(0)",
            "none",
            "Targets whose scrape fails (alert TargetDown after 2 minutes).",
            thresholds=steps(("green", None), ("red", 1)),
        ),
        stat(
            "Alerts firing",
            'count(ALERTS{alertstate="firing", severity!="none"}) or vector(0)',
            "none",
            "Firing alerts except the Watchdog (severity none), as Prometheus evaluates them.",
            thresholds=steps(("green", None), ("orange", 1)),
        ),
        stat(
            "Probes failing",
            "count(probe_success == 0) or vector(0)",
            "none",
            "Blackbox probes that fail (ChromaDB heartbeat, Neo4j Bolt, HTTPS through NGINX): "
            "alert ServiceDown after 1 minute.",
            thresholds=steps(("green", None), ("red", 1)),
        ),
        stat(
            "API requests",
            API_RATE,
            "reqps",
            "Requests per second over every API replica (nexus_http_requests_total).",
        ),
        stat(
            "API 5xx share",
            f'sum(rate(nexus_http_requests_total{{status=~"5.."}}{RATE})) / {API_RATE}',
            "percentunit",
            "Share of API responses with a 5xx status.",
            thresholds=steps(("green", None), ("orange", 0.01), ("red", 0.05)),
        ),
        stat(
            "API p95 latency",
            "histogram_quantile(0.95, sum by (le) "
            f"(rate(nexus_http_request_duration_seconds_bucket{RATE})))",
            "s",
            "95th percentile of the API's request duration over all replicas; alert "
            "HighResponseTime above 0.5 s for 5 minutes (per job).",
            thresholds=steps(("green", None), ("orange", 0.5)),
        ),
    ]
    alerts = [
        table(
            "Firing alerts",
            'ALERTS{alertstate="firing"}',
            "Every firing alert with its labels (the Watchdog is always there: it proves the "
            "alerting pipeline works). Runbooks: docs/runbooks/<alertname>.md.",
            width=14,
        ),
        timeseries(
            "Scrape targets up, per job",
            [("avg by (job) (up)", "{{job}}")],
            "percentunit",
            "Share of each job's targets whose last scrape succeeded.",
            width=10,
            max_value=1,
        ),
    ]
    containers = [
        timeseries(
            "Memory against the limit",
            [
                (
                    f"container_memory_working_set_bytes{{{CONTAINER}}}"
                    f" / (container_spec_memory_limit_bytes{{{CONTAINER}}} > 0)",
                    "{{name}}{{container}}",
                )
            ],
            "percentunit",
            "Working set over the memory limit (containers without a limit are left out); "
            "alert MemoryUsageHigh above 85 % for 5 minutes.",
            width=8,
            thresholds=steps(("green", None), ("red", 0.85)),
            max_value=1,
        ),
        timeseries(
            "Memory working set",
            [(f"container_memory_working_set_bytes{{{CONTAINER}}}", "{{name}}{{container}}")],
            "bytes",
            "Working set (what the OOM killer counts) per container.",
            width=8,
        ),
        timeseries(
            "CPU",
            [
                (
                    "sum by (name, container) "
                    f"(rate(container_cpu_usage_seconds_total{{{CONTAINER}}}{RATE}))",
                    "{{name}}{{container}}",
                )
            ],
            "short",
            "CPU time per second (1 = one core) per container.",
            width=8,
            axis_label="cores",
        ),
    ]
    host = [
        timeseries(
            "CPU busy",
            [
                (
                    f'1 - avg by (instance) (rate(node_cpu_seconds_total{{mode="idle"}}{RATE}))',
                    "{{instance}}",
                )
            ],
            "percentunit",
            "Share of the host's CPU time not idle.",
            width=6,
            max_value=1,
        ),
        timeseries(
            "Memory available",
            [("node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes", "{{instance}}")],
            "percentunit",
            "MemAvailable over MemTotal: what the host can still give without swapping.",
            width=6,
            max_value=1,
            thresholds=steps(("red", None), ("green", 0.1)),
        ),
        timeseries(
            "Filesystem space available",
            [
                (
                    'node_filesystem_avail_bytes{fstype!~"tmpfs|overlay|squashfs"}'
                    ' / node_filesystem_size_bytes{fstype!~"tmpfs|overlay|squashfs"}',
                    "{{instance}} {{mountpoint}}",
                )
            ],
            "percentunit",
            "Space available to unprivileged users per mounted filesystem.",
            width=6,
            max_value=1,
            thresholds=steps(("red", None), ("orange", 0.1), ("green", 0.2)),
        ),
        timeseries(
            "Load (1 minute)",
            [("node_load1", "{{instance}}")],
            "short",
            "Run-queue length averaged over a minute.",
            width=6,
        ),
    ]
    return dashboard(
        UID,
        "Kailash / Overview",
        "What is down, what fires, the API in three numbers, containers and the host.",
        [
            ("Health", health),
            ("Alerts and targets", alerts),
            ("Containers", containers),
            ("Host", host),
        ],
        variables=[
            query_variable(
                "container", "Container", "label_values(container_memory_working_set_bytes, name)"
            )
        ],
    )
