"""The whole dev stack end to end: datastores, the reference Kailash Nexus app (API x 2,
WebSocket, workers x 2) and the NGINX edge, deployed by playbooks/dev_stack.yml as its
own Compose project (kailash-e2e) on this machine's Docker engine.

Everything here is real: real PostgreSQL, Redis, ChromaDB (behind its token gate), the
reference app image built from roles/nexus/files (kailash-nexus, kailash-dataflow,
Celery), NGINX with a certificate from the local CA. Neo4j is not deployed (no image
can be built here), so recommendations come from the taxonomy tree and say so.

Clients: HTTPS through NGINX from this host (requests, websockets), the Nexus CLI
(`python -m nexus.cli`) inside an API container, MCP (WebSocket JSON-RPC, hand-written
and the official MCP SDK's client) at an API container's address on the app network,
which is reachable from the Docker host but not published. The project is removed at
the end.
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from kailash_testlib import PlaybookRun, mcp_sdk_session, run_playbook

pytestmark = pytest.mark.usefixtures("docker_available")

PROJECT = "kailash-e2e"
WORK = Path("/tmp/kailash-e2e")
STACK_DIR = WORK / "stack" / PROJECT
SECRETS = WORK / "secrets"
CA = SECRETS / "edge" / "ca.crt"
HTTPS, HTTP = 9443, 9080
BASE = {
    "kailash_project": PROJECT,
    "kailash_services": ["postgresql", "pgbouncer", "redis", "chromadb", "nexus", "edge"],
    "kailash_stack_root": str(WORK / "stack"),
    "kailash_secrets_dir": str(SECRETS),
    "kailash_publish_datastores": False,
    "kailash_networks": {"edge": "10.222.0.0/24", "app": "10.222.1.0/24",
                         "data": "10.222.2.0/24"},
    "edge_https_port": HTTPS, "edge_http_port": HTTP,
    "postgresql_memory_request": "512Mi", "postgresql_memory_limit": "1Gi",
}
URL = f"https://127.0.0.1:{HTTPS}"
DESCRIPTION = "cordless drill 18V with two batteries"


def deploy(*args: str, **extra) -> PlaybookRun:
    return run_playbook("playbooks/dev_stack.yml", *args, extra={**BASE, **extra})


def docker(*args: str, check: bool = True) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True,
                          check=check).stdout.strip()


def containers() -> list[dict]:
    out = docker("compose", "-p", PROJECT, "ps", "--all", "--format", "json")
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    return rows[0] if rows and isinstance(rows[0], list) else rows


def api_container() -> str:
    return f"{PROJECT}-nexus-api-1"


def token(sub: str = "e2e") -> str:
    return docker("exec", api_container(), "kailash-app", "token", "--sub", sub)


def auth(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}


def execute(workflow: str, inputs: dict, tok: str, timeout: float = 30) -> requests.Response:
    return requests.post(f"{URL}/workflows/{workflow}/execute", json={"inputs": inputs},
                         headers=auth(tok), verify=str(CA), timeout=timeout)


def result_of(resp: requests.Response) -> dict:
    """The workflow's own result, whatever envelope Nexus wraps it in."""
    body = resp.json()
    for key in ("outputs", "result", "results"):
        while isinstance(body, dict) and key in body and isinstance(body[key], dict):
            body = body[key]
    # a handler workflow nests its return value under the node name
    if isinstance(body, dict) and len(body) == 1:
        (only,) = body.values()
        if isinstance(only, dict) and ("code" in only or "job_id" in only or "result" in only):
            body = only.get("result", only)
    return body


def psql(sql: str) -> str:
    password = yaml.safe_load((SECRETS / "secrets.yml").read_text())["postgresql_password"]
    return docker("exec", "-e", f"PGPASSWORD={password}", f"{PROJECT}-postgresql-1", "psql",
                  "-U", "kailash_user", "-d", "kailash", "-At", "-c", sql)


@pytest.fixture(scope="module")
def stack() -> Iterator[PlaybookRun]:
    docker("compose", "-p", PROJECT, "down", "-v", "--remove-orphans", check=False)
    shutil.rmtree(WORK, ignore_errors=True)
    run = deploy()
    assert run.rc == 0, run.output[-4000:]
    yield run
    docker("compose", "-p", PROJECT, "down", "-v", "--remove-orphans", check=False)
    shutil.rmtree(WORK, ignore_errors=True)


