"""The container exporter and the blackbox exporter in the dev stack (issue #13), end to end.

Deploys its own Compose project (kailash-mon-ex: ChromaDB, the container exporter, the
blackbox exporter and Prometheus; images built from the offline base) and checks through
Prometheus's HTTP API that:

- every target is up: the exporters themselves and the probe job made from ChromaDB's own
  x-kailash.probes slot (no central list names it);
- the container exporter (cAdvisor's metric names) reports the limit of a limited container
  and 0 for a container started without one, and MemoryUsageHigh's expression leaves the
  unlimited one out (a plain usage/limit ratio would be +Inf);
- the heartbeat probe succeeds, fails once ChromaDB is stopped (ServiceDown fires while the
  blackbox exporter's own target stays up) and succeeds again after it is started;
- a second run changes nothing.

The edge's exporters (nginx_exporter, mtail) are not deployed here: the edge needs the app
(roles/edge refuses a plan without nexus); their fixtures are real scrapes
(scripts/capture-exporter-fixtures.py). Neo4j needs an image this machine lacks.
"""

from __future__ import annotations

import json
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from kailash_testlib import run_playbook, wait_for

pytestmark = pytest.mark.usefixtures("docker_available")

PROJECT = "kailash-mon-ex"
WORK = Path("/tmp/kailash-mon-ex")
STACK_DIR = WORK / "stack" / PROJECT
PROM = "http://127.0.0.1:19400"
UNLIMITED = f"{PROJECT}-unlimited"  # a container of the project started without limits
SERVICES = ["chromadb", "container_exporter", "blackbox_exporter", "prometheus"]
EXPORTERS = {"container-exporter", "blackbox-exporter"}
BASE = {
    "kailash_project": PROJECT,
    "kailash_services": SERVICES,
    "kailash_stack_root": str(WORK / "stack"),
    "kailash_secrets_dir": str(WORK / "secrets"),
    "kailash_publish_datastores": False,
    "kailash_networks": {"edge": "10.233.0.0/24", "app": "10.233.1.0/24", "data": "10.233.2.0/24"},
    "chromadb_memory_request": "512Mi",
    "chromadb_memory_limit": "1Gi",
    "prometheus_host_port": 19400,
    "prometheus_scrape_interval": "2s",
    "prometheus_scrape_timeout": "2s",
    "prometheus_evaluation_interval": "2s",
    "prometheus_rules_for": "4s",
}


def deploy(*args: str, **extra):
    return run_playbook("playbooks/dev_stack.yml", *args, extra={**BASE, **extra})


def query(expr: str) -> list[dict]:
    url = f"{PROM}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - loopback only
        return json.loads(resp.read())["data"]["result"]


def by(label: str, results: list[dict]) -> dict[str, float]:
    return {r["metric"].get(label, ""): float(r["value"][1]) for r in results}


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


def compose(*args: str) -> subprocess.CompletedProcess:
    return docker("compose", "-p", PROJECT, *args)


def clean():
    docker("rm", "-f", UNLIMITED, check=False)
    docker("compose", "-p", PROJECT, "down", "--volumes", "--timeout", "5", check=False)


@pytest.fixture(scope="module", autouse=True)
def stack():
    clean()
    subprocess.run(["rm", "-rf", str(WORK / "stack"), str(WORK / "secrets")], check=True)
    run = deploy()
    assert run.rc == 0, run.output[-4000:]
    yield run
    clean()
    subprocess.run(["rm", "-rf", str(WORK / "stack"), str(WORK / "secrets")], check=False)


def test_exporters_are_hardened_and_unpublished():
    services = yaml.safe_load((STACK_DIR / "compose.yml").read_text())["services"]
    for name in EXPORTERS:
        svc = services[name]
        assert svc["cap_drop"] == ["ALL"] and svc["read_only"] is True, name
        assert "no-new-privileges:true" in svc["security_opt"], name
        assert svc["user"] == "65534:65534", name
        assert "ports" not in svc and "x-kailash" not in svc, name
    ctr = services["container-exporter"]
    # the socket's group only (not root), the socket and the cgroup files read-only
    sock_gid = str(Path("/var/run/docker.sock").stat().st_gid)
    assert ctr["group_add"] == [sock_gid]
    assert all(v.endswith(":ro") for v in ctr["volumes"]), ctr["volumes"]
    assert ctr["networks"] == ["app"]
    # the prober joins the network of what it probes (ChromaDB: data), taken from its slot
    assert services["blackbox-exporter"]["networks"] == ["app", "data"]
    rows = [json.loads(x) for x in compose("ps", "--format", "json").stdout.splitlines() if x]
    assert {r["Service"]: (r["State"], r["Health"]) for r in rows} == {
        s: ("running", "healthy") for s in ["chromadb", "chromadb-server", "prometheus", *EXPORTERS]
    }


