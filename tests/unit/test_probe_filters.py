"""plugins/filter/probes.py: the probe jobs Prometheus scrapes through the blackbox exporter,
built from the probed services' own x-kailash.probes slots, and their validation."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("probe_filters", ROOT / "plugins/filter/probes.py")
p = importlib.util.module_from_spec(spec)
spec.loader.exec_module(p)

PROBER = {
    "networks": ["app", "data", "edge"],
    "x-kailash": {
        "prober": {"port": 9115, "modules": {"http": "http", "tcp": "tcp", "tls": "tcp"}}
    },
}
SERVICES = {
    "chromadb": {
        "networks": ["data"],
        "x-kailash": {"probes": [{"module": "http", "port": 8000, "path": "/api/v2/heartbeat"}]},
    },
    "neo4j": {"networks": ["data"], "x-kailash": {"probes": [{"module": "tcp", "port": 7687}]}},
    "edge": {
        "networks": ["edge"],
        "x-kailash": {"probes": [{"module": "tls", "port": 8443, "network": "edge"}]},
    },
    "redis": {"networks": ["data"]},
}


def test_one_job_per_module_through_the_prober():
    jobs = {j["job_name"]: j for j in p.probe_configs({**SERVICES, "bb": PROBER}, project="x")}
    assert sorted(jobs) == ["probe-http", "probe-tcp", "probe-tls"]
    http = jobs["probe-http"]
    assert http["metrics_path"] == "/probe" and http["params"] == {"module": ["http"]}
    assert http["static_configs"] == [
        {
            "targets": ["http://chromadb:8000/api/v2/heartbeat"],
            "labels": {"service": "chromadb", "project": "x"},
        }
    ]
    assert jobs["probe-tcp"]["static_configs"][0]["targets"] == ["neo4j:7687"]
    assert jobs["probe-tls"]["static_configs"][0]["targets"] == ["edge:8443"]  # tcp + tls
    relabel = http["relabel_configs"]
    assert relabel[0] == {"source_labels": ["__address__"], "target_label": "__param_target"}
    assert relabel[1] == {"source_labels": ["__param_target"], "target_label": "instance"}
    assert relabel[2] == {"target_label": "__address__", "replacement": "bb:9115"}


def test_no_prober_no_probe_jobs_and_no_errors():
    assert p.probe_configs(SERVICES) == []
    assert p.probe_errors(SERVICES) == []
    assert p.probe_networks(SERVICES) == ["data", "edge"]


def test_probes_the_prober_cannot_reach_or_run_are_refused_naming_the_service():
    prober = {**PROBER, "networks": ["app", "data"]}
    bad = {
        **SERVICES,
        "bb": prober,
        "chromadb": {
            "networks": ["data"],
            "x-kailash": {"probes": [{"module": "icmp", "port": 0}]},
        },
        "neo4j": {
            "networks": ["data"],
            "x-kailash": {"probes": [{"module": "tcp", "port": 7687, "network": "app"}]},
        },
    }
    errors = p.probe_errors(bad, ["edge", "app", "data"])
    joined = "\n".join(errors)
    assert "chromadb: x-kailash.probes[0].module 'icmp' is not a module of the prober bb" in joined
    assert "chromadb: x-kailash.probes[0].port must be 1-65535, got 0" in joined
    assert "neo4j: x-kailash.probes[0].network 'app' is not a network of neo4j" in joined
    # the edge's network is not the prober's: plan it after the edge
    assert "plan the role of bb after that of edge in kailash_services" in joined
    assert len(errors) == 4, errors


def test_one_prober_per_stack():
    errors = p.probe_errors({"a": PROBER, "b": PROBER})
    assert errors and "several services (a, b)" in errors[0]
    assert p.probe_configs({**SERVICES, "a": PROBER, "b": PROBER}) == []