def test_every_container_is_healthy_with_the_planned_replicas(stack: PlaybookRun) -> None:
    rows = containers()
    by_service: dict[str, list[dict]] = {}
    for row in rows:
        by_service.setdefault(row["Service"], []).append(row)
    assert {s: len(c) for s, c in by_service.items() if s.startswith("nexus")} == {
        "nexus-api": 2, "nexus-websocket": 1, "nexus-worker": 2}
    assert set(by_service) >= {"postgresql", "pgbouncer", "redis", "chromadb", "chromadb-server",
                               "edge"}
    unhealthy = [(r["Name"], r["Status"]) for r in rows if "(healthy)" not in r["Status"]]
    assert not unhealthy
    assert f"{URL}" in stack.output or str(HTTPS) in stack.output  # the report names the URL


def test_only_nginx_is_published_and_mcp_never(stack: PlaybookRun) -> None:
    published = {r["Service"]: r["Publishers"] for r in containers()}
    with_ports = {s for s, pubs in published.items()
                  if any(p.get("PublishedPort") for p in pubs or [])}
    assert with_ports == {"edge"}
    ports = {p["PublishedPort"] for p in published["edge"] if p.get("PublishedPort")}
    assert ports == {HTTP, HTTPS}
    edge_nets = docker("inspect", "-f", "{{json .NetworkSettings.Networks}}", f"{PROJECT}-edge-1")
    assert set(json.loads(edge_nets)) == {f"{PROJECT}_edge"}  # NGINX never sees the datastores


def test_app_containers_are_hardened(stack: PlaybookRun) -> None:
    for name in (api_container(), f"{PROJECT}-nexus-worker-1", f"{PROJECT}-nexus-websocket-1",
                 f"{PROJECT}-edge-1", f"{PROJECT}-pgbouncer-1"):
        info = json.loads(docker("inspect", name))[0]
        host = info["HostConfig"]
        assert host["ReadonlyRootfs"] is True, name
        assert host["CapDrop"] == ["ALL"] and not host["CapAdd"], name
        assert "no-new-privileges:true" in host["SecurityOpt"], name
        assert host["Memory"] > 0, name
        assert info["Config"]["User"] not in ("", "0", "root", "0:0"), name
    env = dict(e.split("=", 1) for e in json.loads(docker("inspect", api_container()))[0]
               ["Config"]["Env"])
    assert env["NEXUS_ENV"] == "production" and env["LOG_LEVEL"] == "WARNING"
    assert "NEXUS_JWT_SECRET" not in env  # a file, never an environment value


def test_https_health_redirect_and_security_headers(stack: PlaybookRun) -> None:
    resp = requests.get(f"{URL}/health", verify=str(CA), timeout=10)
    assert resp.status_code == 200
    for header in ("Strict-Transport-Security", "X-Content-Type-Options", "X-Frame-Options",
                   "Content-Security-Policy"):
        assert header in resp.headers, header
    assert resp.headers["Server"] == "nginx"  # no version
    plain = requests.get(f"http://127.0.0.1:{HTTP}/health?x=1", allow_redirects=False, timeout=10)
    assert plain.status_code == 301
    assert plain.headers["Location"] == f"https://127.0.0.1:{HTTPS}/health?x=1"
    # the certificate is for the configured host name, issued by the local CA
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{URL}/health", timeout=10)  # system store: unknown CA


def test_readiness_names_every_datastore(stack: PlaybookRun) -> None:
    resp = requests.get(f"{URL}/readyz", verify=str(CA), timeout=10)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["status"] == "ready"
    assert {"postgresql", "redis", "chromadb"} <= set(body["checks"])


def test_protected_routes_need_a_token(stack: PlaybookRun) -> None:
    resp = requests.post(f"{URL}/workflows/classify/execute",
                         json={"inputs": {"description": DESCRIPTION}}, verify=str(CA),
                         timeout=10)
    assert resp.status_code == 401, resp.text
    forged = execute("classify", {"description": DESCRIPTION}, "e30.e30.AAAA")
    assert forged.status_code == 401, forged.text
    # the app's plain-ASGI JWT check (kailash_app/fastauth.py) hands every refusal to
    # Nexus's own middleware: its answers, for an expired token and another secret's
    expired = docker("exec", api_container(), "kailash-app", "token", "--sub", "e2e",
                     "--ttl=-60")
    resp = execute("classify", {"description": DESCRIPTION}, expired)
    assert resp.status_code == 401 and resp.json()["error"] == "token_expired", resp.text
    other = docker("exec", api_container(), "python", "-c",
                   "from kailash_app import tokens; print(tokens.issue('e2e', secret='x' * 40))")
    resp = execute("classify", {"description": DESCRIPTION}, other)
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_token", resp.text


