"""The probe kinds of the kailash_*_probe modules and of kailash_probes, in one place.

A kind is what one probe module does: its options (the Ansible argument spec), the keys of
its result for a down service (facts), ``check(params)`` (``make_check`` of
``kailash_probe.run_probe``), its own option checks and the Python library it needs.
``kailash_postgresql_probe`` and its siblings run one kind (``probe_main``);
``kailash_probes`` runs several at once in threads (``probe_one``), with the same options,
checks and results, so one module run probes a whole stack.

Imported by the modules as ``ansible.module_utils.kailash_probe_kinds``. The PostgreSQL
(psycopg) and Neo4j drivers are imported when a probe of theirs runs, not before.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import traceback
from collections.abc import Callable, Mapping
from http.client import HTTPException
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from ansible.module_utils.kailash_probe import (
    DEGRADED,
    DOWN,
    UP,
    Deadline,
    HttpAnswer,
    HttpClient,
    Outcome,
    describe_error,
    http_failure,
    open_tcp,
    probe_argument_spec,
    probe_param_errors,
    ratio,
    run_probe,
)
from ansible.module_utils.kailash_resp import (
    RespClient,
    RespReplyError,
    parse_info,
    redis_facts,
    redis_health,
)


class MissingLibrary(Exception):
    """A driver a kind needs is not installed: ``library`` names it, ``trace`` says why."""

    def __init__(self, library: str, trace: str):
        super().__init__(library)
        self.library, self.trace = library, trace


def _library(name: str, label: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise MissingLibrary(label, traceback.format_exc()) from exc


def _psycopg() -> Any:
    return _library("psycopg", "psycopg (psycopg[binary] >= 3.1)")


def _neo4j() -> Any:
    module = _library("neo4j", "neo4j")
    importlib.import_module("neo4j.exceptions")
    return module


def _port_errors(params: Mapping[str, Any]) -> list[str]:
    port = params["port"]
    return [] if 0 < port < 65536 else [f"port must be 1-65535, got {port}"]


def _url_errors(params: Mapping[str, Any], key: str, schemes: tuple[str, ...],
                form: str) -> list[str]:
    url = urlsplit(params[key])
    if url.scheme in schemes and url.hostname:
        return []
    return [f"{key} must be {form}, got {params[key]!r}"]


# --- postgresql ----------------------------------------------------------------------

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


# --- redis ---------------------------------------------------------------------------

REDIS_SPEC = probe_argument_spec({
    "host": {"type": "str", "default": "localhost", "aliases": ["login_host"]},
    "port": {"type": "int", "default": 6379, "aliases": ["login_port"]},
    "user": {"type": "str", "aliases": ["login_user"]},
    "password": {"type": "str", "no_log": True, "aliases": ["login_password"]},
})

REDIS_FACTS: dict[str, Any] = {
    "role": None, "loading": None, "master_link_status": None, "connected_clients": None,
    "memory_used": None, "maxmemory": None, "maxmemory_policy": None, "memory_ratio": None,
}


def redis_check(params: dict[str, Any]) -> Callable[[Deadline], Outcome]:
    def check(deadline: Deadline) -> Outcome:
        sock = open_tcp(params["host"], params["port"], deadline)
        try:
            client = RespClient(sock, deadline)
            if params["password"] is not None:
                auth = ["AUTH", params["password"]]
                if params["user"]:
                    auth.insert(1, params["user"])
                try:
                    client.command(*auth)
                except RespReplyError as exc:
                    return Outcome(DOWN, error=f"authentication failed: {exc.text}")
            loading = False
            try:
                client.command("PING")
            except RespReplyError as exc:
                if exc.code != "LOADING":
                    prefix = "authentication required" if exc.code == "NOAUTH" else "PING failed"
                    return Outcome(DOWN, error=f"{prefix}: {exc.text}")
                loading = True
            try:
                info = parse_info(client.command("INFO"))
            except RespReplyError as exc:
                if loading or exc.code == "LOADING":
                    return Outcome(DEGRADED, error=exc.text, facts={"loading": True})
                # PING works, INFO is refused (an ACL without +info): up, nothing more known
                return Outcome(UP, error=f"INFO refused: {exc.text}")
            status, reason = redis_health(info, ping_loading=loading)
            facts = redis_facts(info, loading=loading)
            facts["memory_ratio"] = ratio(facts["memory_used"], facts["maxmemory"])
            return Outcome(status, version=info.get("redis_version"), error=reason, facts=facts)
        finally:
            sock.close()

    return check


# --- chromadb ------------------------------------------------------------------------

CHROMA_SPEC = probe_argument_spec({
    "url": {"type": "str", "default": "http://localhost:8000"},
    "token": {"type": "str", "no_log": True},
    "token_header": {"type": "str", "default": "authorization",
                     "choices": ["authorization", "x-chroma-token"], "no_log": False},
}, tls=True)

CHROMA_FACTS: dict[str, Any] = {"heartbeat_ns": None, "status_code": None}

HEARTBEAT = "/api/v2/heartbeat"
VERSION = "/api/v2/version"


def chromadb_check(params: dict[str, Any]) -> Callable[[Deadline], Outcome]:
    headers = {"User-Agent": "kailash_chromadb_probe", "Accept": "application/json"}
    if params["token"]:
        if params["token_header"] == "authorization":
            headers["Authorization"] = f"Bearer {params['token']}"
        else:
            headers["X-Chroma-Token"] = params["token"]

    def check(deadline: Deadline) -> Outcome:
        client = HttpClient(params["url"], deadline, params["validate_certs"],
                            params["ca_path"], headers)
        try:
            beat = client.request(HEARTBEAT)
            facts: dict[str, Any] = {"status_code": beat.status}
            if beat.status != 200:
                return Outcome(DOWN, error=http_failure(beat, "heartbeat"), facts=facts)
            try:
                facts["heartbeat_ns"] = int(beat.json()["nanosecond heartbeat"])
            except (ValueError, KeyError, TypeError):
                return Outcome(DOWN, error="heartbeat answered 200 without a "
                               "'nanosecond heartbeat': not a ChromaDB v2 API?", facts=facts)
            try:
                version = client.request(VERSION)
            except (OSError, HTTPException) as exc:
                return Outcome(DEGRADED, error=f"version: {describe_error(exc)}", facts=facts)
        finally:
            client.close()
        if version.status != 200:
            return Outcome(DEGRADED, error=http_failure(version, "version"), facts=facts)
        try:
            text = version.json()
        except ValueError:
            text = version.body.decode("utf-8", "replace").strip()
        return Outcome(UP, version=str(text), facts=facts)

    return check


# --- neo4j ---------------------------------------------------------------------------

NEO4J_SPEC = probe_argument_spec({
    "uri": {"type": "str", "default": "bolt://localhost:7687"},
    "user": {"type": "str", "default": "neo4j", "aliases": ["login_user"]},
    "password": {"type": "str", "no_log": True, "aliases": ["login_password"]},
    "database": {"type": "str"},
})

NEO4J_FACTS: dict[str, Any] = {"server_agent": None, "protocol_version": None}


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


# --- http ----------------------------------------------------------------------------

HTTP_SPEC = probe_argument_spec({
    "url": {"type": "str", "required": True},
    "method": {"type": "str", "default": "GET", "choices": ["GET", "HEAD"]},
    "status_code": {"type": "list", "elements": "int", "default": [200]},
    "body_contains": {"type": "str"},
    "json_key": {"type": "str", "no_log": False},
    "json_value": {"type": "raw"},
    "version_key": {"type": "str", "default": "version", "no_log": False},
    "json_return": {"type": "str", "no_log": False},
    "headers": {"type": "dict", "default": {}},
    "bearer_token": {"type": "str", "no_log": True},
}, tls=True)

HTTP_FACTS: dict[str, Any] = {"status_code": None, "tls_version": None, "cert_not_after": None}

_MISSING = object()


def json_lookup(document: Any, dotted: str) -> Any:
    """The value at ``a.b.c`` in nested objects, or _MISSING."""
    value = document
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def values_match(actual: Any, expected: Any) -> bool:
    if actual == expected:
        return True
    as_text = actual if isinstance(actual, str) else json.dumps(actual)
    return as_text == (expected if isinstance(expected, str) else json.dumps(expected))


def judge(answer: HttpAnswer, params: dict[str, Any]) -> tuple[str | None, str | None]:
    """(error, version): error is None when every check passes."""
    document: Any = _MISSING
    with contextlib.suppress(ValueError):
        document = answer.json()
    version = json_lookup(document, params["version_key"]) if params["version_key"] else _MISSING
    version_text = None if version is _MISSING or version is None else str(version)
    if answer.status not in params["status_code"]:
        wanted = ", ".join(str(code) for code in params["status_code"])
        return f"HTTP {answer.status} {answer.reason} (expected {wanted})", version_text
    if params["body_contains"] is not None and \
            params["body_contains"].encode("utf-8") not in answer.body:
        return f"the body does not contain {params['body_contains']!r}", version_text
    if params["json_key"]:
        if document is _MISSING:
            return "the body is not JSON", version_text
        actual = json_lookup(document, params["json_key"])
        if actual is _MISSING:
            return f"the JSON body has no key {params['json_key']!r}", version_text
        expected = params["json_value"]
        if expected is not None and not values_match(actual, expected):
            return (f"JSON {params['json_key']} is {json.dumps(actual)}, "
                    f"expected {json.dumps(expected)}"), version_text
    return None, version_text


def returned(answer: HttpAnswer, dotted: str) -> Any:
    """The value at ``dotted`` in the answer's JSON body (json_return), None without one."""
    document: Any = _MISSING
    with contextlib.suppress(ValueError):
        document = answer.json()
    value = json_lookup(document, dotted)
    return None if value is _MISSING else value


