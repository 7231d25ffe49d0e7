"""kailash_probes (several probes in one module run) against the same real servers as the
single-probe modules: the same results, per-probe failures that do not fail the run, the
secrets masked, and the probes run at once (or one after another with parallel=false)."""

from __future__ import annotations

import pytest

import services
from harness import PG_PASSWORD, REDIS_PASSWORD, run_module

TIMEOUT = 1.0
SLACK = 0.5


def redis_opts(server: services.RedisServer, **extra) -> dict:
    return {"host": server.host, "port": server.port, "user": "probe",
            "password": REDIS_PASSWORD, "timeout": 3, **extra}


def pg_opts(server: services.PostgresServer, **extra) -> dict:
    return {"host": server.host, "port": server.port, "user": server.user,
            "password": PG_PASSWORD, "database": server.database, "timeout": 5, **extra}


def test_same_results_as_the_single_modules(redis, postgres) -> None:
    run = run_module("kailash_probes", {"probes": {
        "cache": {"kind": "redis", "options": redis_opts(redis)},
        "db": {"kind": "postgresql", "options": pg_opts(postgres)},
    }})
    res = run.result
    assert res.get("failed") is not True and res["changed"] is False, res
    assert set(res["results"]) == {"cache", "db"}
    alone = {
        "cache": run_module("kailash_redis_probe", redis_opts(redis)).result,
        "db": run_module("kailash_postgresql_probe", pg_opts(postgres)).result,
    }
    for name, single in alone.items():
        mine = res["results"][name]
        assert mine["status"] == single["status"] == "up", (mine, single)
        # the same keys with the same meaning; latency and live counters differ
        assert set(mine) == set(single) - {"invocation", "action"}, (name, set(mine) ^ set(single))
        assert mine["version"] == single["version"]
    assert res["results"]["cache"]["maxmemory"] == 64 * 1024 * 1024
    assert res["results"]["db"]["max_connections"] == 40
    assert REDIS_PASSWORD not in run.stdout and PG_PASSWORD not in run.stdout


def test_a_probe_that_cannot_run_is_reported_and_the_others_still_run(redis) -> None:
    run = run_module("kailash_probes", {"probes": {
        "cache": {"kind": "redis", "options": redis_opts(redis)},
        "wrong-port": {"kind": "redis", "options": redis_opts(redis, port=70000)},
        "unknown-option": {"kind": "http", "options": {"url": "http://x/", "nope": 1}},
        "bad-password": {"kind": "redis", "options": redis_opts(redis, password="wrong")},
    }})
    res = run.result
    assert res.get("failed") is not True, res
    out = res["results"]
    assert out["cache"]["status"] == "up"
    assert out["wrong-port"] == {"failed": True, "changed": False,
                                 "msg": "port must be 1-65535, got 70000"}
    assert out["unknown-option"]["failed"] is True
    assert "nope" in out["unknown-option"]["msg"], out["unknown-option"]
    # a down service is data, not a failure (as with kailash_redis_probe)
    assert out["bad-password"]["status"] == "down"
    assert out["bad-password"]["error"].startswith("authentication failed"), out
    assert REDIS_PASSWORD not in run.stdout and "wrong" not in str(out["bad-password"])


def test_a_malformed_probes_option_fails_the_module_naming_the_entry() -> None:
    res = run_module("kailash_probes", {"probes": {
        "a": {"kind": "ftp", "options": {}}, "b": "redis"}}).result
    assert res["failed"] is True
    assert "probes.a.kind must be one of chromadb, http, neo4j, postgresql, redis, got 'ftp'" \
        in res["msg"], res
    assert "probes.b must be a mapping with kind and options" in res["msg"], res


@pytest.mark.parametrize(("parallel", "low", "high"), [
    (True, TIMEOUT, TIMEOUT + SLACK),
    (False, 3 * TIMEOUT, 3 * TIMEOUT + SLACK),
])
def test_probes_run_at_once_unless_told_otherwise(silent, parallel, low, high) -> None:
    """Three probes of a server that never answers, each timing out after TIMEOUT: at once
    they take one timeout in all, one after another three (the module's own elapsed_ms)."""
    probes = {
        "r": {"kind": "redis", "options": {"host": "127.0.0.1", "port": silent.port}},
        "h": {"kind": "http", "options": {"url": f"http://127.0.0.1:{silent.port}/"}},
        "c": {"kind": "chromadb", "options": {"url": f"http://127.0.0.1:{silent.port}"}},
    }
    for probe in probes.values():
        probe["options"]["timeout"] = TIMEOUT
    res = run_module("kailash_probes", {"probes": probes, "parallel": parallel}).result
    assert res.get("failed") is not True, res
    for name, out in res["results"].items():
        assert out["status"] == "down" and "timed out" in out["error"], (name, out)
    assert low * 1000 <= res["elapsed_ms"] <= high * 1000, res["elapsed_ms"]


def test_check_mode_probes_too(redis) -> None:
    res = run_module("kailash_probes", {"probes": {
        "cache": {"kind": "redis", "options": redis_opts(redis)}}}, check=True).result
    assert res["results"]["cache"]["status"] == "up" and res["changed"] is False, res
