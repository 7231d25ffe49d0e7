"""The monitoring of the default stack (issue #13), as ``make deploy`` leaves it: the
default inventory and project (``kailash``) with the default ``kailash_services``.

Real parts: Prometheus 2.42 and every exporter built from Debian packages on the offline
base image, the reference app's own metrics, the project's Celery and container
exporters, mtail on the NGINX edge's access log, blackbox probes of ChromaDB's heartbeat
and the edge's TLS certificate; queried through Prometheus's HTTP API on 127.0.0.1:9090,
the way a user's browser or curl would. Neo4j's Bolt probe is not exercised (no Neo4j
image offline: the neo4j role plans nothing, so no service declares that probe).

Scrape and evaluation intervals are the defaults (15 s), so the waits here are up to a
minute; the alert lifecycle with short intervals is in
tests/integration/test_monitoring_stack.py.
"""

from __future__ import annotations

import json
import re
import ssl
import subprocess
import time
import urllib.parse
import urllib.request

import pytest
import requests
import yaml

from day2lib import PROJECT, SECRETS_DIR, containers, deploy
from kailash_testlib import ROOT, wait_for

LOCAL = yaml.safe_load((ROOT / "inventories/local/group_vars/all.yml").read_text())
DEFAULTS = yaml.safe_load((ROOT / "roles/kailash/defaults/main.yml").read_text())
PROM = "http://127.0.0.1:9090"
EDGE = f"https://127.0.0.1:{LOCAL['edge_https_port']}"
CA = str(SECRETS_DIR / "edge" / "ca.crt")
# every scrape job the default service set must give Prometheus (the exporters' own jobs,
# the app's replicas and the blackbox probes the probed services declare)
JOBS = {
    "postgres-exporter", "redis-exporter", "node-exporter", "celery-exporter",
    "nginx-exporter", "mtail", "container-exporter", "blackbox-exporter", "alertmanager",
    "prometheus", "nexus-api", "probe-http", "probe-tls",
}  # fmt: skip


def get(path: str, **params) -> dict:
    url = f"{PROM}{path}" + ("?" + urllib.parse.urlencode(params) if params else "")
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - loopback only
        body = json.loads(resp.read())
    assert body["status"] == "success", body
    return body["data"]


def query(expr: str) -> list[dict]:
    return get("/api/v1/query", query=expr)["result"]


def scalar(expr: str) -> float | None:
    result = query(expr)
    return float(result[0]["value"][1]) if result else None


@pytest.fixture(scope="module")
def monitored(default_stack):
    """The default stack, with Prometheus answering (it may have just been recreated)."""
    assert "prometheus" in DEFAULTS["kailash_services"], "monitoring is not in the default set"
    wait_for("Prometheus on 127.0.0.1:9090", lambda: get("/api/v1/status/buildinfo"), 90, 2)
    return default_stack


def test_the_monitoring_services_are_part_of_the_default_stack_and_healthy(monitored):
    services = {row["Service"]: row for row in containers(PROJECT)}
    expected = {"prometheus", "alertmanager", "postgres-exporter", "redis-exporter",
                "node-exporter", "celery-exporter", "nginx-exporter", "mtail",
                "container-exporter", "blackbox-exporter"}  # fmt: skip
    assert expected <= set(services), sorted(services)
    for name in expected:
        assert services[name]["State"] == "running", services[name]
        assert services[name].get("Health") in ("healthy", ""), services[name]


def test_every_scrape_target_is_up(monitored):
    """Every target the default stack declares is scraped and up (a fresh Prometheus needs
    one interval for its first scrape of each), with one target per API replica."""

    def down() -> list:
        targets = get("/api/v1/targets", state="active")["activeTargets"]
        return [(t["labels"]["job"], t["scrapeUrl"], t["health"], t["lastError"])
                for t in targets if t["health"] != "up"]  # fmt: skip

    wait_for("every target up", lambda: not down() or None, 90, 3)
    targets = get("/api/v1/targets", state="active")["activeTargets"]
    jobs = [t["labels"]["job"] for t in targets]
    assert set(jobs) >= JOBS, sorted(JOBS - set(jobs))
    assert jobs.count("nexus-api") == LOCAL["nexus_api_replicas"], jobs
    assert all(t["labels"].get("service") for t in targets), targets