def test_request_size_limit(stack: PlaybookRun) -> None:
    resp = requests.post(f"{URL}/workflows/classify/execute", data=b"x" * (11 * 1024 * 1024),
                         headers={"Content-Type": "application/json"}, verify=str(CA),
                         timeout=30)
    assert resp.status_code == 413


def classify_over_cli(tok: str, description: str) -> dict:
    """`python -m nexus.cli` inside an API container; the token reaches it through a
    netrc file (requests sends it as Basic auth, the app accepts a JWT there)."""
    script = ("umask 077 && printf 'machine 127.0.0.1 login token password %s\\n' \"$T\" "
              "> /tmp/e2e.netrc && NETRC=/tmp/e2e.netrc python -m nexus.cli "
              "--url http://127.0.0.1:8000 run classify --param \"description=$D\"")
    out = docker("exec", "-e", f"T={tok}", "-e", f"D={description}", api_container(),
                 "sh", "-c", script)
    fields = {}
    for line in out.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def mcp_url() -> str:
    """MCP at the API container's app-network address: reachable from the Docker host,
    never published."""
    nets = json.loads(docker("inspect", "-f", "{{json .NetworkSettings.Networks}}",
                             api_container()))
    return f"ws://{nets[f'{PROJECT}_app']['IPAddress']}:3001"


def mcp_call(tool: str, arguments: dict) -> dict:
    """One tools/call over MCP, hand-written WebSocket JSON-RPC."""
    from websockets.sync.client import connect

    with connect(mcp_url(), open_timeout=10, close_timeout=2) as ws:
        ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                            "params": {"protocolVersion": "2024-11-05", "capabilities": {},
                                       "clientInfo": {"name": "e2e", "version": "1"}}}))
        json.loads(ws.recv(timeout=10))
        ws.send(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                            "params": {"name": tool, "arguments": arguments}}))
        while True:
            msg = json.loads(ws.recv(timeout=30))
            if msg.get("id") == 2:
                break
    assert "error" not in msg, msg
    result = msg["result"]
    if "content" in result:  # MCP tool result: text content holding JSON
        text = next(c["text"] for c in result["content"] if c.get("type") == "text")
        result = json.loads(text)
    for key in ("outputs", "result", "results"):
        while isinstance(result, dict) and key in result and isinstance(result[key], dict):
            result = result[key]
    return result


def tool_result(call) -> dict:
    """The workflow result in an SDK CallToolResult (text content holding JSON)."""
    assert not call.isError, call
    result = json.loads(next(c.text for c in call.content if c.type == "text"))
    for key in ("outputs", "result", "results", "handler", "result"):
        if isinstance(result, dict) and isinstance(result.get(key), dict):
            result = result[key]
    return result


def test_one_classification_same_over_api_cli_and_mcp(stack: PlaybookRun) -> None:
    tok = token()
    resp = execute("classify", {"description": DESCRIPTION}, tok)
    assert resp.status_code == 200, resp.text
    api = result_of(resp)
    assert api["code"] and api["title"], api
    assert "drill" in api["title"].lower(), api
    cli = classify_over_cli(tok, DESCRIPTION)
    assert cli.get("code") == api["code"], cli
    mcp = mcp_call("classify", {"description": DESCRIPTION})
    assert mcp["code"] == api["code"], mcp
    # every classification is stored in PostgreSQL (through DataFlow), by the API's
    # background writer (nexus_results_write_behind): moments after the answers
    deadline = time.monotonic() + 15
    while (stored := int(psql("SELECT count(*) FROM classification_results"))) < 3 \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    assert stored >= 3


