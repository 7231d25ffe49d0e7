"""The postgresql probe kind (``kailash_postgresql_probe``): a query through psycopg, which
is imported when a probe of this kind runs, not before."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ansible.module_utils.kailash_probe import (
    UP,
    Deadline,
    Outcome,
    probe_argument_spec,
    ratio,
)

from .common import Kind, _library, _port_errors

NAME = "postgresql"

PG_SPEC = probe_argument_spec({
    "host": {"type": "str", "default": "localhost", "aliases": ["login_host"]},
    "port": {"type": "int", "default": 5432, "aliases": ["login_port"]},
    "user": {"type": "str", "default": "postgres", "aliases": ["login_user"]},
    "password": {"type": "str", "no_log": True, "aliases": ["login_password"]},
    "database": {"type": "str", "default": "postgres", "aliases": ["login_db", "db"]},
    "ssl_mode": {"type": "str", "default": "prefer",
                 "choices": ["disable", "allow", "prefer", "require", "verify-ca",
                             "verify-full"]},
    "ca_path": {"type": "path", "aliases": ["ca_cert"]},
})

PG_FACTS: dict[str, Any] = {
    "server_version": None, "connections": None, "max_connections": None,
    "connections_ratio": None, "in_recovery": None,
}

QUERY = """
SELECT current_setting('server_version'),
       current_setting('max_connections')::int,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int,
       pg_is_in_recovery()
"""


def _psycopg() -> Any:
    return _library("psycopg", "psycopg (psycopg[binary] >= 3.1)")


def postgresql_check(params: dict[str, Any]) -> Callable[[Deadline], Outcome]:
    def check(deadline: Deadline) -> Outcome:
        # libpq counts connect_timeout in whole seconds (at least 2): set it past the
        # deadline, which ends the attempt exactly (run_probe).
        conn = _psycopg().connect(
            host=params["host"], port=params["port"], user=params["user"],
            password=params["password"], dbname=params["database"],
            sslmode=params["ssl_mode"], sslrootcert=params["ca_path"],
            connect_timeout=max(2, math.ceil(deadline.remaining()) + 1),
            application_name="kailash_postgresql_probe", autocommit=True,
        )
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                cur.fetchone()
                cur.execute(QUERY)
                row = cur.fetchone()
        finally:
            conn.close()
        server_version, max_connections, connections, in_recovery = row
        return Outcome(UP, version=server_version.split()[0], facts={
            "server_version": server_version,
            "connections": connections,
            "max_connections": max_connections,
            "connections_ratio": ratio(connections, max_connections),
            "in_recovery": in_recovery,
        })

    return check


KIND = Kind(PG_SPEC, PG_FACTS, postgresql_check, _port_errors, _psycopg)
