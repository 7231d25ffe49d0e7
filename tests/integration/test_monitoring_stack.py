"""The monitoring services in the dev stack (issue #13), opt-in through kailash_services.

Deploys its own Compose project (kailash-mon-it: PostgreSQL, Redis, their exporters,
node_exporter, Alertmanager and Prometheus; no app, no ChromaDB) with images built from the
offline base, then checks through Prometheus's HTTP API that every target is up with a
`service` label, that the rules of the planned roles are loaded and that Alertmanager
answers; then stops Redis and follows ServiceDown (pending, firing, the webhook receiver's
notification) and its resolution after Redis is started again. The intervals and every
rule's `for` are lowered through variables (prometheus_rules_for) to keep it short.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from kailash_testlib import run_playbook, wait_for

pytestmark = pytest.mark.usefixtures("docker_available")

PROJECT = "kailash-mon-it"
WORK = Path("/tmp/kailash-mon-it")
STACK_DIR = WORK / "stack" / PROJECT
PROM = "http://127.0.0.1:19390"
AM = "http://127.0.0.1:19393"
GATEWAY = "10.232.1.1"  # the app network's gateway: the host, as Alertmanager sees it
HOOK_PORT = 19395
SERVICES = [
    "postgresql",
    "redis",
    "postgres_exporter",
    "redis_exporter",
    "node_exporter",
    "alertmanager",
    "prometheus",
]
MONITORING = {"postgres-exporter", "redis-exporter", "node-exporter", "alertmanager", "prometheus"}
FOR = 4  # seconds: every rule's `for` in this stack
INTERVAL = 2  # seconds: scrape and evaluation interval
BASE = {
    "kailash_project": PROJECT,
    "kailash_services": SERVICES,
    "kailash_stack_root": str(WORK / "stack"),
    "kailash_secrets_dir": str(WORK / "secrets"),
    "kailash_publish_datastores": False,
    "kailash_networks": {"edge": "10.232.0.0/24", "app": "10.232.1.0/24", "data": "10.232.2.0/24"},
    "postgresql_memory_request": "256Mi",
    "postgresql_memory_limit": "512Mi",
    "redis_memory_request": "128Mi",
    "redis_memory_limit": "256Mi",
    "prometheus_host_port": 19390,
    "alertmanager_host_port": 19393,
    "node_exporter_textfile_dir": str(WORK / "textfile"),
    "prometheus_scrape_interval": f"{INTERVAL}s",
    "prometheus_scrape_timeout": f"{INTERVAL}s",
    "prometheus_evaluation_interval": f"{INTERVAL}s",
    "prometheus_rules_for": f"{FOR}s",
    "alertmanager_webhook_url": f"http://{GATEWAY}:{HOOK_PORT}/",
    "alertmanager_critical_group_wait": "1s",
    "alertmanager_critical_group_interval": "2s",
}


REPORTS = WORK / "reports"


def deploy(*args: str, **extra):
    return run_playbook("playbooks/dev_stack.yml", *args, extra={**BASE, **extra})


def health(**extra):
    """playbooks/health.yml against this project (its report files under WORK/reports)."""
    return run_playbook(
        "playbooks/health.yml", extra={**BASE, "kailash_health_report_dir": str(REPORTS), **extra}
    )


def health_report() -> dict:
    return json.loads((REPORTS / f"health-{PROJECT}.json").read_text())


def get(url: str, **params) -> dict:
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def query(expr: str) -> list[dict]:
    return get(f"{PROM}/api/v1/query", query=expr)["data"]["result"]


class Hook(BaseHTTPRequestHandler):
    """Alertmanager's webhook receiver: keeps every POSTed JSON body (with its arrival time)."""

    received: list[tuple[float, dict]] = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Hook.received.append((time.monotonic(), json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def notifications(alertname: str, status: str, since: float = 0.0) -> list[dict]:
    return [
        alert
        for at, body in Hook.received
        if at >= since
        for alert in body.get("alerts", [])
        if alert["labels"].get("alertname") == alertname and alert["status"] == status
    ]


def compose_down():
    subprocess.run(
        ["docker", "compose", "-p", PROJECT, "down", "--volumes", "--timeout", "5"],
        capture_output=True,
        check=False,
    )


@pytest.fixture(scope="module", autouse=True)
def stack():
    compose_down()
    subprocess.run(["rm", "-rf", str(WORK)], check=True)
    run = deploy()
    assert run.rc == 0, run.output[-4000:]
    # the app network exists now: listen on its gateway only (not on every host address)
    server = ThreadingHTTPServer((GATEWAY, HOOK_PORT), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield run
    server.shutdown()
    compose_down()
    subprocess.run(["rm", "-rf", str(WORK)], check=False)


def test_every_container_is_healthy_and_hardened():
    compose = yaml.safe_load((STACK_DIR / "compose.yml").read_text())
    for name in MONITORING:
        svc = compose["services"][name]
        assert svc["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in svc["security_opt"], name
        assert svc["read_only"] is True, name
        assert svc["user"] == "65534:65534", name
        assert svc["mem_limit"] > 0 and svc["cpus"] > 0 and svc["pids_limit"] > 0, name
        assert all(p.startswith("127.0.0.1:") for p in svc.get("ports", [])), name
        assert "x-kailash" not in svc, name
        assert "data" not in svc["networks"] or name.endswith("-exporter"), name
    assert compose["services"]["postgresql"]["networks"] == ["data"]
    assert compose["services"]["redis"]["networks"] == ["data"]
    assert compose["networks"]["data"]["internal"] is True
    out = subprocess.run(
        ["docker", "compose", "-p", PROJECT, "ps", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert {r["Service"] for r in rows} == MONITORING | {"postgresql", "redis"}
    for row in rows:
        assert row["State"] == "running" and row["Health"] == "healthy", row


def test_every_target_is_up_with_a_service_label():
    expected = {
        "postgres-exporter": "postgresql",
        "redis-exporter": "redis",
        "node-exporter": "node",
        "alertmanager": "alertmanager",
        "prometheus": "prometheus",
    }

    def all_up():
        targets = get(f"{PROM}/api/v1/targets")["data"]["activeTargets"]
        jobs = {t["labels"]["job"]: t for t in targets}
        return (
            jobs
            if set(jobs) == set(expected) and all(t["health"] == "up" for t in targets)
            else None
        )

    jobs = wait_for("every target up", all_up, timeout=60)
    assert {job: t["labels"]["service"] for job, t in jobs.items()} == expected
    # the exporters reach their services (the monitoring user logs in; Redis' admin user)
    assert wait_for(
        "pg_up 1", lambda: [r for r in query("pg_up") if r["value"][1] == "1"], timeout=30
    )
    assert wait_for(
        "redis_up 1", lambda: [r for r in query("redis_up") if r["value"][1] == "1"], timeout=30
    )
    assert query("redis_memory_max_bytes")[0]["value"][1] == str(64 * 1024 * 1024 * 2)
    assert query("count(node_load1)")[0]["value"][1] == "1"


def test_monitoring_user_is_a_pg_monitor_member_and_nothing_more():
    secrets = yaml.safe_load((WORK / "secrets" / "secrets.yml").read_text())
    out = subprocess.run(
        [
            "docker",
            "exec",
            "-e",
            f"PGPASSWORD={secrets['postgresql_password']}",
            f"{PROJECT}-postgresql-1",
            "psql",
            "-U",
            "kailash_user",
            "-d",
            "kailash",
            "-Atc",
            "select rolsuper, rolcreaterole, rolcreatedb, rolconnlimit, "
            "pg_has_role(oid, 'pg_monitor', 'member') "
            "from pg_roles where rolname = 'kailash_monitor'",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == "f|f|f|3|t"


def test_rules_are_loaded():
    groups = {g["name"]: g for g in get(f"{PROM}/api/v1/rules")["data"]["groups"]}
    # the planned roles' rules, the generic ones and the backup/drill rules; not those of
    # roles that are not planned (edge, nexus)
    assert set(groups) == {
        "kailash.platform",
        "kailash.postgresql",
        "kailash.redis",
        "kailash.backup",
    }
    assert all(g["file"] == "/etc/prometheus/rules/rules.yml" for g in groups.values())
    service_down = [r for r in groups["kailash.redis"]["rules"] if r["name"] == "ServiceDown"]
    assert service_down and service_down[0]["duration"] == FOR
    assert wait_for(
        "Watchdog firing",
        lambda: [
            a
            for a in get(f"{PROM}/api/v1/alerts")["data"]["alerts"]
            if a["labels"]["alertname"] == "Watchdog" and a["state"] == "firing"
        ],
        timeout=30,
    )


def test_alertmanager_answers_and_prometheus_sends_to_it():
    status = get(f"{AM}/api/v2/status")
    assert status["cluster"]["status"] in ("disabled", "ready")
    assert f"http://{GATEWAY}:{HOOK_PORT}/" in status["config"]["original"]
    active = get(f"{PROM}/api/v1/alertmanagers")["data"]["activeAlertmanagers"]
    assert [a["url"] for a in active] == ["http://alertmanager:9093/api/v2/alerts"]


def test_second_run_changes_nothing():
    run = deploy()
    assert run.rc == 0, run.output[-4000:]
    assert run.recap()["changed"] == 0, run.output[-4000:]


def test_health_report_lists_no_alert_firing_on_the_healthy_stack():
    """health.yml asks Prometheus for its alerts: none firing (Watchdog is a heartbeat)."""
    wait_for(
        "Watchdog firing and nothing else",
        lambda: (
            {
                a["labels"]["alertname"]
                for a in get(f"{PROM}/api/v1/alerts")["data"]["alerts"]
                if a["state"] in ("firing", "pending")
            }
            == {"Watchdog"}
        ),
        timeout=30,
    )
    # kailash_health_fail_on_alerts: the heartbeat does not count as firing
    run = health(kailash_health_fail_on_alerts=True)
    print("\n".join(line for line in run.output.splitlines() if "Alerts" in line))
    assert run.rc == 0, run.output[-4000:]
    assert "Alerts firing: none (pending: 0; heartbeat: Watchdog; from prometheus)" in run.output
    rep = health_report()
    services = {s["service"]: s for s in rep["services"]}
    assert services["prometheus"]["status"] == "up", services["prometheus"]
    assert services["prometheus"]["endpoint"].endswith(":9090/api/v1/alerts")
    alerts = rep["alerts"]
    assert (alerts["checked"], alerts["status"], alerts["sources"]) == (
        True,
        "none",
        ["prometheus"],
    )
    assert alerts["firing"] == [] and alerts["pending"] == []
    assert [a["alertname"] for a in alerts["heartbeats"]] == ["Watchdog"]
    # the JUnit XML: the alerts suite has one passing case
    xml = (REPORTS / f"health-{PROJECT}.xml").read_text()
    assert 'name="no alert firing"' in xml and 'type="alert firing"' not in xml


def test_redis_down_fires_service_down_and_resolves(record_property):
    def redis_alert(state: str):
        return [
            a
            for a in get(f"{PROM}/api/v1/alerts")["data"]["alerts"]
            if a["labels"]["alertname"] == "ServiceDown"
            and a["labels"].get("service") == "redis"
            and a["state"] == state
        ]

    wait_for(
        "redis_up 1", lambda: [r for r in query("redis_up") if r["value"][1] == "1"], timeout=30
    )
    assert not redis_alert("pending") and not redis_alert("firing")
    container = f"{PROJECT}-redis-1"
    start = time.monotonic()
    subprocess.run(["docker", "stop", "--time", "5", container], capture_output=True, check=True)
    try:
        stopped = time.monotonic()
        wait_for("ServiceDown pending", lambda: redis_alert("pending"), timeout=30, step=0.25)
        pending = time.monotonic()
        wait_for("ServiceDown firing", lambda: redis_alert("firing"), timeout=30, step=0.25)
        firing = time.monotonic()
        hooked = wait_for(
            "the webhook's notification",
            lambda: notifications("ServiceDown", "firing", since=start),
            timeout=60,
        )
        notified = time.monotonic()
        # the health report lists the firing alert (and fails: Redis itself is down)
        reported = health()
    finally:
        subprocess.run(["docker", "start", container], capture_output=True, check=True)
    restarted = time.monotonic()
    assert hooked[0]["labels"]["service"] == "redis"
    assert hooked[0]["labels"]["severity"] == "critical"
    print("\n".join(re.findall(r"^.*(?:Alerts|  firing).*$", reported.output, re.M)))
    assert reported.rc != 0, reported.output[-4000:]
    assert "redis is down (cannot connect: container" in reported.output
    assert "Alerts firing: 1 (pending: 0; heartbeat: Watchdog; from prometheus)" in reported.output
    assert re.search(
        r"firing +\| critical +\| ServiceDown +\| service=redis instance=\S+ +\| since \S+Z",
        reported.output,
    ), reported.output[-4000:]
    alerts = health_report()["alerts"]
    assert alerts["status"] == "firing" and alerts["counts"] == {"firing": 1, "pending": 0}
    down = alerts["firing"][0]
    assert (down["alertname"], down["service"], down["severity"], down["state"]) == (
        "ServiceDown",
        "redis",
        "critical",
        "firing",
    )
    assert down["instance"] and down["since"].endswith("Z") and down["source"] == "prometheus"
    assert 'type="alert firing"' in (REPORTS / f"health-{PROJECT}.xml").read_text()
    # pending -> firing takes `for`; firing within `for` plus a scrape and an evaluation interval
    assert firing - stopped <= FOR + 3 * INTERVAL + 2, firing - stopped
    wait_for(
        "ServiceDown resolved",
        lambda: (
            not redis_alert("firing")
            and not redis_alert("pending")
            and [r for r in query("redis_up") if r["value"][1] == "1"]
        ),
        timeout=60,
    )
    resolved_at = time.monotonic()
    wait_for(
        "the webhook's resolved notification",
        lambda: notifications("ServiceDown", "resolved", since=restarted),
        timeout=60,
    )
    timings = {
        "pending": pending - stopped,
        "firing": firing - stopped,
        "notified": notified - stopped,
        "resolved": resolved_at - restarted,
        "resolved_notified": time.monotonic() - restarted,
    }
    record_property(
        "service_down_timings", json.dumps({k: round(v, 1) for k, v in timings.items()})
    )
    print("ServiceDown timings (s):", {k: round(v, 1) for k, v in timings.items()})