def test_official_mcp_sdk_client_initializes_lists_and_calls_classify(
        stack: PlaybookRun) -> None:
    """A standard MCP client (issue #11 item 6): the official SDK validates every result
    against the MCP schema, so a non-conformant initialize fails here."""
    resp = execute("classify", {"description": DESCRIPTION}, token())
    assert resp.status_code == 200, resp.text
    api = result_of(resp)
    init, tools, call = mcp_sdk_session(mcp_url(), "classify", {"description": DESCRIPTION})
    assert init.serverInfo.name and init.capabilities.tools is not None, init
    assert {"classify", "recommend", "submit_batch", "job_status"} <= {
        t.name for t in tools.tools}
    sdk = tool_result(call)
    assert (sdk["code"], sdk["title"]) == (api["code"], api["title"]), sdk


def test_recommendations_say_where_they_come_from(stack: PlaybookRun) -> None:
    tok = token()
    code = result_of(execute("classify", {"description": DESCRIPTION}, tok))["code"]
    rec = result_of(execute("recommend", {"code": code}, tok))
    assert rec["related"], rec
    assert "neo4j not deployed" in rec["source"], rec


def test_websocket_streams_progress_of_a_batch_the_workers_complete(stack: PlaybookRun) -> None:
    from websockets.exceptions import ConnectionClosed, InvalidStatus
    from websockets.sync.client import connect

    tok = token()
    items = [f"{word} number {i}" for i in range(60)
             for word in ("stainless steel bolt", "laser printer toner", "office chair")][:150]
    job = result_of(execute("submit_batch", {"items": items}, tok))
    job_id = job["job_id"]
    ctx = ssl.create_default_context(cafile=str(CA))
    events = []
    with connect(f"wss://127.0.0.1:{HTTPS}/ws/jobs/{job_id}", ssl=ctx,
                 additional_headers=auth(tok), open_timeout=10) as ws:
        # a liveness deadline, not a speed limit (bench/ measures throughput): the
        # workers may still be starting on a busy machine
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                event = json.loads(ws.recv(timeout=max(1.0, deadline - time.monotonic())))
            except (ConnectionClosed, TimeoutError):  # closed by the server when done
                break
            events.append(event)
            if event.get("state") in ("completed", "failed"):
                break
    assert events, "no progress event"
    assert events[-1]["state"] == "completed", events[-3:]
    assert events[-1]["done"] == events[-1]["total"] == len(items)
    assert any(0 < e.get("done", 0) < len(items) for e in events) or len(events) >= 2
    status = result_of(execute("job_status", {"job_id": job_id}, tok))
    assert status["state"] == "completed" and status["done"] == len(items)
    # without a token the stream is refused
    with pytest.raises(InvalidStatus) as refused, connect(
            f"wss://127.0.0.1:{HTTPS}/ws/jobs/{job_id}", ssl=ctx, open_timeout=10):
        pass
    assert refused.value.response.status_code in (401, 403)


def test_redeploy_changes_nothing_and_keeps_the_data(stack: PlaybookRun) -> None:
    before = int(psql("SELECT count(*) FROM classification_results"))
    assert before > 0
    again = deploy()
    assert again.rc == 0, again.output[-3000:]
    assert again.recap()["changed"] == 0, [line for line in again.output.splitlines()
                                            if line.startswith("changed:")]
    assert int(psql("SELECT count(*) FROM classification_results")) >= before
    resp = execute("classify", {"description": DESCRIPTION}, token())
    assert resp.status_code == 200


def _data_ip(container: str) -> str:
    nets = json.loads(docker("inspect", "-f", "{{json .NetworkSettings.Networks}}", container))
    return nets[f"{PROJECT}_data"]["IPAddress"]


