"""kailash_redis_probe against real Redis servers (kailash/redis image, or a local
redis-server): ACL auth, check mode, stopped server, loading, replicas."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

import services
from harness import REDIS_DEFAULT_PASSWORD, REDIS_PASSWORD, run_module

MODULE = "kailash_redis_probe"


def args(server: services.RedisServer, **extra) -> dict:
    return {"host": server.host, "port": server.port, "user": "probe",
            "password": REDIS_PASSWORD, "timeout": 3, **extra}


def test_healthy_acl_user(redis: services.RedisServer) -> None:
    run = run_module(MODULE, args(redis))
    res = run.result
    assert res["status"] == "up", res
    assert res["changed"] is False and res.get("failed") is not True
    assert res["error"] is None
    assert res["version"] and res["version"][0].isdigit()
    assert 0 < res["latency_ms"] < 3000
    assert res["role"] == "master" and res["loading"] is False
    assert res["maxmemory"] == 64 * 1024 * 1024
    assert res["memory_used"] > 0 and res["memory_ratio"] == round(
        res["memory_used"] / res["maxmemory"], 4)
    assert res["attempts"] == 1
    assert REDIS_PASSWORD not in run.stdout  # no_log


def test_check_mode_probes_too(redis: services.RedisServer) -> None:
    res = run_module(MODULE, args(redis), check=True).result
    assert res["status"] == "up" and res["changed"] is False, res


def test_default_user_password(redis: services.RedisServer) -> None:
    res = run_module(MODULE, {"port": redis.port, "host": redis.host,
                              "password": REDIS_DEFAULT_PASSWORD}).result
    assert res["status"] == "up", res


def test_wrong_password_is_down_with_auth_error(redis: services.RedisServer) -> None:
    res = run_module(MODULE, args(redis, password="not-the-password")).result
    assert res["status"] == "down", res
    assert res["error"].startswith("authentication failed: WRONGPASS"), res
    assert res.get("failed") is not True and res["version"] is None


def test_no_credentials_is_down_noauth(redis: services.RedisServer) -> None:
    res = run_module(MODULE, {"host": redis.host, "port": redis.port}).result
    assert res["status"] == "down"
    assert "NOAUTH" in res["error"], res


def test_stopped_server_is_down_with_connection_error(redis: services.RedisServer) -> None:
    redis.stop()
    try:
        res = run_module(MODULE, args(redis, retries=1, backoff=0.1)).result
    finally:
        redis.start()
    assert res["status"] == "down", res
    assert res["attempts"] == 2
    # refused (local server), or reset/closed by Docker's port proxy (container stopped)
    assert any(word in res["error"] for word in ("refused", "reset", "closed")), res
    assert res["memory_used"] is None and res["role"] is None


@pytest.fixture
def loading_redis(redis_backend: str) -> Iterator[services.RedisServer]:
    """A real Redis restarted on an RDB of 4000 keys that it loads 2 ms per key (the
    hidden ``key-load-delay`` setting Redis's own test suite uses), answering clients
    while it loads (``loading-process-events-interval-bytes``): about 8 s of LOADING."""
    with services.workdir("redis-loading") as tmp:
        server = services.RedisServer(redis_backend, tmp, [
            "--requirepass", REDIS_DEFAULT_PASSWORD, "--key-load-delay", "2000",
            "--loading-process-events-interval-bytes", "1024"])
        try:
            commands = [["AUTH", REDIS_DEFAULT_PASSWORD]]
            for chunk in range(4):
                mset = ["MSET"]
                for i in range(1000):
                    mset += [f"k{chunk}:{i}", "v" * 50]
                commands.append(mset)
            commands.append(["SAVE"])
            assert services.resp_commands(server.host, server.port, *commands) == [b"+OK"] * 6
            server.restart()
            yield server
        finally:
            server.close()


def test_loading_is_degraded_then_up(loading_redis: services.RedisServer) -> None:
    probe = {"host": loading_redis.host, "port": loading_redis.port,
             "password": REDIS_DEFAULT_PASSWORD, "timeout": 3}
    res = run_module(MODULE, probe).result
    assert res["status"] == "degraded", res
    assert res["loading"] is True
    assert "LOADING" in res["error"] or "loading" in res["error"], res
    assert res["version"], res  # INFO answers while loading
    deadline = time.monotonic() + 60
    while res["status"] == "degraded" and time.monotonic() < deadline:
        time.sleep(1)
        res = run_module(MODULE, probe).result
    assert res["status"] == "up" and res["loading"] is False, res


@pytest.fixture
def replica(redis: services.RedisServer, redis_backend: str
            ) -> Iterator[tuple[services.RedisServer, services.RedisServer]]:
    """Two replicas: one of the session's Redis (link up), one of a closed port (link down)."""
    host, port = redis.peer()
    with services.workdir("redis-replica") as tmp:
        linked = services.RedisServer(redis_backend, tmp / "a", [
            "--replicaof", host, str(port), "--masteruser", "probe",
            "--masterauth", REDIS_PASSWORD])
        broken = services.RedisServer(redis_backend, tmp / "b", [
            "--replicaof", "127.0.0.1", "1"])
        try:
            yield linked, broken
        finally:
            linked.close()
            broken.close()


def test_replica_states(replica: tuple[services.RedisServer, services.RedisServer]) -> None:
    linked, broken = replica
    res = run_module(MODULE, {"host": broken.host, "port": broken.port}).result
    assert res["status"] == "degraded", res
    assert res["role"] == "slave" and res["master_link_status"] == "down"
    assert "link to master 127.0.0.1:1 is down" in res["error"]

    probe = {"host": linked.host, "port": linked.port}
    deadline = time.monotonic() + 30
    res = run_module(MODULE, probe).result
    while res["status"] != "up" and time.monotonic() < deadline:
        time.sleep(0.5)
        res = run_module(MODULE, probe).result
    assert res["status"] == "up", res
    assert res["role"] == "slave" and res["master_link_status"] == "up"
