"""PgBouncer pool sizing (roles/pgbouncer): derived sizes and the preflight's refusals.

``kailash_pgbouncer_sizing(params)`` takes the variables that size PostgreSQL, the app and
PgBouncer (by their variable names, without the ``pgbouncer_``/``nexus_`` prefixes where
noted below) and returns::

    {'budget': int,               # server connections PgBouncer may open, all replicas
     'default_pool_size': int,    # per PgBouncer replica (pgbouncer.ini)
     'reserve_pool_size': int,    # per replica, on top of the pool when clients wait
     'max_db_connections': int,   # per replica: pool + reserve, a hard cap
     'max_client_conn': int,      # per replica
     'app_clients': int,          # client connections the app may open (all processes)
     'app_pooled': int,           # of which the DataFlow pools hold on to
     'errors': [str, ...]}        # each names the variable to fix; [] = it fits

Budget: PostgreSQL's ``max_connections`` minus ``superuser_reserved_connections`` minus
``pgbouncer_admin_connections`` (what backups, health probes, the rotation and an
operator's psql open straight to PostgreSQL). Every replica of PgBouncer opens at most
``default_pool_size + reserve_pool_size`` server connections, so all of them together
must stay within the budget.

The app: ``nexus_api_replicas + nexus_websocket_replicas + nexus_worker_replicas x
nexus_worker_concurrency`` processes, each with a DataFlow pool of
``nexus_dataflow_pool_size`` connections it keeps open, plus ``pgbouncer_app_extra_connections``
short-lived psycopg connections at once (readiness, job updates, the seed).
In session pooling a client holds its server connection while it is connected: the pooled
connections of every process must fit the pools, or clients wait (``query_wait_timeout``).
"""

from __future__ import annotations

import json
from typing import Any

try:
    from ansible.errors import AnsibleFilterError
except ImportError:  # unit tests without Ansible

    class AnsibleFilterError(Exception):  # type: ignore[no-redef]
        pass


POOL_MODES = ("session", "transaction", "statement")
# PostgreSQL's default when postgresql_settings does not set it
SUPERUSER_RESERVED_DEFAULT = 3
# max_client_conn derived: twice the app's clients (a rolling update runs old and new
# pods at once; one replica may get every client after another one failed), at least this
MIN_CLIENT_CONN = 100


def _int(params: dict[str, Any], name: str, errors: list[str], minimum: int = 0) -> int | None:
    """params[name] as an int >= minimum, or None with a message naming the variable."""
    value = params.get(name)
    if isinstance(value, bool) or value is None:
        ok = False
    else:
        try:
            number = int(str(value).strip())
            ok = str(value).strip().lstrip("-").isdigit() and number >= minimum
        except ValueError:
            ok = False
    if not ok:
        errors.append(f"{name} must be a whole number >= {minimum}, got {json.dumps(value)}")
        return None
    return number


def _optional(params: dict[str, Any], name: str, errors: list[str], minimum: int) -> int | None:
    """params[name]: "" (derive it) -> None; else a whole number >= minimum."""
    if str(params.get(name, "")).strip() == "":
        return None
    return _int(params, name, errors, minimum)


def _app_load(params: dict, errors: list[str]) -> tuple[int, int]:
    """The app's processes that open a pool each, and the pool size (0, 0 without the app)."""
    if not params.get("nexus_enabled", True):
        return 0, 0
    counts = [
        _int(params, name, errors, 0)
        for name in ("nexus_api_replicas", "nexus_websocket_replicas",
                     "nexus_worker_replicas", "nexus_worker_concurrency")
    ]  # fmt: skip
    app_pool = _int(params, "nexus_dataflow_pool_size", errors, 1)
    if None in counts or app_pool is None:
        return 0, 0
    api, ws, workers, concurrency = (int(c) for c in counts)  # type: ignore[arg-type]
    return api + ws + workers * concurrency, app_pool


def _fit_errors(v: dict[str, Any]) -> list[str]:
    """The refusals of derived or given sizes that do not fit (``v``: the worked-out sizes)."""
    errors = []
    if v["replicas"] * (v["pool"] + v["reserve"]) > v["budget"]:
        errors.append(
            f"pgbouncer_replicas ({v['replicas']}) x (pgbouncer_default_pool_size ({v['pool']}) + "
            f"pgbouncer_reserve_pool_size ({v['reserve']})) = "
            f"{v['replicas'] * (v['pool'] + v['reserve'])} server "
            f"connections do not fit in {v['limits']} = {v['budget']}: lower "
            "pgbouncer_default_pool_size or pgbouncer_reserve_pool_size, or raise "
            "postgresql_max_connections"
        )
    if v["clients"] < v["app_clients"]:
        errors.append(
            f"pgbouncer_max_client_conn ({v['clients']}) is below the {v['app_clients']} client "
            f"connections the app may open ({v['app_processes']} processes x "
            f"(nexus_dataflow_pool_size {v['app_pool']} + pgbouncer_app_extra_connections "
            f"{v['extra']})): raise pgbouncer_max_client_conn or leave it empty (derived)"
        )
    if v["pool_mode"] == "session" and v["app_pooled"] > v["replicas"] * v["pool"]:
        errors.append(
            f"in session pooling every pooled app connection holds a server connection: the app "
            f"keeps {v['app_pooled']} ({v['app_processes']} processes: nexus_api_replicas + "
            "nexus_websocket_replicas + nexus_worker_replicas x nexus_worker_concurrency, x "
            f"nexus_dataflow_pool_size {v['app_pool']}), more than pgbouncer_replicas "
            f"({v['replicas']}) x pgbouncer_default_pool_size ({v['pool']}) = "
            f"{v['replicas'] * v['pool']}: lower nexus_dataflow_pool_size or the replicas, or "
            "raise postgresql_max_connections"
        )
    return errors


