"""kailash_postgresql_probe against a real PostgreSQL 15 (kailash/postgresql image, or
Debian's binaries in a temporary cluster)."""

from __future__ import annotations

import shutil

import pytest

import services
from harness import PG_PASSWORD, run_module

MODULE = "kailash_postgresql_probe"


def args(server: services.PostgresServer, **extra) -> dict:
    return {"host": server.host, "port": server.port, "user": server.user,
            "password": PG_PASSWORD, "database": server.database, "timeout": 5, **extra}


def test_healthy_reports_version_and_connections(postgres: services.PostgresServer) -> None:
    held = [postgres.connect() for _ in range(3)]
    try:
        run = run_module(MODULE, args(postgres))
    finally:
        for conn in held:
            conn.close()
    res = run.result
    assert res["status"] == "up", res
    assert res["changed"] is False and res["error"] is None
    assert res["version"].startswith("15."), res
    assert res["server_version"].startswith(res["version"])
    assert res["max_connections"] == 40
    assert res["connections"] >= 4  # the three held here and the probe itself
    assert res["connections_ratio"] == round(res["connections"] / 40, 4)
    assert res["in_recovery"] is False
    assert 0 < res["latency_ms"] < 5000
    assert PG_PASSWORD not in run.stdout


def test_check_mode_probes_too(postgres: services.PostgresServer) -> None:
    res = run_module(MODULE, args(postgres), check=True).result
    assert res["status"] == "up" and res["changed"] is False, res


def test_wrong_password_is_down_with_auth_error(postgres: services.PostgresServer) -> None:
    res = run_module(MODULE, args(postgres, password="wrong")).result
    assert res["status"] == "down", res
    assert "password authentication failed" in res["error"], res
    assert res.get("failed") is not True and res["connections"] is None


def test_ssl_required_but_not_offered_is_down(postgres: services.PostgresServer) -> None:
    res = run_module(MODULE, args(postgres, ssl_mode="require")).result
    assert res["status"] == "down", res
    assert "SSL" in res["error"], res


def test_stopped_server_is_down_with_connection_error(postgres: services.PostgresServer
                                                     ) -> None:
    postgres.stop()
    try:
        res = run_module(MODULE, args(postgres, timeout=3)).result
    finally:
        postgres.start()
    assert res["status"] == "down", res
    # refused (local cluster), or closed by Docker's port proxy (container stopped)
    assert any(word in res["error"] for word in ("refused", "closed", "reset")), res


def test_missing_driver_fails_with_missing_required_lib(postgres: services.PostgresServer
                                                       ) -> None:
    """An interpreter without psycopg: the module fails (bad setup, not a down service)."""
    python = shutil.which("python3", path="/usr/bin:/usr/local/bin")
    if python is None or services.sh(python, "-c", "import psycopg", check=False).returncode == 0:
        pytest.skip("no system python3 without psycopg to run the module with")
    res = run_module(MODULE, args(postgres), interpreter=python).result
    assert res.get("failed") is True, res
    assert "Failed to import the required Python library (psycopg" in res["msg"], res