def test_the_app_reaches_postgresql_through_pgbouncer(stack: PlaybookRun) -> None:
    """Every app connection arrives at PostgreSQL from PgBouncer's address (application_name
    "<app's name> - <app container>:<port>"), and PgBouncer lists the app containers as its
    clients; PostgreSQL itself sees no app container. Session pooling, as the defaults say."""
    env = dict(e.split("=", 1) for e in json.loads(docker("inspect", api_container()))[0]
               ["Config"]["Env"])
    assert (env["POSTGRES_HOST"], env["POSTGRES_PORT"]) == ("pgbouncer", "6432")
    tok = token()
    for i in range(5):  # real traffic: classifications stored in PostgreSQL
        assert execute("classify", {"description": f"{DESCRIPTION} {i}"}, tok).status_code == 200
    pgbouncer_ip = _data_ip(f"{PROJECT}-pgbouncer-1")
    app_ips = {_data_ip(r["Name"]) for r in containers() if r["Service"].startswith("nexus-")}
    rows = [line.split("|") for line in psql(
        "SELECT host(client_addr), application_name FROM pg_stat_activity"
        " WHERE backend_type = 'client backend' AND client_addr IS NOT NULL").splitlines()]
    assert rows and {addr for addr, _ in rows} == {pgbouncer_ip}, rows
    via = {name.rsplit(" - ", 1)[1].split(":")[0] for _, name in rows if " - " in name}
    assert via and via <= app_ips, (via, app_ips)
    password = yaml.safe_load((SECRETS / "secrets.yml").read_text())["postgresql_password"]
    clients = docker("exec", "-e", f"PGPASSWORD={password}", f"{PROJECT}-pgbouncer-1", "psql",
                     "-h", "/tmp", "-p", "6432", "-U", "kailash_user", "-d", "pgbouncer", "-At",
                     "-F", "|", "-c", "SHOW CLIENTS")
    addrs = {line.split("|")[4] for line in clients.splitlines() if line.startswith("C|")}
    api_ips = {_data_ip(r["Name"]) for r in containers() if r["Service"] == "nexus-api"}
    assert api_ips <= addrs and addrs - {"unix"} <= app_ips, (addrs, app_ips)
    config = docker("exec", f"{PROJECT}-pgbouncer-1", "cat", "/etc/pgbouncer/pgbouncer.ini")
    assert "pool_mode = session" in config and "auth_type = scram-sha-256" in config


def test_health_report_covers_the_app_and_the_edge(stack: PlaybookRun) -> None:
    run = run_playbook("playbooks/health.yml", extra={
        **BASE, "kailash_health_report_dir": str(WORK / "reports")})
    assert run.rc == 0, run.output[-3000:]
    report = json.loads((WORK / "reports" / f"health-{PROJECT}.json").read_text())
    status = {s["service"]: s["status"] for s in report["services"]}
    assert status == {"postgresql": "up", "pgbouncer": "up", "redis": "up", "chromadb": "up",
                      "nexus": "up", "edge": "up"}
    pgbouncer = next(s for s in report["services"] if s["service"] == "pgbouncer")
    assert pgbouncer["version"].startswith("PgBouncer 1.18"), pgbouncer


def test_readiness_names_a_datastore_that_is_down(stack: PlaybookRun) -> None:
    """/readyz through NGINX: 503 naming Redis while it is stopped, ready again after."""
    redis = f"{PROJECT}-redis-1"
    docker("stop", redis)
    try:
        resp = requests.get(f"{URL}/readyz", verify=str(CA), timeout=30)
        assert resp.status_code == 503, resp.text
        assert resp.json()["failing"] == ["redis"], resp.text
        assert requests.get(f"{URL}/health", verify=str(CA), timeout=10).status_code == 200
    finally:
        docker("start", redis)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        resp = requests.get(f"{URL}/readyz", verify=str(CA), timeout=30)
        if resp.status_code == 200:
            break
        time.sleep(2)
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize(("extra", "names"), [
    ({"nexus_image": "example.invalid/no-such-app:1.0"}, "nexus_image"),
    ({"nexus_jwt_secret": "too-short-for-a-jwt-secret"}, "nexus_jwt_secret"),
    ({"nexus_api_replicas": 0}, "nexus_api_replicas"),
    # pools larger than PostgreSQL's max_connections: refused in the plan phase
    ({"pgbouncer_default_pool_size": 500}, "pgbouncer_default_pool_size (500)"),
    ({"nexus_dataflow_pool_size": 40}, "nexus_dataflow_pool_size 40"),
    # refused by PgBouncer's own binary (a throwaway PgBouncer on the rendered file)
    ({"pgbouncer_settings": {"max_client_conn": "lots"}}, "pgbouncer_settings.max_client_conn"),
])
def test_bad_input_is_refused_before_any_change(stack: PlaybookRun, extra: dict,
                                                names: str) -> None:
    compose = (STACK_DIR / "compose.yml").read_text()
    run = deploy(**extra)
    assert run.rc != 0
    assert names in run.output
    assert run.recap()["changed"] == 0
    assert (STACK_DIR / "compose.yml").read_text() == compose
    if "nexus_jwt_secret" in extra:
        assert extra["nexus_jwt_secret"] not in run.output  # never shown
    assert yaml.safe_load(compose)["services"]["nexus-api"]["deploy"]["replicas"] == 2
