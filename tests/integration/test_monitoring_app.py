"""The application's own metrics in Prometheus (issue #13): the API replicas (kailash-nexus
[metrics], kailash_app/metrics.py) and the Celery workers (roles/celery_exporter).

Deploys its own Compose project (kailash-mon-app: PostgreSQL, Redis, ChromaDB, the reference
app with 2 API replicas and 1 worker, the NGINX edge, the Celery exporter and Prometheus)
with playbooks/dev_stack.yml, then, through Prometheus's HTTP API and the edge:

- every API replica (Docker DNS) and the Celery exporter are up targets;
- requests through the edge raise nexus_http_requests_total in Prometheus;
- a live replica's scrape passes ``promtool check metrics``;
- /metrics is not served through the edge (with or without a token) and the metrics port
  is published nowhere;
- with the worker stopped, a batch job and a failing task wait in the queue
  (celery_queue_length 2, celery_worker_up 0); started again, the worker runs them:
  celery_task_succeeded_total and the runtime histogram for the job, celery_task_failed_total
  with exception="TypeError" for the failing task, the queue empty;
- a second run changes nothing; bad input is refused naming the variable, before any change.

KAILASH_TEST_NEXUS_IMAGE (optional) builds and runs the app under that tag instead of the
role's default (to leave the default stack's image alone while developing).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.parse
from pathlib import Path

import pytest
import requests
import yaml

from kailash_testlib import run_playbook, wait_for

pytestmark = pytest.mark.usefixtures("docker_available")

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "kailash-mon-app"
WORK = Path("/tmp/kailash-mon-app")
STACK_DIR = WORK / "stack" / PROJECT
CA = WORK / "secrets" / "edge" / "ca.crt"
HTTPS, HTTP, PROM_PORT = 19420, 19421, 19422
URL = f"https://127.0.0.1:{HTTPS}"
PROM = f"http://127.0.0.1:{PROM_PORT}"
TASK = "kailash_app.classify_batch"
QUEUE = 'queue_name="kailash-batch"'
BASE = {
    "kailash_project": PROJECT,
    "kailash_services": ["postgresql", "redis", "chromadb", "nexus", "edge", "celery_exporter",
                         "prometheus"],
    "kailash_stack_root": str(WORK / "stack"),
    "kailash_secrets_dir": str(WORK / "secrets"),
    "kailash_publish_datastores": False,
    "kailash_networks": {"edge": "10.234.0.0/24", "app": "10.234.1.0/24",
                         "data": "10.234.2.0/24"},
    "edge_https_port": HTTPS, "edge_http_port": HTTP,
    "prometheus_host_port": PROM_PORT,
    "prometheus_scrape_interval": "2s", "prometheus_scrape_timeout": "2s",
    "prometheus_evaluation_interval": "2s",
    "postgresql_memory_request": "256Mi", "postgresql_memory_limit": "512Mi",
    "nexus_api_replicas": 2, "nexus_websocket_replicas": 1, "nexus_worker_replicas": 1,
    "nexus_worker_concurrency": 1,
}
if os.environ.get("KAILASH_TEST_NEXUS_IMAGE"):
    BASE["nexus_image_build"] = os.environ["KAILASH_TEST_NEXUS_IMAGE"]


def deploy(*args: str, **extra):
    return run_playbook("playbooks/dev_stack.yml", *args, extra={**BASE, **extra})


def docker(*args: str, check: bool = True) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True,
                          check=check).stdout.strip()


def compose(*args: str) -> str:
    return docker("compose", "-p", PROJECT, *args)


def query(expr: str) -> list[dict]:
    url = f"{PROM}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    return requests.get(url, timeout=10).json()["data"]["result"]


def value(expr: str) -> float | None:
    """The single value of ``expr`` (None when it has no series)."""
    result = query(expr)
    assert len(result) <= 1, result
    return float(result[0]["value"][1]) if result else None


def token() -> str:
    return docker("exec", f"{PROJECT}-nexus-api-1", "kailash-app", "token", "--sub", "mon-app")


@pytest.fixture(scope="module", autouse=True)
def stack():
    docker("compose", "-p", PROJECT, "down", "-v", "--remove-orphans", "--timeout", "5",
           check=False)
    shutil.rmtree(WORK, ignore_errors=True)
    run = deploy()
    assert run.rc == 0, run.output[-4000:]
    yield run
    docker("compose", "-p", PROJECT, "down", "-v", "--remove-orphans", "--timeout", "5",
           check=False)
    shutil.rmtree(WORK, ignore_errors=True)


def test_every_api_replica_and_the_celery_exporter_are_up_targets():
    def targets():
        active = requests.get(f"{PROM}/api/v1/targets", timeout=10).json()["data"]
        by_job: dict[str, list[dict]] = {}
        for t in active["activeTargets"]:
            by_job.setdefault(t["labels"]["job"], []).append(t)
        api = by_job.get("nexus-api", [])
        celery = by_job.get("celery-exporter", [])
        if len(api) == 2 and len(celery) == 1 and all(
                t["health"] == "up" for t in api + celery):
            return by_job
        return None

    by_job = wait_for("2 nexus-api targets and the celery-exporter target up", targets)
    ips = {json.loads(docker("inspect", "-f", "{{json .NetworkSettings.Networks}}",
                             f"{PROJECT}-nexus-api-{i}"))[f"{PROJECT}_app"]["IPAddress"]
           for i in (1, 2)}
    assert {t["labels"]["instance"] for t in by_job["nexus-api"]} == {f"{ip}:9464" for ip in ips}
    assert {t["labels"]["service"] for t in by_job["nexus-api"]} == {"nexus-api"}
    assert by_job["celery-exporter"][0]["labels"]["service"] == "nexus-worker"
    assert value('up{job="celery-exporter"}') == 1.0
    assert value('sum(up{job="nexus-api"})') == 2.0
    # the exporter reaches the broker and hears the worker's heartbeats
    wait_for("celery_exporter_broker_up 1", lambda: value("celery_exporter_broker_up") == 1.0)
    wait_for("a worker up", lambda: value("sum(celery_worker_up)") == 1.0)


def test_requests_through_the_edge_raise_the_request_counter():
    series = 'nexus_http_requests_total{route="/health", method="GET", status="200"}'
    expr = f"sum({series})"
    before = wait_for("the /health counter in Prometheus", lambda: value(expr))
    for _ in range(30):
        assert requests.get(f"{URL}/health", verify=str(CA), timeout=10).status_code == 200
    # the healthchecks add a few of their own: at least the 30 requests
    wait_for("30 more /health requests", lambda: value(expr) >= before + 30, timeout=30)
    # the edge spreads them: both replicas count requests
    per_replica = query(f"sum by (instance) ({series})")
    assert len(per_replica) == 2, per_replica
    # the latency histogram the HighResponseTime rule reads
    assert value('sum(nexus_http_request_duration_seconds_count{route="/health"})') >= 30


def test_a_replica_scrape_passes_promtool(tmp_path):
    tools = subprocess.run([str(ROOT / "scripts" / "monitoring-tools.sh")], capture_output=True,
                           text=True, check=True).stdout.strip().splitlines()[-1]
    text = docker("exec", f"{PROJECT}-nexus-api-2", "python", "-c",
                  "import urllib.request; print(urllib.request.urlopen("
                  "'http://127.0.0.1:9464/metrics', timeout=5).read().decode())")
    assert "# TYPE nexus_http_requests_total counter" in text
    assert " timer" not in text  # the gateway's own /metrics is not what is served
    # docker() strips the output: the exposition format ends with a newline
    proc = subprocess.run([f"{tools}/promtool", "check", "metrics"], input=text + "\n",
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_metrics_are_not_served_through_the_edge():
    anonymous = requests.get(f"{URL}/metrics", verify=str(CA), timeout=10)
    assert anonymous.status_code == 401, anonymous.text
    authed = requests.get(f"{URL}/metrics", verify=str(CA), timeout=10,
                          headers={"Authorization": f"Bearer {token()}"})
    assert authed.status_code == 404, authed.text  # no such route on the API port at all
    for resp in (anonymous, authed):
        assert "nexus_http_requests_total" not in resp.text
        assert "# TYPE" not in resp.text
    # the metrics port and the exporter's are published nowhere: only the edge and
    # Prometheus's UI (127.0.0.1) are
    rows = [json.loads(line) for line in compose("ps", "--format", "json").splitlines()]
    published = {r["Service"] for r in rows
                 if any(p.get("PublishedPort") for p in r.get("Publishers") or [])}
    assert published == {"edge", "prometheus"}, published


def test_queued_and_failing_tasks_show_in_the_celery_metrics():
    tok = token()
    failed = f'sum(celery_task_failed_total{{name="{TASK}", exception="TypeError", {QUEUE}}})'
    succeeded = f'sum(celery_task_succeeded_total{{name="{TASK}", {QUEUE}}})'
    runtime = f'sum(celery_task_runtime_count{{name="{TASK}", {QUEUE}}})'
    before = {e: value(e) or 0.0 for e in (failed, succeeded, runtime)}
    compose("stop", "--timeout", "20", "nexus-worker")
    try:
        wait_for("no worker up", lambda: value("sum(celery_worker_up)") == 0.0, timeout=30)
        # a batch job through the edge (one task of 2 items) ...
        resp = requests.post(f"{URL}/workflows/submit_batch/execute", verify=str(CA),
                             timeout=30, headers={"Authorization": f"Bearer {tok}"},
                             json={"inputs": {"items": ["cordless drill 18V", "office chair"]}})
        assert resp.status_code == 200, resp.text
        # ... and a task that fails in the worker (its second argument is missing)
        docker("exec", f"{PROJECT}-nexus-api-1", "python", "-c",
               "from kailash_app.worker import celery_app, TASK, QUEUE; "
               "celery_app.send_task(TASK, args=['mon-app-failing'], queue=QUEUE)")
        wait_for("2 messages queued", lambda: value(f"celery_queue_length{{{QUEUE}}}") == 2.0)
        assert value(f'sum(celery_task_sent_total{{name="{TASK}", {QUEUE}}})') >= 2
    finally:
        compose("start", "nexus-worker")
    wait_for("the failing task counted",
             lambda: (value(failed) or 0) >= before[failed] + 1, timeout=120)
    wait_for("the batch task succeeded",
             lambda: (value(succeeded) or 0) >= before[succeeded] + 1, timeout=120)
    assert (value(runtime) or 0) >= before[runtime] + 1
    wait_for("the queue empty", lambda: value(f"celery_queue_length{{{QUEUE}}}") == 0.0)
    wait_for("the worker up again", lambda: value("sum(celery_worker_up)") == 1.0)


def test_second_run_changes_nothing():
    compose_file = (STACK_DIR / "compose.yml").read_text()
    run = deploy()
    assert run.rc == 0, run.output[-4000:]
    assert run.recap()["changed"] == 0, run.output[-4000:]
    assert (STACK_DIR / "compose.yml").read_text() == compose_file
    api = yaml.safe_load(compose_file)["services"]["nexus-api"]
    assert api["environment"]["NEXUS_METRICS_PORT"] == "9464"
    assert api["environment"]["NEXUS_CELERY_EVENTS"] == "true"
    assert "x-kailash" not in api


@pytest.mark.parametrize(("extra", "names"), [
    ({"nexus_metrics_port": 8000}, "nexus_metrics_port (8000) must differ"),
    ({"celery_exporter_queues": []}, "celery_exporter_queues must be a non-empty list"),
])
def test_bad_input_is_refused_before_any_change(extra, names):
    compose_file = (STACK_DIR / "compose.yml").read_text()
    run = deploy(**extra)
    assert run.rc != 0
    assert names in run.output, run.output[-3000:]
    assert run.recap()["changed"] == 0
    assert (STACK_DIR / "compose.yml").read_text() == compose_file
