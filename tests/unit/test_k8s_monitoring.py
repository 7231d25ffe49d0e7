"""plugins/filter/k8s_monitoring.py: what the Kubernetes target scrapes (from the planned
services' metrics slots and the tree's workloads), as PodMonitor specs and as a plain
Prometheus's kubernetes_sd_configs jobs; and the quota/images plan of roles/kailash_k8s
with its monitoring workloads (plugins/filter/k8s.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str, file: str):
    sys.path.insert(0, str(ROOT / "plugins" / "filter"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "plugins" / "filter" / file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


km = _load("k8s_monitoring_filters", "k8s_monitoring.py")
k8s = _load("k8s_filters", "k8s.py")

SERVICES = {
    "redis": {"networks": ["data"]},  # no slot
    "redis-exporter": {"x-kailash": {"metrics": [{"port": 9121, "service": "redis"}]}},
    "nexus-api": {"x-kailash": {"metrics": [{"port": 8000, "path": "/metrics", "job": "api"}]}},
    # a slot of a service the tree does not run (the dev stack's own Prometheus)
    "prometheus": {"x-kailash": {"metrics": [{"port": 9090, "service": "prometheus"}]}},
    # a port the workload does not name
    "worker": {"x-kailash": {"metrics": [{"port": 9808}]}},
}
WORKLOADS = [
    {"name": "redis-exporter", "ports": [{"name": "metrics", "port": 9121}]},
    {
        "name": "nexus-api",
        "ports": [{"name": "http", "port": "8000"}, {"name": "mcp", "port": 3001}],
    },
    {"name": "worker", "ports": []},
]


def test_scrape_plan_takes_slots_of_workloads_with_named_ports() -> None:
    plan = km.kailash_k8s_scrape_plan(SERVICES, WORKLOADS)
    assert plan["targets"] == [
        {
            "workload": "nexus-api",
            "port": 8000,
            "port_name": "http",
            "path": "/metrics",
            "scheme": "http",
            "service": "nexus-api",
            "job": "api",
        },
        {
            "workload": "redis-exporter",
            "port": 9121,
            "port_name": "metrics",
            "path": "/metrics",
            "scheme": "http",
            "service": "redis",
            "job": "redis-exporter",
        },
    ]
    assert plan["skipped"] == ["prometheus:9090", "worker:9808"]
    assert km.kailash_k8s_scrape_plan({}, []) == {"targets": [], "skipped": []}


def test_bad_workloads_are_refused() -> None:
    with pytest.raises(Exception, match="workloads must be a list"):
        km.kailash_k8s_scrape_plan(SERVICES, {"name": "x"})
    with pytest.raises(Exception, match="bad workload"):
        km.kailash_k8s_scrape_plan(SERVICES, [{"ports": []}])


def test_metrics_ports_per_workload() -> None:
    targets = km.kailash_k8s_scrape_plan(SERVICES, WORKLOADS)["targets"]
    targets.append({**targets[0], "port": 8001, "job": "api2"})
    assert km.kailash_k8s_metrics_ports(targets) == [
        {"workload": "nexus-api", "ports": [8000, 8001]},
        {"workload": "redis-exporter", "ports": [9121]},
    ]


def test_pod_monitor_spec() -> None:
    target = km.kailash_k8s_scrape_plan(SERVICES, WORKLOADS)["targets"][1]
    spec = km.kailash_k8s_pod_monitor_spec(target, "kailash-production", "15s", "10s")
    assert spec == {
        "selector": {
            "matchLabels": {
                "app.kubernetes.io/name": "redis-exporter",
                "app.kubernetes.io/instance": "kailash-production",
            }
        },
        "podMetricsEndpoints": [
            {
                "port": "metrics",
                "path": "/metrics",
                "scheme": "http",
                "interval": "15s",
                "scrapeTimeout": "10s",
                "relabelings": [
                    {"action": "replace", "targetLabel": "job", "replacement": "redis-exporter"},
                    {"action": "replace", "targetLabel": "service", "replacement": "redis"},
                ],
            }
        ],
    }
    assert "interval" not in km.kailash_k8s_pod_monitor_spec(target, "i")["podMetricsEndpoints"][0]


def test_plain_scrape_configs_discover_the_workloads_pods() -> None:
    targets = km.kailash_k8s_scrape_plan(SERVICES, WORKLOADS)["targets"]
    (api, exporter) = km.kailash_k8s_scrape_configs(targets, "kailash-staging", "kailash-staging")
    assert api["job_name"] == "api" and exporter["job_name"] == "redis-exporter"
    assert exporter["kubernetes_sd_configs"] == [
        {
            "role": "pod",
            "namespaces": {"names": ["kailash-staging"]},
            "selectors": [
                {
                    "role": "pod",
                    "label": "app.kubernetes.io/name=redis-exporter,"
                    "app.kubernetes.io/instance=kailash-staging",
                }
            ],
        }
    ]
    relabel = exporter["relabel_configs"]
    assert relabel[0] == {
        "source_labels": [
            "__meta_kubernetes_pod_label_app_kubernetes_io_name",
            "__meta_kubernetes_pod_label_app_kubernetes_io_instance",
        ],
        "separator": ";",
        "regex": "redis-exporter;kailash-staging",
        "action": "keep",
    }
    assert relabel[1]["regex"] == "metrics" and relabel[-1] == {
        "target_label": "service",
        "replacement": "redis",
    }
    timed = km.kailash_k8s_scrape_configs(targets[:1], "n", "i", "30s", "5s")[0]
    assert (timed["scrape_interval"], timed["scrape_timeout"]) == ("30s", "5s")


PLAN = {
    "app_workloads": [],
    "app_image_variable": "app_image",
    "datastores": [{"name": "redis", "containers": ["redis"], "claims": ["redis"]}],
    "ops": {"prefix": "ops", "image_variable": "ops_image", "jobs": 2, "claims": ["backups"]},
}
SETTINGS = {
    **{
        f"{p}_{k}": v
        for p in ("redis", "ops", "redis_exporter")
        for k, v in (
            ("memory_request", "32Mi"),
            ("memory_limit", "64Mi"),
            ("cpu_request", "50m"),
            ("cpu_limit", "250m"),
        )
    },
    "redis_image_pull": "redis:7.0.15-alpine",
    "redis_exporter_image_pull": "oliver006/redis_exporter:v1.45.0",
    "app_image": "kailash/nexus-app:1.0.0",
    "ops_image": "kailash/nexus-ops:1.0.0",
    "kailash_k8s_app_image_tag": "1.0.0",
    "kailash_k8s_hpa_max_replicas": {},
}


def test_quota_and_images_count_the_monitoring_workloads() -> None:
    without = k8s.kailash_k8s_quota(SETTINGS, PLAN)
    monitored = {
        **PLAN,
        "monitoring": [{"name": "redis-exporter", "containers": ["redis_exporter"], "pods": 2}],
    }
    with_ = k8s.kailash_k8s_quota(SETTINGS, monitored)
    assert int(with_["pods"]) == int(without["pods"]) + 2
    assert (with_["requests.memory"], without["requests.memory"]) == ("160Mi", "96Mi")
    assert with_["persistentvolumeclaims"] == without["persistentvolumeclaims"]
    names = [i["name"] for i in k8s.kailash_k8s_images(SETTINGS, monitored)]
    assert "oliver006/redis_exporter" in names
    assert "oliver006/redis_exporter" not in [
        i["name"] for i in k8s.kailash_k8s_images(SETTINGS, PLAN)
    ]
    assert "redis_exporter_cpu_limit" in k8s.kailash_k8s_setting_names(monitored)
    # an empty monitoring list is the plan without it
    assert k8s.kailash_k8s_quota(SETTINGS, {**PLAN, "monitoring": []}) == without
