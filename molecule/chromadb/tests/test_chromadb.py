"""Live behaviour of ChromaDB and its token gate deployed by the dev-stack playbook.

Runs on this machine against the molecule-chromadb Compose project's real
containers (no mocks). HTTP requests come from a throwaway client container on
the project's internal data network, as an application container would send
them; it runs the server image, so the official chromadb Python client is
available there. The token travels in the scripts piped to that container's
stdin, never in command lines or environment variables.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest
import yaml

PROJECT = "molecule-chromadb"
GATE = f"{PROJECT}-chromadb-1"
SERVER = f"{PROJECT}-chromadb-server-1"
CLIENT = f"{PROJECT}-testclient"
NETWORK = f"{PROJECT}_data"
STACK_DIR = f"/tmp/kailash-molecule/{PROJECT}"
SECRETS = "/tmp/kailash-molecule/secrets-chromadb/secrets.yml"
URL = "http://chromadb:8000"
COLLECTION = "molecule-probe"

# Runs in the client container: an HTTP request, printed back as JSON.
REQUEST = """
import json, urllib.error, urllib.request
method, path, headers, body = {args}
req = urllib.request.Request({url!r} + path, method=method, headers=headers,
                             data=None if body is None else json.dumps(body).encode())
req.add_header("Content-Type", "application/json")
try:
    with urllib.request.urlopen(req, timeout=10) as resp:
        out = {{"status": resp.status, "body": resp.read().decode(), "headers": dict(resp.headers)}}
except urllib.error.HTTPError as err:
    out = {{"status": err.code, "body": err.read().decode(), "headers": dict(err.headers)}}
print(json.dumps(out))
"""


def _run(*cmd: str, stdin: str | None = None, check: bool = True) -> str:
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        # stderr only: the token is in stdin, never echoed
        raise AssertionError(f"{cmd[:3]} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return proc.stdout.strip()


def _inspect(template: str, *target: str):
    return json.loads(_run("docker", "inspect", "--format", f"{{{{json {template}}}}}", *target))


def _wait_healthy(*containers: str, timeout: int = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = [_inspect(".State", c) for c in containers]
        if all(s["Running"] and s.get("Health", {}).get("Status") == "healthy" for s in states):
            return
        time.sleep(2)
    raise AssertionError(f"not healthy within {timeout}s: {containers}")


@pytest.fixture(scope="module")
def token() -> str:
    with open(SECRETS) as fh:
        return yaml.safe_load(fh)["chromadb_token"]


@pytest.fixture(scope="module")
def client():
    """A client container on the data network (the server image: python + chromadb)."""
    image = _inspect(".Config.Image", SERVER)
    _run("docker", "rm", "-f", CLIENT, check=False)
    _run("docker", "run", "-d", "--name", CLIENT, "--network", NETWORK, "--entrypoint", "sleep",
         "--user", "1000:1000", "-e", "ANONYMIZED_TELEMETRY=FALSE", image, "infinity")
    try:
        yield CLIENT
    finally:
        _run("docker", "rm", "-f", CLIENT, check=False)


def python(client: str, script: str):
    """Run a Python script in the client container; it prints one JSON document."""
    return json.loads(_run("docker", "exec", "-i", client, "python3", "-", stdin=script))


def http(client: str, method: str, path: str, headers: dict | None = None, body=None) -> dict:
    args = (method, path, headers or {}, body)
    return python(client, REQUEST.format(args=repr(args), url=URL))


def test_both_containers_healthy():
    for container in (GATE, SERVER):
        state = _inspect(".State", container)
        assert state["Running"] is True, container
        assert state["Health"]["Status"] == "healthy", container


def test_heartbeat_without_token(client):
    resp = http(client, "GET", "/api/v2/heartbeat")
    assert resp["status"] == 200, resp
    assert "nanosecond heartbeat" in json.loads(resp["body"])


def test_heartbeat_is_read_only(client):
    assert http(client, "POST", "/api/v2/heartbeat", body={})["status"] == 403


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token-0123456789"},
        {"X-Chroma-Token": "wrong-token-0123456789"},
        {"Authorization": "Bearer "},
    ],
    ids=["no-token", "wrong-bearer", "wrong-x-chroma-token", "empty-bearer"],
)
def test_api_refused_without_the_token(client, headers):
    for path in ("/api/v2/tenants/default_tenant/databases/default_database/collections",
                 "/api/v2/version", "/docs"):
        resp = http(client, "GET", path, headers=headers)
        assert resp["status"] == 401, (path, resp["status"])
        assert resp["headers"].get("WWW-Authenticate", "").startswith("Bearer")


def test_token_in_the_wrong_scheme_refused(client, token):
    assert http(client, "GET", "/api/v2/version",
                headers={"Authorization": f"Basic {token}"})["status"] == 401
    # a prefix or extension of the token is not the token
    assert http(client, "GET", "/api/v2/version",
                headers={"X-Chroma-Token": token[:-1]})["status"] == 401
    assert http(client, "GET", "/api/v2/version",
                headers={"X-Chroma-Token": token + "x"})["status"] == 401


def test_heartbeat_path_tricks_do_not_bypass_the_gate(client):
    # nginx normalises the path before matching; the heartbeat location always
    # sends exactly /api/v2/heartbeat upstream, so dot segments cannot reach the API
    for path in ("/api/v2/heartbeat/../version", "/api/v2/heartbeat/../tenants/default_tenant",
                 "/api/v2/tenants/../heartbeat/../version"):
        assert http(client, "GET", path)["status"] == 401, path


@pytest.mark.parametrize("style", ["bearer", "x-chroma-token"])
def test_rest_api_with_token(client, token, style):
    headers = ({"Authorization": f"Bearer {token}"} if style == "bearer"
               else {"X-Chroma-Token": token})
    resp = http(client, "GET", "/api/v2/version", headers=headers)
    assert resp["status"] == 200, resp["status"]
    assert json.loads(resp["body"]).startswith("1.")  # the API version


def test_collection_with_explicit_embeddings(client, token):
    # the official Python client, token as a bearer header; embeddings are given,
    # so no embedding model is downloaded (there is no network for that here)
    script = f"""
