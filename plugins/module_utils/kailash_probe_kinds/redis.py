"""The redis probe kind (``kailash_redis_probe``): AUTH, PING and INFO over RESP
(module_utils/kailash_resp.py), no driver."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ansible.module_utils.kailash_probe import (
    DEGRADED,
    DOWN,
    UP,
    Deadline,
    Outcome,
    open_tcp,
    probe_argument_spec,
    ratio,
)
from ansible.module_utils.kailash_resp import (
    RespClient,
    RespReplyError,
    parse_info,
    redis_facts,
    redis_health,
)

from .common import Kind, _port_errors

NAME = "redis"

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


def _redis_errors(params: Mapping[str, Any]) -> list[str]:
    errors = _port_errors(params)
    if params["user"] and params["password"] is None:
        errors.append("user needs password (AUTH user password)")
    return errors


KIND = Kind(REDIS_SPEC, REDIS_FACTS, redis_check, _redis_errors)