def http_check(params: dict[str, Any]) -> Callable[[Deadline], Outcome]:
    headers = {"User-Agent": "kailash_http_probe", "Accept": "*/*", **params["headers"]}
    if params["bearer_token"]:
        headers["Authorization"] = f"Bearer {params['bearer_token']}"

    def check(deadline: Deadline) -> Outcome:
        client = HttpClient(params["url"], deadline, params["validate_certs"],
                            params["ca_path"], headers)
        try:
            answer = client.request("", params["method"])
        finally:
            client.close()
        error, version = judge(answer, params)
        facts = {"status_code": answer.status, "tls_version": answer.tls_version,
                 "cert_not_after": answer.cert_not_after}
        if params["json_return"]:
            facts["json_returned"] = returned(answer, params["json_return"])
        return Outcome(DOWN if error else UP, version=version, error=error, facts=facts)

    return check


# --- the registry -------------------------------------------------------------------------


def _redis_errors(params: Mapping[str, Any]) -> list[str]:
    errors = _port_errors(params)
    if params["user"] and params["password"] is None:
        errors.append("user needs password (AUTH user password)")
    return errors


def _http_errors(params: Mapping[str, Any]) -> list[str]:
    errors = _url_errors(params, "url", ("http", "https"), "http(s)://host[:port]/path")
    if params["json_value"] is not None and not params["json_key"]:
        errors.append("json_value needs json_key")
    if not params["status_code"]:
        errors.append("status_code must list at least one status")
    return errors