def test_requests_through_the_edge_reach_its_two_exporters(monitored):
    """NGINX's stub_status (nginx_exporter) and the access log (mtail) both count the
    requests a client sends through the edge.

    mtail's counters are read per status: a sum over every status is not monotonic, since
    the series of a status an earlier mtail process had seen (a 401, a 502) vanish when mtail
    is recreated (an earlier test's deploy may do that), which once made the sum drop by
    three while the 40 requests were counted: seen after an engine restart recreated mtail."""
    ok = 'edge_http_requests_total{status="200"}'
    before_log = scalar(ok) or 0.0
    before_stub = scalar("sum(nginx_http_requests_total)") or 0.0
    before_hist = scalar("sum(edge_http_request_duration_seconds_count)") or 0.0
    session = requests.Session()
    for _ in range(40):
        assert session.get(f"{EDGE}/health", verify=CA, timeout=10).status_code == 200
    wait_for(
        f"{ok} (mtail) above {before_log} + 40",
        lambda: (scalar(ok) or 0) >= before_log + 40,
        60,
        3,
    )
    wait_for(
        f"nginx_http_requests_total (stub_status) above {before_stub} + 40",
        lambda: (scalar("sum(nginx_http_requests_total)") or 0) >= before_stub + 40,
        60,
        3,
    )
    # the access log's latency histogram carries the requests too (every one: the metrics
    # log is a file mtail reads at each poll, nothing is dropped between them)
    assert (scalar("sum(edge_http_request_duration_seconds_count)") or 0) >= before_hist + 40


def _not_after(pem: str) -> float:
    out = subprocess.run(["openssl", "x509", "-noout", "-enddate"], input=pem,
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return ssl.cert_time_to_seconds(out.strip().split("=", 1)[1])


def test_the_edge_certificate_expiry_is_probed(monitored):
    """The TLS probe reports the certificate the edge serves (its notAfter, from openssl)."""
    served = ssl.get_server_certificate(("127.0.0.1", LOCAL["edge_https_port"]))
    ca = (SECRETS_DIR / "edge" / "ca.crt").read_text()
    expiries = {_not_after(served), _not_after(ca)}
    probed = wait_for(
        "the TLS probe's result",
        lambda: scalar('probe_ssl_earliest_cert_expiry{job="probe-tls"}'),
        60,
        3,
    )
    assert probed == min(expiries) or probed in expiries, (probed, expiries)
    assert probed > time.time() + 86400
    # (an earlier test may have recreated ChromaDB: its probe succeeds again at the next scrape)
    wait_for(
        "ChromaDB's heartbeat probe succeeding",
        lambda: scalar('probe_success{job="probe-http", service="chromadb"}') == 1.0,
        60,
        3,
    )


def test_container_memory_is_reported_against_its_limit(monitored):
    """The container exporter gives every container of the project cAdvisor's names, with
    the limit Compose set from the inventory (postgresql_memory_limit: 2Gi)."""
    name = f'name="{PROJECT}-postgresql-1"'
    limit = scalar(f"container_spec_memory_limit_bytes{{{name}}}")
    assert limit == 2 * 1024**3, limit
    used = scalar(f"container_memory_working_set_bytes{{{name}}}")
    assert used and 0 < used < limit, used
    names = {r["metric"]["name"] for r in query("container_memory_working_set_bytes")}
    assert {c["Name"] for c in containers(PROJECT)} <= names


def test_the_health_report_lists_no_alert_firing_on_the_healthy_stack(monitored):
    """health.yml on the default inventory asks Prometheus: only the Watchdog heartbeat.
    (Earlier tests stop services and load the app: their alerts leave once the rules' 5-minute
    windows have passed, so this waits up to six minutes for no alert first.)"""

    def others() -> list:
        return [(a["labels"]["alertname"], a["state"], a["labels"].get("service"))
                for a in get("/api/v1/alerts")["alerts"]
                if a["labels"].get("severity") != "none"]  # fmt: skip

    wait_for("no alert but the heartbeat", lambda: not others() or None, 360, 5)
    run = deploy(playbook="playbooks/health.yml")
    assert run.rc == 0, run.output[-3000:]
    line = re.search(r"Alerts firing: none \(pending: (\d+); heartbeat: Watchdog; "
                     r"from prometheus\)", run.output)  # fmt: skip
    assert line, run.output[-3000:]
    # an alert that went pending during the run (a slow moment of a loaded machine) must be
    # the one Prometheus has; none is firing
    assert line.group(1) == "0" or others(), (line.group(0), others())
    # every monitoring service has a probe of its own (not "not deployed" nor "no probe")
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\s*(\w+)\s+\|\s+([\w ]+?)\s+\|",
                                                       run.output, re.M)}  # fmt: skip
    monitoring = DEFAULTS["kailash_services"][DEFAULTS["kailash_services"].index("edge") + 1 :]
    assert {svc: rows.get(svc) for svc in monitoring} == dict.fromkeys(monitoring, "up"), rows
