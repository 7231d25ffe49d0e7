#!/usr/bin/python
"""Ansible module kailash_neo4j_probe: RETURN 1 over Bolt with the official neo4j driver."""

from __future__ import annotations

DOCUMENTATION = r"""
module: kailash_neo4j_probe
short_description: Probe a Neo4j server over Bolt (RETURN 1, server agent and version)
description:
  - Opens one Bolt connection with the official C(neo4j) Python driver (one driver, a
    pool of one connection, no transaction retries), runs C(RETURN 1) and reports the
    server agent (C(Neo4j/5.x.y)), its version and the Bolt protocol version.
  - RV(status=up) when the query answers, RV(status=down) when the server cannot be
    reached, refuses the credentials, fails the query or does not answer within
    O(timeout).
  - Only direct C(bolt://) URIs; routing (C(neo4j://)) would open more connections
    than one probe needs.
version_added: "0.1.0"
author:
  - Kailash platform team
requirements:
  - neo4j (the official driver, 5.x or 6.x) on the host that runs the module
options:
  uri:
    description: Bolt URI of the server, C(bolt://host:port).
    type: str
    default: bolt://localhost:7687
  user:
    description: User for basic authentication.
    type: str
    default: neo4j
    aliases: [login_user]
  password:
    description: Password of O(user). Without it the probe connects unauthenticated.
    type: str
    aliases: [login_password]
  database:
    description: Database to run the query in; the server's default when not set.
    type: str
extends_documentation_fragment:
  - kailash_probe
  - action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: Probe Neo4j through its published Bolt port
  kailash_neo4j_probe:
    uri: "bolt://127.0.0.1:{{ neo4j_host_port }}"
    user: neo4j
    password: "{{ neo4j_password }}"
    timeout: 3
    retries: 2
  delegate_to: localhost
  register: neo4j_probe
  failed_when: neo4j_probe.status != 'up'

- name: Require Neo4j 5
  ansible.builtin.assert:
    that: neo4j_probe.version is version('5.0', '>=')
"""

RETURN = r"""
status:
  description: V(up) or V(down).
  returned: always
  type: str
  sample: up
latency_ms:
  description: Milliseconds the reported attempt took (connect, Bolt handshake, login, query).
  returned: always
  type: float
  sample: 48.7
version:
  description: Server version from the agent string; null when down.
  returned: always
  type: str
  sample: 5.13.0
error:
  description: Why the server is down (driver error, server error code and message); null when up.
  returned: always
  type: str
  sample: >-
    Neo.ClientError.Security.Unauthorized: The client is unauthorized due to
    authentication failure.
attempts:
  description: Attempts made (1 + the retries used).
  returned: always
  type: int
  sample: 1
server_agent:
  description: The server's agent string.
  returned: always
  type: str
  sample: Neo4j/5.13.0
protocol_version:
  description: Negotiated Bolt protocol version.
  returned: always
  type: str
  sample: "5.7"
"""

import traceback  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

from ansible.module_utils.basic import AnsibleModule, missing_required_lib  # noqa: E402
from ansible.module_utils.kailash_probe import (  # noqa: E402
    DOWN,
    UP,
    Deadline,
    Outcome,
    describe_error,
    probe_argument_spec,
    probe_param_errors,
    run_probe,
)

try:
    import neo4j
    from neo4j.exceptions import Neo4jError
except ImportError:
    neo4j = None
    NEO4J_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    NEO4J_IMPORT_ERROR = None

ARGUMENT_SPEC = probe_argument_spec({
    "uri": {"type": "str", "default": "bolt://localhost:7687"},
    "user": {"type": "str", "default": "neo4j", "aliases": ["login_user"]},
    "password": {"type": "str", "no_log": True, "aliases": ["login_password"]},
    "database": {"type": "str"},
})

FACTS: dict[str, Any] = {"server_agent": None, "protocol_version": None}


def neo4j_error_text(exc: Exception) -> str:
    """``code: message``, plus the server's own code when the driver did not know it."""
    if not isinstance(exc, Neo4jError):
        return describe_error(exc)
    text = f"{exc.code}: {exc.message}" if exc.code else describe_error(exc)
    raw = (exc.metadata or {}).get("code") if hasattr(exc, "metadata") else None
    if raw and raw != exc.code:
        text += f" (server code {raw})"
    return text


def make_check(params: dict[str, Any]) -> Callable[[Deadline], Outcome]:
    auth = None
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


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if neo4j is None:
        module.fail_json(msg=missing_required_lib("neo4j"), exception=NEO4J_IMPORT_ERROR)
    errors = probe_param_errors(module.params)
    uri = urlsplit(module.params["uri"])
    if uri.scheme != "bolt" or not uri.hostname:
        errors.append(f"uri must be bolt://host[:port], got {module.params['uri']!r}")
    if errors:
        module.fail_json(msg="; ".join(errors))
    module.exit_json(**run_probe(make_check(module.params), module.params, FACTS))


if __name__ == "__main__":
    main()