def test_every_target_is_up():
    expected = {
        "blackbox-exporter": "blackbox",
        "container-exporter": "containers",
        "probe-http": "chromadb",
        "prometheus": "prometheus",
    }

    def all_up():
        url = f"{PROM}/api/v1/targets"
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310
            targets = json.loads(resp.read())["data"]["activeTargets"]
        jobs = {t["labels"]["job"]: t for t in targets}
        ok = set(jobs) == set(expected) and all(t["health"] == "up" for t in targets)
        return jobs if ok else None

    jobs = wait_for("every target up", all_up, timeout=60)
    assert {job: t["labels"]["service"] for job, t in jobs.items()} == expected
    assert jobs["probe-http"]["labels"]["instance"] == "http://chromadb:8000/api/v2/heartbeat"
    assert jobs["probe-http"]["scrapeUrl"].startswith("http://blackbox-exporter:9115/probe?")


@pytest.fixture
def unlimited():
    """A container of the project with no memory or CPU limit (Compose's labels, no limits);
    removed afterwards (the stack's next run would count it as a service not planned)."""
    docker(
        "run", "-d", "--name", UNLIMITED, "--label", f"com.docker.compose.project={PROJECT}",
        "--label", "com.docker.compose.service=unlimited", "--network", "none",
        "kailash/base:bookworm", "sleep", "600",
    )  # fmt: skip
    yield UNLIMITED
    docker("rm", "-f", UNLIMITED, check=False)


def test_container_limits_as_cadvisor_names_them(unlimited):
    def limits():
        found = by("container", query(f'container_spec_memory_limit_bytes{{name="{UNLIMITED}"}}'))
        return by("container", query("container_spec_memory_limit_bytes")) if found else None

    limit = wait_for("the unlimited container scraped", limits, timeout=30)
    assert limit["chromadb"] == 128 * 2**20  # chromadb_gate_memory_limit 128Mi
    assert limit["chromadb-server"] == 2**30  # chromadb_memory_limit 1Gi (set above)
    assert limit["unlimited"] == 0  # no limit: 0, as cAdvisor reports it
    # MemoryUsageHigh's ratio: every limited container, never the unlimited one (no +Inf)
    ratio = by("container", query(
        "container_memory_working_set_bytes / (container_spec_memory_limit_bytes > 0)"
    ))  # fmt: skip
    assert "unlimited" not in ratio and {"chromadb", "chromadb-server"} <= set(ratio), ratio
    assert all(0 < v < 1 for v in ratio.values()), ratio
    assert not query('ALERTS{alertname="MemoryUsageHigh"}')
    # CPU: the quota of a container with cpus set, none for the unlimited one; usage counts
    quota = by("container", query("container_spec_cpu_quota"))
    assert quota["chromadb"] > 0 and "unlimited" not in quota, quota
    assert by("container", query("container_spec_cpu_period"))["unlimited"] == 100000
    usage = by("container", query('rate(container_cpu_usage_seconds_total{cpu="total"}[10s])'))
    assert usage["prometheus"] > 0, usage
    labels = query('container_memory_working_set_bytes{container="chromadb"}')[0]["metric"]
    assert labels["name"] == f"{PROJECT}-chromadb-1"
    assert labels["container_label_com_docker_compose_service"] == "chromadb"
    assert labels["service"] == "containers" and labels["id"].endswith(
        docker("inspect", "-f", "{{.Id}}", f"{PROJECT}-chromadb-1").stdout.strip()
    )


def test_probe_of_a_stopped_service_fails_and_recovers():
    def success() -> float | None:
        found = by("service", query('probe_success{job="probe-http"}'))
        return found.get("chromadb")

    assert wait_for("heartbeat probe succeeds", lambda: success() == 1, timeout=30)
    compose("stop", "chromadb")
    try:
        assert wait_for("heartbeat probe fails", lambda: success() == 0, timeout=30)
        # the prober itself stays up: ServiceDown (the service), not TargetDown (the exporter)
        assert by("job", query('up{job="blackbox-exporter"}'))["blackbox-exporter"] == 1
        firing = wait_for(
            "ServiceDown firing for chromadb",
            lambda: query('ALERTS{alertname="ServiceDown", alertstate="firing"}'),
            timeout=30,
        )
        assert firing[0]["metric"]["service"] == "chromadb"
    finally:
        compose("start", "chromadb")
    # The server shares the gate's network namespace: it keeps running while the gate is
    # stopped, and rejoins the gate's new namespace at its next health check (10 s) after the
    # start (roles/chromadb/README.md), then starts again.
    assert wait_for("heartbeat probe succeeds again", lambda: success() == 1, timeout=120)


def _unhealthy() -> list[str]:
    out = compose("ps", "--all", "--format", "{{.Name}} {{.State}} {{.Health}}").stdout
    return [line for line in out.splitlines()
            if line.split()[1:] not in (["running", "healthy"], ["running"])]  # fmt: skip


def test_second_run_changes_nothing():
    # on a healthy stack: after the stop and start above, ChromaDB's server may still be
    # starting (then a run heals it, which is a change)
    wait_for("every container healthy", lambda: not _unhealthy() or None, timeout=180, step=2)
    run = deploy()
    assert run.rc == 0, run.output[-4000:]
    assert run.recap()["changed"] == 0, run.output[-4000:]
