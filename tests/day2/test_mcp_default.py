"""Issue #11 item 6: standard MCP clients connect to the default stack (project
``kailash``, deployed as ``make deploy`` does).

The client is the official MCP Python SDK (``mcp`` 1.30, as in the app image):
``mcp.client.websocket.websocket_client`` + ``ClientSession``, which validates every
result against the MCP schema. From the Docker host it reaches each API replica at its
``app``-network address (MCP is never published); the copy-paste example of docs/mcp.md
(``docker compose exec`` into an API container) is run exactly as written.
"""

from __future__ import annotations

import json
import re
import subprocess

import requests
import yaml

from day2lib import PROJECT, SECRETS_DIR, containers, docker
from kailash_testlib import ROOT, mcp_sdk_session

DESCRIPTION = "cordless drill 18V with two batteries"
TOOLS = {"classify", "recommend", "submit_batch", "job_status"}
DOC = ROOT / "docs" / "mcp.md"


def api_containers() -> list[str]:
    return sorted(r["Name"] for r in containers() if r["Service"] == "nexus-api")


def mcp_url(container: str) -> str:
    nets = json.loads(docker("inspect", "-f", "{{json .NetworkSettings.Networks}}", container))
    return f"ws://{nets[f'{PROJECT}_app']['IPAddress']}:3001"


def unwrap(result: dict) -> dict:
    for key in ("outputs", "result", "results", "handler", "result"):
        if isinstance(result, dict) and isinstance(result.get(key), dict):
            result = result[key]
    return result


def classify_over_https(description: str) -> dict:
    """The same workflow over HTTPS through the edge, as a user calls it."""
    port = yaml.safe_load((ROOT / "inventories/local/group_vars/all.yml").read_text())[
        "edge_https_port"]
    tok = docker("exec", f"{PROJECT}-nexus-api-1", "kailash-app", "token", "--sub", "day2-mcp")
    resp = requests.post(f"https://127.0.0.1:{port}/workflows/classify/execute",
                         json={"inputs": {"description": description}},
                         headers={"Authorization": f"Bearer {tok}"},
                         verify=str(SECRETS_DIR / "edge" / "ca.crt"), timeout=30)
    assert resp.status_code == 200, resp.text
    return unwrap(resp.json())


def test_official_mcp_sdk_client_on_every_api_replica(default_stack) -> None:
    api = classify_over_https(DESCRIPTION)
    assert api["code"] and "drill" in api["title"].lower(), api
    replicas = api_containers()
    assert len(replicas) >= 2, replicas
    for container in replicas:
        init, tools, call = mcp_sdk_session(mcp_url(container), "classify",
                                        {"description": DESCRIPTION})
        assert init.serverInfo.name and init.capabilities.tools is not None, init
        assert {t.name for t in tools.tools} >= TOOLS, (container, tools)
        assert not call.isError, (container, call)
        sdk = unwrap(json.loads(next(c.text for c in call.content if c.type == "text")))
        assert (sdk["code"], sdk["title"]) == (api["code"], api["title"]), (container, sdk)


def documented_example() -> str:
    text = DOC.read_text()
    match = re.search(r"<!-- tests/day2/test_mcp_default\.py runs the next block as it is -->"
                      r"\s*```sh\n(.*?)\n```", text, re.S)
    assert match, f"{DOC}: the tested example block is gone"
    return match.group(1)


def test_mcp_is_not_published_and_the_documented_example_works(default_stack) -> None:
    published = {(r["Service"], p.get("TargetPort")) for r in containers()
                 for p in r.get("Publishers") or [] if p.get("PublishedPort")}
    assert not {s for s, _ in published if s.startswith("nexus")}, published
    assert not {t for _, t in published if t == 3001}, published
    proc = subprocess.run(["bash", "-c", documented_example()], capture_output=True,
                          text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("server: "), proc.stdout
    assert set(lines[1].removeprefix("tools: ").split(", ")) >= TOOLS, proc.stdout
    result = unwrap(json.loads(lines[-1]))
    assert result["code"] and result["title"], result
