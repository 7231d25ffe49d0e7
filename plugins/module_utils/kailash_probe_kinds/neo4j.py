"""The neo4j probe kind (``kailash_neo4j_probe``): ``RETURN 1`` over Bolt through the
official driver, which is imported when a probe of this kind runs, not before."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from ansible.module_utils.kailash_probe import (
    DOWN,
    UP,
    Deadline,
    Outcome,
    describe_error,
    probe_argument_spec,
)

from .common import Kind, _library, _url_errors

NAME = "neo4j"

NEO4J_SPEC = probe_argument_spec({
    "uri": {"type": "str", "default": "bolt://localhost:7687"},
    "user": {"type": "str", "default": "neo4j", "aliases": ["login_user"]},
    "password": {"type": "str", "no_log": True, "aliases": ["login_password"]},
    "database": {"type": "str"},
})

NEO4J_FACTS: dict[str, Any] = {"server_agent": None, "protocol_version": None}


def _neo4j() -> Any:
    module = _library("neo4j", "neo4j")
    importlib.import_module("neo4j.exceptions")
    return module


def neo4j_error_text(exc: Exception) -> str:
    """``code: message``, plus the server's own code when the driver did not know it."""
    if not isinstance(exc, _neo4j().exceptions.Neo4jError):
        return describe_error(exc)
    text = f"{exc.code}: {exc.message}" if exc.code else describe_error(exc)
    raw = (exc.metadata or {}).get("code") if hasattr(exc, "metadata") else None
    if raw and raw != exc.code:
        text += f" (server code {raw})"
    return text


def neo4j_check(params: dict[str, Any]) -> Callable[[Deadline], Outcome]:
    auth = None
    neo4j = _neo4j()
    if params["password"] is not None:
        auth = neo4j.basic_auth(params["user"], params["password"])

    def check(deadline: Deadline) -> Outcome:
        # the driver's own limits a little later than the deadline, which ends the attempt
        limit = deadline.remaining() + 0.5
        driver = neo4j.GraphDatabase.driver(
            params["uri"], auth=auth, user_agent="kailash_neo4j_probe",
            connection_timeout=limit, connection_acquisition_timeout=limit,
            max_connection_pool_size=1, max_transaction_retry_time=0,
        )
        try:
            with driver.session(database=params["database"],
                                default_access_mode=neo4j.READ_ACCESS) as session:
                result = session.run("RETURN 1 AS ok")
                record = result.single(strict=True)
                summary = result.consume()
        except Exception as exc:
            return Outcome(DOWN, error=neo4j_error_text(exc))
        finally:
            driver.close()
        if record["ok"] != 1:
            return Outcome(DOWN, error=f"RETURN 1 answered {record['ok']!r}")
        agent = summary.server.agent or ""
        protocol = summary.server.protocol_version
        return Outcome(UP, version=agent.split("/", 1)[1] if "/" in agent else None, facts={
            "server_agent": agent or None,
            "protocol_version": ".".join(str(part) for part in protocol) if protocol else None,
        })

    return check


def _neo4j_errors(params: Mapping[str, Any]) -> list[str]:
    return _url_errors(params, "uri", ("bolt",), "bolt://host[:port]")


KIND = Kind(NEO4J_SPEC, NEO4J_FACTS, neo4j_check, _neo4j_errors, _neo4j)
