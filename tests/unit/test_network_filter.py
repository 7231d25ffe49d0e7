"""Unit tests of the network exposure filters (plugins/filter/network.py) on the project's own
roles' declarations (roles/<service>/vars/network.yml): one declaration gives both the
Compose networks and the Kubernetes NetworkPolicy rules."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "plugins" / "filter"))
from network import (  # noqa: E402
    kailash_compose_networks,
    kailash_network_rules,
    kailash_network_variables,
)

from roles import kailash_role_specs  # noqa: E402

TIERS = ["edge", "app", "data"]
SERVICES = yaml.safe_load((ROOT / "roles/kailash/defaults/main.yml").read_text())[
    "kailash_services"
]
SPECS = kailash_role_specs(SERVICES, str(ROOT / "roles"), "network")
VALUES = {
    "postgresql_port": 5432, "pgbouncer_port": "6432", "redis_port": 6379,
    "chromadb_port": 8000, "neo4j_bolt_port": 7687, "neo4j_http_port": 7474,
    "nexus_api_port": 8000, "nexus_mcp_port": 3001, "nexus_websocket_port": 8001,
    "postgres_exporter_target": "postgresql", "postgres_exporter_target_port": "5432",
    "redis_exporter_target": "redis", "redis_exporter_target_port": 6379,
    "celery_exporter_broker": "redis", "celery_exporter_broker_port": 6379,
    "nginx_exporter_target": "edge", "nginx_exporter_target_port": 8081,
}  # fmt: skip


def test_every_planned_service_declares_its_exposure() -> None:
    assert sorted(SPECS) == sorted(SERVICES)
    assert kailash_network_variables(SPECS) == sorted(VALUES)


def test_the_compose_networks_of_the_default_stack() -> None:
    """The lists the default compose.yml had before the declaration drove them (the oracle
    compares the whole file); the prober and the scraper add the networks of their slots."""
    nets = kailash_compose_networks(SPECS, TIERS, VALUES)
    assert nets["nexus-api"] == nets["nexus-websocket"] == ["edge", "app", "data"]
    assert nets["nexus-worker"] == ["app", "data"]
    assert nets["edge"] == ["edge"]
    for datastore in ("postgresql", "pgbouncer", "redis", "chromadb", "neo4j"):
        assert nets[datastore] == ["data"], datastore
    for exporter in ("postgres-exporter", "redis-exporter", "celery-exporter"):
        assert nets[exporter] == ["app", "data"], exporter
    assert nets["nginx-exporter"] == ["app", "edge"]
    for name in ("prometheus", "alertmanager", "node-exporter", "mtail", "blackbox-exporter"):
        assert nets[name] == ["app"], name
    assert "chromadb-server" not in nets  # it shares the gate's network namespace
    # an egress target's variable that is not set (its role not loaded yet): the file's `to`
    unset = {k: "" for k in VALUES if k.endswith(("_target", "_broker"))}
    assert kailash_compose_networks(SPECS, TIERS, {**VALUES, **unset}) == nets


def test_a_caller_joins_the_tier_of_what_it_reaches() -> None:
    specs = copy.deepcopy(SPECS)
    specs["redis"]["tier"] = "app"  # a datastore moved: the app and the exporters follow
    nets = kailash_compose_networks(specs, TIERS, VALUES)
    assert nets["redis"] == ["app"]
    assert nets["redis-exporter"] == ["app"]
    assert nets["nexus-worker"] == ["app", "data"]  # still reaches the other datastores
    # an egress target named by a variable follows it
    nets = kailash_compose_networks(SPECS, TIERS, {**VALUES, "redis_exporter_target": "nexus-api"})
    assert nets["redis-exporter"] == ["app"]


def test_without_the_ingress_the_app_does_not_join_the_public_tier() -> None:
    specs = {k: v for k, v in SPECS.items() if k != "edge"}
    nets = kailash_compose_networks(specs, TIERS, VALUES)
    assert nets["nexus-api"] == ["app", "data"]


def test_the_kubernetes_rules_with_and_without_the_pooler() -> None:
    enabled = [s for s in SERVICES if s != "pgbouncer"]
    rules = kailash_network_rules(SPECS, VALUES, enabled, ["postgresql", "nexus", "pgbouncer"])
    assert rules["postgresql"]["network"] == [
        {"workload": "postgresql", "ports": [5432], "from": ["app", "ops", "monitoring"]}
    ]
    assert rules["pgbouncer"] == {
        "network": [{"workload": "pgbouncer", "ports": [6432], "from": ["app"]}],
        "egress": [{"workload": "pgbouncer", "to": "postgresql", "ports": [5432]}],
    }
    assert rules["nexus"]["network"][1] == {
        "workload": "nexus-api", "ports": [8000, 3001], "from": ["app"]
    }  # fmt: skip
    rules = kailash_network_rules(SPECS, VALUES, SERVICES, ["postgresql"])
    assert list(rules) == ["postgresql"]
    assert rules["postgresql"]["network"][0]["from"] == ["pgbouncer", "ops", "monitoring"]


def test_an_exporter_egress_follows_its_target_variable() -> None:
    values = {**VALUES, "redis_exporter_target": "cache", "redis_exporter_target_port": "6380"}
    rules = kailash_network_rules(SPECS, values, SERVICES, ["redis_exporter"])
    assert rules["redis_exporter"]["egress"] == [
        {"workload": "redis-exporter", "to": "cache", "ports": [6380]}
    ]


@pytest.mark.parametrize(
    ("change", "values", "message"),
    [
        ({"tier": "dmz"}, VALUES, r"redis__network \(roles/redis/vars/network.yml\): tier must"),
        ({"colour": "red"}, VALUES, r"unknown keys \['colour'\]"),
        ({"workloads": "redis"}, VALUES, "workloads must be a list of names"),
        ({"expose": [{"workload": "valkey", "ports": ["redis_port"]}]}, VALUES,
         r"expose\[0\] must name one of its workloads"),
        ({}, {**VALUES, "redis_port": "x"}, "redis_port must be a TCP port"),
        ({}, {k: v for k, v in VALUES.items() if k != "redis_port"},
         "names redis_port, which is not set"),
        ({"expose": [{"workload": "redis", "ports": ["redis_port"], "from": ["nobody"]}]},
         VALUES, "caller 'nobody': neither a group"),
    ],
)  # fmt: skip
def test_a_bad_declaration_names_the_role_and_the_key(change, values, message) -> None:
    specs = copy.deepcopy(SPECS)
    specs["redis"].update(change)
    with pytest.raises(AnsibleFilterError, match=message):
        kailash_network_rules(specs, values, SERVICES, ["redis"])
        kailash_compose_networks(specs, TIERS, values)
