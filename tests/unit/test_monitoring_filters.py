"""plugins/filter/monitoring.py: the scrape and alerting configuration built from the
planned services' metrics slots, their validation, and the rule files Prometheus loads."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location(
    "monitoring_filters", ROOT / "plugins/filter/monitoring.py"
)
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)

PROMTOOL = ROOT / ".tools" / "monitoring" / "bin" / "promtool"

SERVICES = {
    "redis": {"networks": ["data"]},  # no slot: not scraped
    "redis-exporter": {
        "networks": ["app", "data"],
        "x-kailash": {"metrics": [{"port": 9121, "service": "redis"}]},
    },
    "api": {
        "networks": ["edge", "app", "data"],
        "deploy": {"replicas": 2},
        "x-kailash": {"metrics": [{"port": 8000, "path": "/metrics", "job": "api"}]},
    },
    "edge": {
        "networks": ["edge"],
        "x-kailash": {
            "metrics": [{"port": 8081, "path": "/stub", "network": "edge", "service": "edge"}]
        },
    },
    "am": {
        "networks": ["app"],
        "x-kailash": {"metrics": [{"port": 9093}], "alerting": {"port": 9093}},
    },
}


def test_one_job_per_slot_with_a_service_label():
    jobs = {j["job_name"]: j for j in m.scrape_configs(SERVICES)}
    assert sorted(jobs) == ["am", "api", "edge", "redis-exporter"]
    assert jobs["redis-exporter"]["static_configs"] == [
        {"targets": ["redis-exporter:9121"], "labels": {"service": "redis"}}
    ]
    assert jobs["edge"]["metrics_path"] == "/stub"
    # the service label defaults to the compose service's name
    assert jobs["am"]["static_configs"][0]["labels"] == {"service": "am"}


def test_replicas_are_found_through_dns_and_labelled():
    api = next(j for j in m.scrape_configs(SERVICES, project="p") if j["job_name"] == "api")
    assert "static_configs" not in api
    assert api["dns_sd_configs"][0]["names"] == ["api"]
    assert api["dns_sd_configs"][0]["port"] == 8000
    assert {r["target_label"]: r["replacement"] for r in api["relabel_configs"]} == {
        "service": "api",
        "project": "p",
    }


def test_networks_and_alertmanagers():
    assert m.scrape_networks(SERVICES) == ["app", "edge"]
    assert m.alertmanagers(SERVICES) == ["am:9093"]
    assert m.scrape_networks({}) == [] and m.alertmanagers({}) == [] and m.scrape_configs({}) == []


def test_valid_slots_have_no_errors():
    assert m.metrics_errors(SERVICES) == []


def slot(*metrics, networks=("app",), **extra) -> dict:
    return {"x": {"networks": list(networks), "x-kailash": {"metrics": list(metrics), **extra}}}


@pytest.mark.parametrize(
    ("services", "message"),
    [
        (slot({"port": 0}), "x: x-kailash.metrics.port must be 1-65535, got 0"),
        (slot({"port": "9100"}), "x: x-kailash.metrics.port must be 1-65535, got '9100'"),
        (slot({"port": 1, "path": "m"}), "x: x-kailash.metrics.path must start with /"),
        (
            slot({"port": 1}, networks=["data"]),
            "x: x-kailash.metrics.network 'app' is not a network of x",
        ),
        (slot({"port": 1, "network": "lan"}), "x: x-kailash.metrics.network must be one of"),
        (slot({"port": 1, "scheme": "ftp"}), "x: x-kailash.metrics.scheme must be http or https"),
        (slot({"port": 1, "job": "a b"}), "x: x-kailash.metrics.job must be a name"),
        (
            slot({"port": 1, "service": ""}),
            "x: x-kailash.metrics.service must be a non-empty string",
        ),
        (slot("9100"), "x: x-kailash.metrics entries must be dicts"),
        (slot(alerting={"port": 99999}), "x: x-kailash.alerting.port must be 1-65535"),
    ],
)
def test_malformed_slots_are_named(services, message):
    errors = m.metrics_errors(services, ["edge", "app", "data"])
    assert len(errors) == 1 and errors[0].startswith(message), errors


def test_the_networks_default_to_those_the_services_join():
    """Without the planned tiers, a slot may name any network some service joins."""
    services = {**slot({"port": 1, "network": "lan"}), "y": {"networks": ["lan"]}}
    assert m.metrics_errors(services) == [
        "x: x-kailash.metrics.network 'lan' is not a network of x (['app'])"
    ]
    assert m.metrics_errors(slot({"port": 1, "network": "lan"}))[0].startswith(
        "x: x-kailash.metrics.network must be one of ['app'], got 'lan'"
    )


def test_duplicate_jobs_are_refused():
    services = {
        "a": {"networks": ["app"], "x-kailash": {"metrics": [{"port": 1, "job": "j"}]}},
        "b": {"networks": ["app"], "x-kailash": {"metrics": [{"port": 2, "job": "j"}]}},
    }
    assert m.metrics_errors(services) == ["b: x-kailash.metrics.job 'j' is declared by a too"]


RULES_A = """\
groups:
  - name: a
    rules:
      - alert: A
        expr: up == 0
        for: 2m
        labels: {severity: warning}
"""
RULES_B = """\
groups:
  - name: b
    rules:
      - alert: B
        expr: vector(1)
      - record: job:up:sum
        expr: sum by (job) (up)
"""


def test_rules_merge_keeps_every_group_in_order():
    doc = yaml.safe_load(m.rules_merge([RULES_A, RULES_B]))
    assert [g["name"] for g in doc["groups"]] == ["a", "b"]
    assert doc["groups"][0]["rules"][0]["for"] == "2m"


def test_rules_merge_overrides_for_only_where_a_rule_has_one():
    doc = yaml.safe_load(m.rules_merge([RULES_A, RULES_B], "5s"))
    assert doc["groups"][0]["rules"][0]["for"] == "5s"
    assert "for" not in doc["groups"][1]["rules"][0]
    with pytest.raises(ValueError, match="not a Prometheus duration"):
        m.rules_merge([RULES_A], "5 seconds")


def test_prom_seconds():
    assert m.prom_seconds("1m30s") == 90.0
    assert m.prom_seconds("500ms") == 0.5
    assert m.prom_seconds("15d") == 15 * 86400
    with pytest.raises(ValueError):
        m.prom_seconds("1.5m")


def test_the_project_rules_merge_into_one_file_promtool_accepts(tmp_path):
    if not PROMTOOL.exists():  # fetched here when this module runs first (a fresh clone)
        fetched = subprocess.run([str(ROOT / "scripts" / "monitoring-tools.sh")],
                                 capture_output=True, text=True, check=False, timeout=600)
        assert fetched.returncode == 0 and PROMTOOL.exists(), (
            f"scripts/monitoring-tools.sh could not provide promtool:\n{fetched.stderr}")
    files = sorted(ROOT.glob("roles/*/files/prometheus/rules.yml")) + sorted(
        ROOT.glob("roles/prometheus/files/rules/*.yml")
    )
    merged = m.rules_merge([f.read_text() for f in files], "10s")
    (tmp_path / "rules.yml").write_text(merged)
    config = {
        "global": {"scrape_interval": "15s"},
        "rule_files": [str(tmp_path / "rules.yml")],
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": m.alertmanagers(SERVICES)}]}]
        },
        "scrape_configs": m.scrape_configs(SERVICES, project="p", timeout="5s"),
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    proc = subprocess.run(
        [str(PROMTOOL), "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