import json, chromadb
client = chromadb.HttpClient(host="chromadb", port=8000,
                             headers={{"Authorization": "Bearer " + {token!r}}})
col = client.get_or_create_collection({COLLECTION!r}, embedding_function=None)
col.upsert(ids=["a", "b", "c"], embeddings=[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
           documents=["alpha", "beta", "gamma"], metadatas=[{{"n": 1}}, {{"n": 2}}, {{"n": 3}}])
res = col.query(query_embeddings=[[0.1, 0.9, 0.0]], n_results=1, include=["documents", "metadatas"])
print(json.dumps({{"count": col.count(), "id": res["ids"][0][0], "doc": res["documents"][0][0],
                  "collections": [c.name for c in client.list_collections()]}}))
"""
    out = python(client, script)
    assert out == {"count": 3, "id": "b", "doc": "beta", "collections": [COLLECTION]}


def test_server_unreachable_except_through_the_gate(client):
    # the server listens on 127.0.0.1 of the gate's network namespace only
    script = """
import json, socket
out = {}
for port in (8000, 8001):
    s = socket.socket()
    s.settimeout(3)
    out[port] = s.connect_ex(("chromadb", port))
    s.close()
print(json.dumps(out))
"""
    out = python(client, script)
    assert out["8000"] == 0
    assert out["8001"] != 0
    assert _inspect(".HostConfig.NetworkMode", SERVER) == f"container:{_inspect('.Id', GATE)}"


def test_data_survives_server_restart(client, token):
    _run("docker", "restart", SERVER)
    _wait_healthy(SERVER, GATE)
    script = f"""
import json, chromadb
client = chromadb.HttpClient(host="chromadb", port=8000, headers={{"X-Chroma-Token": {token!r}}})
col = client.get_collection({COLLECTION!r}, embedding_function=None)
print(json.dumps({{"count": col.count(), "ids": sorted(col.get()["ids"])}}))
"""
    assert python(client, script) == {"count": 3, "ids": ["a", "b", "c"]}


def test_server_rejoins_a_restarted_gate(client, token):
    # A gate restarted outside Compose gets a new network namespace; the server's
    # healthcheck sees the namespace the gate recorded differ from its own and exits, its
    # restart policy rejoins.
    _run("docker", "restart", GATE)
    deadline = time.monotonic() + 120
    status = None
    while time.monotonic() < deadline:
        status = http(client, "GET", "/api/v2/version",
                      headers={"Authorization": f"Bearer {token}"})["status"]
        if status == 200:
            break
        time.sleep(3)
    assert status == 200
    _wait_healthy(SERVER, GATE)


def test_non_root_users():
    assert _run("docker", "exec", SERVER, "id", "-u") == "1000"
    assert _run("docker", "exec", GATE, "id", "-u") == "101"
    assert _inspect(".Config.User", SERVER) == "1000:1000"
    assert _inspect(".Config.User", GATE) == "101:101"
    assert _run("docker", "exec", SERVER, "stat", "-c", "%u", "/data") == "1000"
    # every process, including nginx's master
    for container in (SERVER, GATE):
        rows = _run("docker", "top", container, "-o", "pid,uid").splitlines()[1:]
        users = {row.split()[1] for row in rows}
        assert users and users <= {"1000", "101"}, (container, users)


def test_hardening():
    for container in (GATE, SERVER):
        cfg = _inspect(".HostConfig", container)
        assert cfg["ReadonlyRootfs"] is True, container
        assert cfg["CapDrop"] == ["ALL"], container
        assert not cfg["CapAdd"], container
        assert "no-new-privileges:true" in cfg["SecurityOpt"], container
        assert cfg["LogConfig"] == {"Type": "json-file",
                                    "Config": {"max-file": "3", "max-size": "10m"}}, container
        assert cfg["RestartPolicy"]["Name"] == "unless-stopped", container
        assert not cfg["PortBindings"], container  # kailash_publish_datastores is false
    server = _inspect(".HostConfig", SERVER)
    assert server["Memory"] == 1024**3  # chromadb_memory_limit 1Gi in this scenario
    assert server["MemoryReservation"] == 512 * 1024**2
    assert server["NanoCpus"] == 2 * 10**9  # ADR-002 limit 2000m
    gate = _inspect(".HostConfig", GATE)
    assert gate["Memory"] == 128 * 1024**2
    assert _inspect(".Config.Labels", SERVER)["io.kailash.config-hash"]
    assert _inspect(".Config.Labels", GATE)["io.kailash.config-hash"]


def test_gate_only_on_the_internal_data_network():
    assert list(_inspect(".NetworkSettings.Networks", GATE)) == [NETWORK]
    assert _inspect(".Internal", "--type", "network", NETWORK) is True


def test_telemetry_disabled():
    assert "ANONYMIZED_TELEMETRY=FALSE" in _inspect(".Config.Env", SERVER)


def test_token_not_exposed(token):
    for container in (GATE, SERVER):
        assert token not in _run("docker", "inspect", container), container
        assert token not in _run("docker", "logs", container), container
    env = " ".join(_inspect(".Config.Env", GATE) + _inspect(".Config.Env", SERVER))
    assert token not in env
    with open(f"{STACK_DIR}/compose.yml") as fh:
        assert token not in fh.read()


def test_files_and_modes(host, token):
    secret = host.file(f"{STACK_DIR}/secrets/chromadb_gate_token")
    assert secret.mode == 0o440
    assert (secret.uid, secret.gid) == (101, 101)
    assert token in secret.content_string
    for name in ("config.yaml", "nginx.conf"):
        f = host.file(f"{STACK_DIR}/chromadb/{name}")
        assert f.mode == 0o444, name
        assert token not in f.content_string, name
    config = yaml.safe_load(host.file(f"{STACK_DIR}/chromadb/config.yaml").content_string)
    assert config["listen_address"] == "127.0.0.1"
    assert config["persist_path"] == "/data"
    assert config["allow_reset"] is False
