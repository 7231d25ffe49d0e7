"""kailash_chromadb_probe against a real ChromaDB 1.5.9 server (``chroma run`` from a
venv under .cache/health-chroma, created on first use), plus a token check.

ChromaDB 1.x's ``chroma run`` server has no token authentication of its own (it sits
behind the stack's proxy), so the token case runs against a protocol stand-in: the
test web server answers /chroma/api/v2/{heartbeat,version} like ChromaDB, and 401
without the right bearer token.
"""

from __future__ import annotations

import services
from harness import run_module

MODULE = "kailash_chromadb_probe"


def test_healthy_reports_version_and_heartbeat(chroma: services.ChromaServer) -> None:
    res = run_module(MODULE, {"url": chroma.url, "timeout": 3}).result
    assert res["status"] == "up", res
    assert res["changed"] is False and res["error"] is None
    assert res["version"] and res["version"][0].isdigit(), res
    assert res["heartbeat_ns"] > 10**18 and res["status_code"] == 200
    assert 0 < res["latency_ms"] < 3000


def test_check_mode_probes_too(chroma: services.ChromaServer) -> None:
    res = run_module(MODULE, {"url": chroma.url}, check=True).result
    assert res["status"] == "up" and res["changed"] is False, res


def test_stopped_server_is_down(chroma: services.ChromaServer) -> None:
    chroma.stop()
    try:
        res = run_module(MODULE, {"url": chroma.url, "timeout": 2}).result
    finally:
        chroma.start()
    assert res["status"] == "down", res
    assert res["error"] == "connection refused"


def test_token_accepted_and_refused(web: dict[str, services.WebServer]) -> None:
    url = web["http"].url("/chroma")
    run = run_module(MODULE, {"url": url, "token": services.TOKEN})
    assert run.result["status"] == "up" and run.result["version"] == "1.0.0", run.result
    assert services.TOKEN not in run.stdout
    res = run_module(MODULE, {"url": url, "token": "wrong"}).result
    assert res["status"] == "down" and res["status_code"] == 401, res
    assert res["error"].startswith("authentication failed: heartbeat answered HTTP 401"), res