def _server_inputs(params: dict[str, Any], errors: list[str]) -> tuple[Any, ...]:
    """The server side's settings, checked (None where one is bad, with its error): max
    connections, superuser-reserved (None/"" = PostgreSQL's default), PgBouncer replicas,
    admin and extra app connections, pool mode."""
    max_conn = _int(params, "postgresql_max_connections", errors, 1)
    reserved_raw = params.get("postgresql_superuser_reserved_connections")
    if reserved_raw is None or str(reserved_raw).strip() == "":
        reserved: int | None = SUPERUSER_RESERVED_DEFAULT
    else:
        reserved = _int(params, "postgresql_superuser_reserved_connections", errors, 0)
    replicas = _int(params, "pgbouncer_replicas", errors, 1)
    admin = _int(params, "pgbouncer_admin_connections", errors, 1)
    extra = _int(params, "pgbouncer_app_extra_connections", errors, 0)
    pool_mode = params.get("pgbouncer_pool_mode")
    if pool_mode not in POOL_MODES:
        errors.append(
            f"pgbouncer_pool_mode must be one of {', '.join(POOL_MODES)}, "
            f"got {json.dumps(pool_mode)}"
        )
    return max_conn, reserved, replicas, admin, extra, pool_mode


def kailash_pgbouncer_sizing(params: Any) -> dict[str, Any]:
    """Derived pool sizes and the refusals; see the module docstring.

    ``params`` keys (the variables, full names): postgresql_max_connections,
    postgresql_superuser_reserved_connections (None/"" = PostgreSQL's default 3),
    pgbouncer_replicas, pgbouncer_pool_mode, pgbouncer_admin_connections,
    pgbouncer_default_pool_size, pgbouncer_reserve_pool_size, pgbouncer_max_client_conn
    ("" = derived), pgbouncer_app_extra_connections, nexus_enabled, nexus_api_replicas,
    nexus_websocket_replicas, nexus_worker_replicas, nexus_worker_concurrency,
    nexus_dataflow_pool_size.
    """
    if not isinstance(params, dict):
        raise AnsibleFilterError(
            f"kailash_pgbouncer_sizing: expected a dict, got {type(params).__name__}"
        )
    errors: list[str] = []
    max_conn, reserved, replicas, admin, extra, pool_mode = _server_inputs(params, errors)
    pool = _optional(params, "pgbouncer_default_pool_size", errors, 1)
    reserve = _optional(params, "pgbouncer_reserve_pool_size", errors, 0)
    clients = _optional(params, "pgbouncer_max_client_conn", errors, 1)

    app_processes, app_pool = _app_load(params, errors)

    if None in (max_conn, reserved, replicas, admin, extra) or pool_mode not in POOL_MODES:
        return {"errors": errors}
    assert max_conn is not None and reserved is not None and replicas is not None
    assert admin is not None and extra is not None

    budget = max_conn - reserved - admin
    limits = (
        f"postgresql_max_connections ({max_conn}) - superuser_reserved_connections ({reserved})"
        f" - pgbouncer_admin_connections ({admin})"
    )
    if budget < replicas:
        errors.append(
            f"{limits} leaves {budget} server connections, fewer than one per PgBouncer replica "
            f"(pgbouncer_replicas {replicas}): raise postgresql_max_connections or lower "
            "pgbouncer_admin_connections"
        )
        return {"errors": errors, "budget": budget}

    per_replica = budget // replicas
    if reserve is None:
        reserve = min(max(per_replica // 10, 1), per_replica - 1) if per_replica > 1 else 0
    if pool is None:
        pool = max(per_replica - reserve, 1)
    app_pooled = app_processes * app_pool
    app_clients = app_processes * (app_pool + extra)
    if clients is None:
        clients = max(2 * app_clients, MIN_CLIENT_CONN)

    errors += _fit_errors(
        {"replicas": replicas, "pool": pool, "reserve": reserve, "budget": budget,
         "limits": limits, "clients": clients, "app_clients": app_clients,
         "app_processes": app_processes, "app_pool": app_pool, "extra": extra,
         "pool_mode": pool_mode, "app_pooled": app_pooled}
    )  # fmt: skip
    return {
        "errors": errors,
        "budget": budget,
        "default_pool_size": pool,
        "reserve_pool_size": reserve,
        "max_db_connections": pool + reserve,
        "max_client_conn": clients,
        "app_clients": app_clients,
        "app_pooled": app_pooled,
    }


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"kailash_pgbouncer_sizing": kailash_pgbouncer_sizing}
