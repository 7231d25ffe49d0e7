"""The reference Kailash Nexus app image (roles/nexus/files), tested in real containers.

Builds the image when it is absent or its recipe changed (label io.kailash.recipe-hash),
starts throwaway PostgreSQL 15, Redis 7 (password + the app's restricted ACL) and
ChromaDB containers plus the app's api, websocket and 2 worker containers, hardened as
deployed (read-only root, tmpfs /tmp, uid 10001, cap_drop ALL, no-new-privileges,
secrets as files), and drives every channel: HTTP, the Nexus CLI, MCP and the job
progress WebSocket.  WebSocket clients run inside containers of the app image (the
host venv has no WebSocket library).

    /work/main/.venv/bin/pytest tests/app -v
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
import requests

docker = pytest.importorskip("docker")

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
CONTEXT = ROOT / "roles" / "nexus" / "files"
IMAGE = os.environ.get("KAILASH_APP_IMAGE", "kailash/nexus-app:1.0.0-bookworm")
BASE_IMAGE = os.environ.get("KAILASH_BASE_IMAGE", "kailash/base:bookworm")
PREFIX = "app-dev-t"
NETWORK = f"{PREFIX}-net"
SUBNET = os.environ.get("KAILASH_APP_TEST_SUBNET", "10.220.0.0/16")
UID = 10001
# Datastore images of the sibling roles (built from their Dockerfiles when absent).
STORES = {
    "postgresql": ("kailash/postgresql:15-bookworm", ROOT / "roles/postgresql/files"),
    "redis": ("kailash/redis:7.0-bookworm", ROOT / "roles/redis/files"),
    "chromadb": ("kailash/chromadb:1.5.9-bookworm", ROOT / "roles/chromadb/files"),
}
REDIS_ACL = ["~*", "&*", "+@all", "-@dangerous", "+info", "+client|setname", "+client|getname"]


# --------------------------------------------------------------------------- helpers
def recipe_hash() -> str:
    h = hashlib.sha256()
    for path in sorted(CONTEXT.rglob("*")):
        rel = path.relative_to(CONTEXT)
        if not path.is_file() or "__pycache__" in rel.parts or "migrations" in rel.parts:
            continue
        h.update(str(rel).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def docker_build(tag: str, context: Path, labels: dict[str, str] | None = None) -> float:
    cmd = ["docker", "build", "-q", "-t", tag, "--build-arg", f"BASE_IMAGE={BASE_IMAGE}"]
    for key, value in (labels or {}).items():
        cmd += ["--label", f"{key}={value}"]
    t0 = time.monotonic()
    proc = subprocess.run(
        [*cmd, str(context)], capture_output=True, text=True, timeout=1200,
        env={**os.environ, "DOCKER_BUILDKIT": "0"}, check=False,
    )
    assert proc.returncode == 0, f"docker build {tag} failed:\n{proc.stdout}\n{proc.stderr}"
    return time.monotonic() - t0


def ensure_image(client, tag: str, context: Path, labels: dict[str, str] | None = None):
    try:
        image = client.images.get(tag)
    except docker.errors.ImageNotFound:
        image = None
    wanted = labels or {}
    if image is None or any(image.labels.get(k) != v for k, v in wanted.items()):
        seconds = docker_build(tag, context, labels)
        print(f"built {tag} in {seconds:.0f} s")


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
            if result:
                return result
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} ({last!r})")


def host_port(container, port: str) -> int:
    container.reload()
    return int(container.attrs["NetworkSettings"]["Ports"][port][0]["HostPort"])


class Stack:
    """Handles to the running test containers."""

    def __init__(self, client, secret_dir: Path):
        self.client = client
        self.secret_dir = secret_dir
        self.containers: dict[str, object] = {}
        self.jwt_secret = secrets.token_urlsafe(48)
        self.pg_password = secrets.token_urlsafe(18)
        self.redis_password = secrets.token_urlsafe(18)
        self.api_url = ""
        self.ws_url = ""

    # secrets as files, readable by the app user only (as the role deploys them)
    def write_secrets(self) -> None:
        for name, value in {
            "nexus_jwt_secret": self.jwt_secret,
            "postgres_password": self.pg_password,
            "redis_password": self.redis_password,
            "chromadb_token": secrets.token_urlsafe(24),
        }.items():
            path = self.secret_dir / name
            path.write_text(value + "\n", encoding="utf-8")
            os.chown(path, UID, UID)
            path.chmod(0o400)

    def app_env(self) -> dict[str, str]:
        return {
            "NEXUS_ENV": "production",
            "NEXUS_JWT_SECRET_FILE": "/run/secrets/nexus_jwt_secret",
            "LOG_LEVEL": "WARNING",
            "NEXUS_API_PORT": "8000",
            "NEXUS_MCP_PORT": "3001",
            "NEXUS_WEBSOCKET_PORT": "8001",
            "POSTGRES_HOST": f"{PREFIX}-postgresql",
            "POSTGRES_PORT": "5432",
            "POSTGRES_DB": "kailash",
            "POSTGRES_USER": "kailash",
            "POSTGRES_PASSWORD_FILE": "/run/secrets/postgres_password",
            "DATAFLOW_POOL_SIZE": "3",
            "REDIS_HOST": f"{PREFIX}-redis",
            "REDIS_PORT": "6379",
            "REDIS_PASSWORD_FILE": "/run/secrets/redis_password",
            "NEXUS_REDIS_CACHE_DB": "0",
            "NEXUS_REDIS_BROKER_DB": "1",
            "NEXUS_CACHE_TTL": "600",
            "CHROMADB_URL": f"http://{PREFIX}-chromadb:8000",
            "CHROMADB_TOKEN_FILE": "/run/secrets/chromadb_token",
            "NEO4J_URL": "",
            "NEXUS_WORKER_CONCURRENCY": "2",
        }

    def run(self, name: str, image: str, **kwargs):
        full = f"{PREFIX}-{name}"
        container = self.client.containers.run(
            image, name=full, hostname=full, detach=True, network=NETWORK, **kwargs
        )
        self.containers[name] = container
        return container

    def run_app(self, name: str, command: list[str], ports: dict | None = None):
        return self.run(
            name, IMAGE, command=command, environment=self.app_env(), ports=ports or {},
            user=f"{UID}:{UID}", read_only=True, tmpfs={"/tmp": "size=64m,mode=1777"},
            cap_drop=["ALL"], security_opt=["no-new-privileges:true"],
            volumes={str(self.secret_dir): {"bind": "/run/secrets", "mode": "ro"}},
            mem_limit="1g",
        )

    def client_script(self, script: str, env: dict | None = None, timeout: float = 240) -> str:
        """Run a Python snippet in a throwaway container of the app image; its stdout."""
        container = self.client.containers.run(
            IMAGE, entrypoint=["python", "-c", textwrap.dedent(script)],
            environment=env or {}, network=NETWORK, detach=True, user=f"{UID}:{UID}",
            read_only=True, tmpfs={"/tmp": ""}, cap_drop=["ALL"],
            security_opt=["no-new-privileges:true"],
            name=f"{PREFIX}-client-{secrets.token_hex(3)}",
        )
        try:
            status = container.wait(timeout=timeout)
            out = container.logs(stdout=True, stderr=False).decode()
            err = container.logs(stdout=False, stderr=True).decode()
            assert status["StatusCode"] == 0, f"client failed ({status}):\n{out}\n{err}"
            return out
        finally:
            container.remove(force=True)

    def exec(self, name: str, cmd: list[str], **kwargs):
        return self.containers[name].exec_run(cmd, **kwargs)

    def token(self, sub: str = "pytest") -> str:
        result = self.exec("api", ["kailash-app", "token", "--sub", sub, "--ttl", "900"])
        assert result.exit_code == 0, result.output
        return result.output.decode().strip()

    def psql(self, sql: str) -> str:
        result = self.exec(
            "postgresql", ["psql", "-U", "kailash", "-d", "kailash", "-tAc", sql],
            environment={"PGPASSWORD": self.pg_password},
        )
        assert result.exit_code == 0, result.output
        return result.output.decode().strip()

    def execute(self, workflow: str, inputs: dict, token: str | None) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.post(
            f"{self.api_url}/workflows/{workflow}/execute", json={"inputs": inputs},
            headers=headers, timeout=30,
        )


def cleanup(client) -> None:
    for container in client.containers.list(all=True, filters={"name": f"{PREFIX}-"}):
        container.remove(force=True)
    for network in client.networks.list(names=[NETWORK]):
        network.remove()


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def stack(docker_available):
    client = docker.from_env(timeout=300)  # generous: the shared host is often loaded
    cleanup(client)
    ensure_image(client, IMAGE, CONTEXT, {"io.kailash.recipe-hash": recipe_hash()})
    for tag, context in STORES.values():
        ensure_image(client, tag, context)

    secret_dir = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-secrets-"))
    secret_dir.chmod(0o755)
    st = Stack(client, secret_dir)
    st.write_secrets()
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=SUBNET)])
    client.networks.create(NETWORK, driver="bridge", ipam=ipam)
    try:
        st.run(
            "postgresql", STORES["postgresql"][0],
            command=["postgres", "-c", "listen_addresses=*", "-c", "max_connections=200"],
            environment={"POSTGRES_USER": "kailash", "POSTGRES_DB": "kailash",
                         "POSTGRES_PASSWORD": st.pg_password},
        )
        st.run(
            "redis", STORES["redis"][0],
            command=["redis-server", "--save", "", "--appendonly", "no",
                     "--user", "default", "on", f">{st.redis_password}", *REDIS_ACL],
        )
        st.run("chromadb", STORES["chromadb"][0])

        def pg_ready():
            return st.exec("postgresql", ["pg_isready", "-q", "-h", "127.0.0.1"]).exit_code == 0

        wait_for(pg_ready, 60, "PostgreSQL")

        st.run_app("api", ["api"], ports={"8000/tcp": ("127.0.0.1", None)})
        st.run_app("websocket", ["websocket"], ports={"8001/tcp": ("127.0.0.1", None)})
        st.run_app("worker-1", ["worker"])
        st.run_app("worker-2", ["worker"])
        st.api_url = f"http://127.0.0.1:{host_port(st.containers['api'], '8000/tcp')}"
        st.ws_url = f"http://127.0.0.1:{host_port(st.containers['websocket'], '8001/tcp')}"

        def up(url):
            return requests.get(url, timeout=2).status_code == 200

        try:
            wait_for(lambda: up(f"{st.api_url}/health"), 120, "api /health")
            wait_for(lambda: up(f"{st.ws_url}/health"), 60, "websocket /health")
        except AssertionError:
            for name in ("api", "websocket", "worker-1"):
                print(f"--- {name}\n" + st.containers[name].logs(tail=60).decode())
            raise
        yield st
    finally:
        if os.environ.get("KAILASH_APP_TEST_KEEP") != "1":
            cleanup(client)
        shutil.rmtree(secret_dir, ignore_errors=True)


# --------------------------------------------------------------------------- tests
def test_containers_run_hardened(stack):
    api = stack.containers["api"]
    api.reload()
    host_config = api.attrs["HostConfig"]
    assert host_config["ReadonlyRootfs"] is True
    assert host_config["CapDrop"] == ["ALL"]
    assert stack.exec("api", ["id", "-u"]).output.decode().strip() == str(UID)
    assert stack.exec("api", ["touch", "/opt/app/x"]).exit_code != 0
    # DataFlow's migrations/ went to the tmpfs working directory
    assert stack.exec("api", ["test", "-d", "/tmp/app"]).exit_code == 0


def test_health_and_healthchecks(stack):
    assert requests.get(f"{stack.api_url}/health", timeout=5).status_code == 200
    assert requests.get(f"{stack.ws_url}/health", timeout=5).status_code == 200
    # timed inside the container (docker exec itself is slow on a loaded host)
    timed = stack.exec("api", [
        "python", "-c",
        "import subprocess, sys, time; t = time.monotonic();"
        " rc = subprocess.call(['kailash-app', 'healthcheck', 'api'],"
        " stdout=subprocess.DEVNULL); print(rc, time.monotonic() - t)",
    ])
    rc, seconds = timed.output.decode().split()
    print(f"kailash-app healthcheck api: rc={rc} in {float(seconds) * 1000:.0f} ms")
    assert rc == "0"
    assert float(seconds) < 2.0, "the healthcheck must be fast (no nexus import)"
    assert stack.exec("websocket", ["kailash-app", "healthcheck", "websocket"]).exit_code == 0
    assert stack.exec("api", ["kailash-app", "healthcheck", "http://127.0.0.1:9/x"]).exit_code
    wait_for(
        lambda: stack.exec("worker-1", ["kailash-app", "healthcheck", "worker"]).exit_code == 0,
        30, "worker heartbeat",
    )


def test_readyz_all_stores(stack):
    resp = requests.get(f"{stack.api_url}/readyz", timeout=10)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["failing"] == []
    assert set(body["checks"]) == {"postgresql", "redis", "chromadb"}  # neo4j not configured


def test_classify_requires_token(stack):
    resp = stack.execute("classify", {"description": "cordless drill 18V"}, token=None)
    assert resp.status_code == 401
    resp = stack.execute("classify", {"description": "cordless drill 18V"}, token="abc.def.ghi")
    assert resp.status_code == 401


@pytest.mark.parametrize(
    ("description", "code"),
    [
        ("cordless drill 18V", "20101501"),
        ("nitrile gloves size L", "35101602"),
        ("Cat6 patch cable 2m", "23101601"),
        ("ergonomic office chair", "38111501"),
    ],
)
def test_classify_http(stack, description, code):
    token = stack.token()
    t0 = time.monotonic()
    resp = stack.execute("classify", {"description": description}, token)
    elapsed = time.monotonic() - t0
    assert resp.status_code == 200, resp.text
    result = resp.json()["outputs"]["handler"]["result"]
    assert result["code"] == code, result
    assert set(result) == {"code", "title", "score", "cached"}
    assert 0 < result["score"] <= 1
    print(f"classify {description!r}: {result} in {elapsed * 1000:.0f} ms")
    again = stack.execute("classify", {"description": description.upper() + "  "}, token)
    assert again.json()["outputs"]["handler"]["result"]["cached"] is True
    # stored by the API's background writer (NEXUS_RESULTS_WRITE_BEHIND): moments later
    deadline = time.monotonic() + 15
    while True:
        stored = stack.psql(
            "SELECT count(*) FROM classification_results WHERE description = "
            f"'{description}' AND code = '{code}'"
        )
        if int(stored) >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert int(stored) >= 1


def test_cli_same_as_http(stack):
    token = stack.token("cli")
    http = stack.execute("classify", {"description": "cordless drill 18V"}, token)
    expected = http.json()["outputs"]["handler"]["result"]
    url = f"http://{PREFIX}-api:8000"
    # 1) the stock Nexus CLI, credentials from a netrc file (Basic -> Bearer in the app)
    netrc = f"machine {PREFIX}-api login token password {token}\n"
    stock = stack.client_script(
        f"""
        import os, runpy, sys
        open("/tmp/netrc", "w").write({netrc!r})
        os.environ["NETRC"] = "/tmp/netrc"
        sys.argv = ["nexus.cli", "--url", {url!r}, "run", "classify",
                    "--param", "description=cordless drill 18V"]
        runpy.run_module("nexus.cli", run_name="__main__")
        """
    )
    # 2) kailash-app cli: the same CLI, Bearer token from $NEXUS_TOKEN
    wrapped = stack.exec(
        "api",
        ["kailash-app", "cli", "--url", "http://127.0.0.1:8000", "run", "classify",
         "--param", "description=cordless drill 18V"],
        environment={"NEXUS_TOKEN": token},
    )
    assert wrapped.exit_code == 0, wrapped.output
    for out in (stock, wrapped.output.decode()):
        lines = dict(line.split(": ", 1) for line in out.strip().splitlines())
        assert lines["code"] == expected["code"]
        assert lines["title"] == expected["title"]
    # without credentials the CLI is refused
    denied = stack.exec(
        "api", ["python", "-m", "nexus.cli", "--url", "http://127.0.0.1:8000", "run",
                "classify", "--param", "description=drill"],
    )
    assert denied.exit_code != 0 and b"401" in denied.output


def test_mcp_same_as_http(stack):
    token = stack.token("mcp")
    http = stack.execute("classify", {"description": "cordless drill 18V"}, token)
    expected = http.json()["outputs"]["handler"]["result"]
    out = stack.client_script(
        f"""
        import asyncio, json, websockets
        async def main():
            async with websockets.connect("ws://{PREFIX}-api:3001") as ws:
                calls = [
                    ("initialize", {{"protocolVersion": "2024-11-05", "capabilities": {{}},
                                    "clientInfo": {{"name": "pytest", "version": "1"}}}}),
                    ("tools/list", {{}}),
                    ("tools/call", {{"name": "classify",
                                    "arguments": {{"description": "cordless drill 18V"}}}}),
                ]
                replies = []
                for i, (method, params) in enumerate(calls, 1):
                    await ws.send(json.dumps({{"jsonrpc": "2.0", "id": i, "method": method,
                                              "params": params}}))
                    replies.append(json.loads(await ws.recv()))
                print(json.dumps(replies))
        asyncio.run(main())
        """
    )
    init, tools, call = json.loads(out)
    assert init["result"]["serverInfo"]["name"]
    names = {t["name"] for t in tools["result"]["tools"]}
    assert {"classify", "recommend", "submit_batch", "job_status"} <= names
    result = json.loads(call["result"]["content"][0]["text"])
    # the MCP server unwraps the handler's {"result": {...}}; accept the wrapped forms too
    result = result.get("results", {}).get("handler", result)
    result = result.get("result", result)
    assert (result["code"], result["title"]) == (expected["code"], expected["title"])


def test_recommend_says_source(stack):
    resp = stack.execute("recommend", {"code": "20101501"}, stack.token())
    assert resp.status_code == 200, resp.text
    result = resp.json()["outputs"]["handler"]["result"]
    assert result["source"] == "taxonomy (neo4j not deployed)"
    assert result["found"] is True
    relations = {r["relation"] for r in result["related"]}
    assert {"parent", "sibling"} <= relations
    assert any(r["code"] == "20101500" for r in result["related"])  # its class
    unknown = stack.execute("recommend", {"code": "99999999"}, stack.token())
    assert unknown.json()["outputs"]["handler"]["result"]["found"] is False


def test_batch_progress_over_websocket(stack):
    token = stack.token("batch")
    words = ["cordless drill 18V", "nitrile gloves", "Cat6 patch cable", "office chair",
             "LED bulb E27", "M8 hex nut", "engine oil 5W30", "fire extinguisher 6kg"]
    items = [f"{words[i % len(words)]} batch item {i}" for i in range(200)]
    # submit and stream from one client container, so the stream starts right after
    out = stack.client_script(
        f"""
        import asyncio, json, urllib.request, websockets
        token = {token!r}
        req = urllib.request.Request(
            "http://{PREFIX}-api:8000/workflows/submit_batch/execute",
            data=json.dumps({{"inputs": {{"items": {items!r}}}}}).encode(),
            headers={{"Authorization": "Bearer " + token, "Content-Type": "application/json"}})
        job = json.load(urllib.request.urlopen(req, timeout=30))
        job_id = job["outputs"]["handler"]["result"]["job_id"]
        async def main():
            events = []
            url = "ws://{PREFIX}-websocket:8001/ws/jobs/" + job_id
            async with websockets.connect(
                    url, additional_headers={{"Authorization": "Bearer " + token}}) as ws:
                async for message in ws:
                    events.append(json.loads(message))
            rejected = None
            try:
                async with websockets.connect(url) as ws:
                    await ws.recv()
            except websockets.exceptions.InvalidStatus as exc:
                rejected = exc.response.status_code
            print(json.dumps({{"job_id": job_id, "events": events, "rejected": rejected}}))
        asyncio.run(main())
        """
    )
    data = json.loads(out)
    job_id, events = data["job_id"], data["events"]
    assert data["rejected"] == 403, "a stream without a token must be refused"
    assert events, "no progress events"
    assert all(e["job_id"] == job_id and e["total"] == 200 for e in events)
    dones = [e["done"] for e in events]
    assert dones == sorted(dones)
    assert events[-1]["state"] == "completed" and events[-1]["done"] == 200
    print(f"{len(events)} progress events: {dones}")
    status = stack.execute("job_status", {"job_id": job_id}, token).json()
    result = status["outputs"]["handler"]["result"]
    assert (result["state"], result["done"], result["total"]) == ("completed", 200, 200)
    assert len(result["results"]) == 200
    stored = stack.psql(f"SELECT count(*) FROM classification_results WHERE job_id = '{job_id}'")
    assert int(stored) == 200
    by_desc = {r["description"]: r["code"] for r in result["results"]}
    assert by_desc["cordless drill 18V batch item 0"] == "20101501"


def test_worker_throughput(stack):
    """>= 1000 items/minute with 2 worker replicas (measured end to end)."""
    token = stack.token("load")
    n = 2000
    items = [f"product {i} cordless drill {i % 37} V nitrile glove size {i % 7}"
             for i in range(n)]
    t0 = time.monotonic()
    resp = stack.execute("submit_batch", {"items": items}, token)
    job_id = resp.json()["outputs"]["handler"]["result"]["job_id"]

    def completed():
        r = stack.execute("job_status", {"job_id": job_id}, token).json()
        return r["outputs"]["handler"]["result"]["state"] == "completed"

    wait_for(completed, 180, "the load job", interval=0.25)
    per_minute = n / (time.monotonic() - t0) * 60
    print(f"worker throughput: {per_minute:.0f} items/minute ({n} items)")
    assert per_minute >= 1000


def test_readyz_names_redis_when_stopped(stack):
    """Last test: stops Redis."""
    stack.containers["redis"].stop(timeout=2)

    def unavailable():
        resp = requests.get(f"{stack.api_url}/readyz", timeout=15)
        return resp.json() if resp.status_code == 503 else None

    body = wait_for(unavailable, 30, "readyz 503")
    assert body["failing"] == ["redis"], body
    assert body["checks"]["postgresql"]["ok"] and body["checks"]["chromadb"]["ok"]
    # liveness stays up: no datastore calls
    assert requests.get(f"{stack.api_url}/health", timeout=5).status_code == 200