class Kind(NamedTuple):
    spec: dict[str, dict[str, Any]]
    facts: dict[str, Any]
    make_check: Callable[[dict[str, Any]], Callable[[Deadline], Outcome]]
    errors: Callable[[Mapping[str, Any]], list[str]]
    library: Callable[[], Any] | None = None


KINDS: dict[str, Kind] = {
    "postgresql": Kind(PG_SPEC, PG_FACTS, postgresql_check, _port_errors, _psycopg),
    "redis": Kind(REDIS_SPEC, REDIS_FACTS, redis_check, _redis_errors),
    "chromadb": Kind(CHROMA_SPEC, CHROMA_FACTS, chromadb_check, lambda p: _url_errors(
        p, "url", ("http", "https"), "http(s)://host[:port]")),
    "neo4j": Kind(NEO4J_SPEC, NEO4J_FACTS, neo4j_check, lambda p: _url_errors(
        p, "uri", ("bolt",), "bolt://host[:port]"), _neo4j),
    "http": Kind(HTTP_SPEC, HTTP_FACTS, http_check, _http_errors),
}


def secret_options(kind: str) -> list[str]:
    """The options of a kind whose values are secrets (no_log in its spec)."""
    return [name for name, opts in KINDS[kind].spec.items() if opts.get("no_log")]


def probe_main(kind: str) -> None:
    """The main() of a single-kind probe module."""
    from ansible.module_utils.basic import AnsibleModule, missing_required_lib

    spec = KINDS[kind]
    module = AnsibleModule(argument_spec=spec.spec, supports_check_mode=True)
    try:
        if spec.library:
            spec.library()
    except MissingLibrary as exc:
        module.fail_json(msg=missing_required_lib(exc.library), exception=exc.trace)
    errors = probe_param_errors(module.params) + spec.errors(module.params)
    if errors:
        module.fail_json(msg="; ".join(errors))
    module.exit_json(**run_probe(spec.make_check(module.params), module.params, spec.facts))


def probe_one(kind: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """One probe of ``kind`` with ``options`` (validated as the kind's module validates
    them): its result, or ``{failed: true, msg}`` as the module would fail."""
    from ansible.module_utils.basic import missing_required_lib
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    spec = KINDS.get(kind)
    if spec is None:
        return {"failed": True, "changed": False,
                "msg": f"unknown probe kind {kind!r} (one of {', '.join(sorted(KINDS))})"}
    checked = ArgumentSpecValidator(spec.spec).validate(dict(options))
    if checked.error_messages:
        return {"failed": True, "changed": False, "msg": "; ".join(checked.error_messages)}
    params = checked.validated_parameters
    try:
        if spec.library:
            spec.library()
    except MissingLibrary as exc:
        return {"failed": True, "changed": False, "msg": missing_required_lib(exc.library),
                "exception": exc.trace}
    errors = probe_param_errors(params) + spec.errors(params)
    if errors:
        return {"failed": True, "changed": False, "msg": "; ".join(errors)}
    return run_probe(spec.make_check(params), params, spec.facts)
