"""Unit tests for PgBouncer's pool sizing and its preflight refusals
(plugins/filter/pgbouncer.py, used by roles/pgbouncer)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

FILTER_DIR = Path(__file__).resolve().parents[2] / "plugins" / "filter"
sys.path.insert(0, str(FILTER_DIR))

import pgbouncer  # noqa: E402

# ADR-002 production: PostgreSQL 200 connections; 3 API, 2 WebSocket, 5 workers x 2
PRODUCTION: dict[str, Any] = {
    "postgresql_max_connections": 200,
    "postgresql_superuser_reserved_connections": "",
    "pgbouncer_replicas": 2,
    "pgbouncer_pool_mode": "session",
    "pgbouncer_admin_connections": 10,
    "pgbouncer_default_pool_size": "",
    "pgbouncer_reserve_pool_size": "",
    "pgbouncer_max_client_conn": "",
    "pgbouncer_app_extra_connections": 2,
    "nexus_enabled": True,
    "nexus_api_replicas": 3,
    "nexus_websocket_replicas": 2,
    "nexus_worker_replicas": 5,
    "nexus_worker_concurrency": 2,
    "nexus_dataflow_pool_size": 5,
}


def size(**overrides: Any) -> dict[str, Any]:
    return pgbouncer.kailash_pgbouncer_sizing({**PRODUCTION, **overrides})


def test_production_defaults_split_the_budget_over_the_replicas() -> None:
    out = size()
    assert out["errors"] == []
    # 200 - 3 (superuser_reserved_connections) - 10 (admin) = 187, 93 per replica
    assert out["budget"] == 187
    assert (out["default_pool_size"], out["reserve_pool_size"]) == (84, 9)
    assert out["max_db_connections"] == 93
    assert 2 * out["max_db_connections"] <= 187
    # 15 app processes x (5 pooled + 2 short-lived), doubled for rolling updates
    assert (out["app_pooled"], out["app_clients"], out["max_client_conn"]) == (75, 105, 210)


def test_local_inventory_one_replica() -> None:
    out = size(pgbouncer_replicas=1, nexus_api_replicas=2, nexus_websocket_replicas=1,
               nexus_worker_replicas=2)
    assert out["errors"] == []
    assert (out["default_pool_size"], out["reserve_pool_size"]) == (169, 18)
    # 7 processes x 7 = 49 clients: at least 100
    assert out["max_client_conn"] == 100


def test_superuser_reserved_connections_from_postgresql_settings() -> None:
    assert size(postgresql_superuser_reserved_connections=13)["budget"] == 177


def test_pool_larger_than_max_connections_is_refused_naming_the_variables() -> None:
    errors = size(pgbouncer_default_pool_size=500)["errors"]
    assert len(errors) == 1
    assert "pgbouncer_default_pool_size (500)" in errors[0]
    assert "postgresql_max_connections (200)" in errors[0]
    assert "pgbouncer_admin_connections (10)" in errors[0]
    assert "= 187" in errors[0]


def test_exactly_full_budget_is_accepted_one_more_is_refused() -> None:
    assert size(pgbouncer_default_pool_size=88, pgbouncer_reserve_pool_size=5)["errors"] == []
    errors = size(pgbouncer_default_pool_size=89, pgbouncer_reserve_pool_size=5)["errors"]
    assert errors and "pgbouncer_reserve_pool_size (5)" in errors[0]


def test_more_replicas_need_smaller_pools() -> None:
    errors = size(pgbouncer_replicas=3, pgbouncer_default_pool_size=84)["errors"]
    assert any("pgbouncer_replicas (3)" in e for e in errors)


def test_admin_connections_leaving_nothing_is_refused() -> None:
    errors = size(postgresql_max_connections=20, pgbouncer_admin_connections=17)["errors"]
    assert len(errors) == 1 and "pgbouncer_admin_connections (17)" in errors[0]


def test_session_mode_needs_a_server_connection_per_pooled_app_connection() -> None:
    # 15 processes x 20 = 300 pooled > 2 x 84
    errors = size(nexus_dataflow_pool_size=20)["errors"]
    assert any("session pooling" in e and "nexus_dataflow_pool_size 20" in e for e in errors)
    # transaction pooling shares them: no such limit (the budget still holds)
    assert not any("session" in e for e in
                   size(nexus_dataflow_pool_size=20, pgbouncer_pool_mode="transaction")["errors"])


def test_max_client_conn_below_the_apps_clients_is_refused() -> None:
    errors = size(pgbouncer_max_client_conn=50)["errors"]
    assert len(errors) == 1 and "pgbouncer_max_client_conn (50)" in errors[0]
    assert "105 client connections" in errors[0]


def test_without_the_app_only_the_budget_counts() -> None:
    out = size(nexus_enabled=False, nexus_dataflow_pool_size="x")
    assert out["errors"] == [] and out["app_clients"] == 0 and out["max_client_conn"] == 100


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("postgresql_max_connections", "lots"),
        ("pgbouncer_replicas", 0),
        ("pgbouncer_default_pool_size", "-1"),
        ("pgbouncer_reserve_pool_size", "x"),
        ("pgbouncer_admin_connections", True),
        ("nexus_dataflow_pool_size", 0),
    ],
)
def test_bad_numbers_are_named(name: str, value: Any) -> None:
    errors = size(**{name: value})["errors"]
    assert any(e.startswith(f"{name} must be a whole number") for e in errors), errors


def test_unknown_pool_mode_is_named() -> None:
    errors = size(pgbouncer_pool_mode="sessions")["errors"]
    assert errors == ['pgbouncer_pool_mode must be one of session, transaction, statement, '
                      'got "sessions"']


def test_not_a_dict_is_an_error() -> None:
    with pytest.raises(pgbouncer.AnsibleFilterError):
        pgbouncer.kailash_pgbouncer_sizing(["x"])
