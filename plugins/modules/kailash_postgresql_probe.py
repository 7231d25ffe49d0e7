#!/usr/bin/python
"""Ansible module kailash_postgresql_probe: connect, SELECT 1, version and connection use."""

from __future__ import annotations

DOCUMENTATION = r"""
module: kailash_postgresql_probe
short_description: Probe a PostgreSQL server (SELECT 1, version, connections in use)
description:
  - Connects to a PostgreSQL server with psycopg 3, runs C(SELECT 1), and reads the
    server version, the client connections in use (C(pg_stat_activity)) and
    C(max_connections).
  - RV(status=up) when the query answers, RV(status=down) when the server cannot be
    reached, refuses the login, or does not answer within O(timeout).
version_added: "0.1.0"
author:
  - Kailash platform team
requirements:
  - psycopg >= 3.1 (C(psycopg[binary])) on the host that runs the module (usually the
    control node, with C(delegate_to) localhost)
options:
  host:
    description:
      - Host name or IP address of the server, or a directory holding its Unix socket.
    type: str
    default: localhost
    aliases: [login_host]
  port:
    description: TCP port of the server.
    type: int
    default: 5432
    aliases: [login_port]
  user:
    description: Role to log in as.
    type: str
    default: postgres
    aliases: [login_user]
  password:
    description: Password of O(user); none is sent when not set.
    type: str
    aliases: [login_password]
  database:
    description: Database to connect to.
    type: str
    default: postgres
    aliases: [login_db, db]
  ssl_mode:
    description:
      - libpq C(sslmode). V(require) and stricter report a server without TLS as down.
    type: str
    default: prefer
    choices: [disable, allow, prefer, require, verify-ca, verify-full]
  ca_path:
    description:
      - CA certificate file for V(verify-ca) and V(verify-full) (libpq C(sslrootcert)).
    type: path
    aliases: [ca_cert]
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
seealso:
  - module: community.postgresql.postgresql_ping
"""

EXAMPLES = r"""
- name: Probe PostgreSQL through its published port
  kailash_postgresql_probe:
    host: 127.0.0.1
    port: "{{ postgresql_host_port }}"
    user: kailash
    password: "{{ postgresql_password }}"
    database: kailash
    timeout: 3
    retries: 5
    backoff: 1
  delegate_to: localhost
  register: pg_probe
  failed_when: pg_probe.status != 'up'

- name: Warn when connections run short
  ansible.builtin.debug:
    msg: "{{ pg_probe.connections }} of {{ pg_probe.max_connections }} connections in use"
  when: pg_probe.connections_ratio is not none and pg_probe.connections_ratio > 0.8
"""

RETURN = r"""
status:
  description: V(up) or V(down).
  returned: always
  type: str
  sample: up
latency_ms:
  description: Milliseconds the reported attempt took (connect, login, queries).
  returned: always
  type: float
  sample: 12.301
version:
  description: Server version (C(server_version) without the build suffix); null when down.
  returned: always
  type: str
  sample: "15.18"
error:
  description: Why the server is down (connection or login error from libpq); null when up.
  returned: always
  type: str
  sample: >-
    connection failed: connection to server at "127.0.0.1", port 5432 failed:
    FATAL: password authentication failed for user "kailash"
attempts:
  description: Attempts made (1 + the retries used).
  returned: always
  type: int
  sample: 1
server_version:
  description: The full C(server_version) setting.
  returned: always
  type: str
  sample: 15.18 (Debian 15.18-0+deb12u1)
connections:
  description: Client backends connected (rows of C(pg_stat_activity)), this probe included.
  returned: always
  type: int
  sample: 7
max_connections:
  description: The C(max_connections) setting.
  returned: always
  type: int
  sample: 100
connections_ratio:
  description: RV(connections) / RV(max_connections).
  returned: always
  type: float
  sample: 0.07
in_recovery:
  description: Whether the server is a standby (C(pg_is_in_recovery())).
  returned: always
  type: bool
  sample: false
"""

import math  # noqa: E402
import traceback  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule, missing_required_lib  # noqa: E402
from ansible.module_utils.kailash_probe import (  # noqa: E402
    UP,
    Deadline,
    Outcome,
    probe_argument_spec,
    probe_param_errors,
    ratio,
    run_probe,
)

try:
    import psycopg
except ImportError:
    psycopg = None
    PSYCOPG_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    PSYCOPG_IMPORT_ERROR = None

ARGUMENT_SPEC = probe_argument_spec({
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

FACTS: dict[str, Any] = {
    "server_version": None, "connections": None, "max_connections": None,
    "connections_ratio": None, "in_recovery": None,
}

QUERY = """
SELECT current_setting('server_version'),
       current_setting('max_connections')::int,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int,
       pg_is_in_recovery()
"""


def make_check(params: dict[str, Any]) -> Callable[[Deadline], Outcome]:
    def check(deadline: Deadline) -> Outcome:
        # libpq counts connect_timeout in whole seconds (at least 2): set it past the
        # deadline, which ends the attempt exactly (run_probe).
        conn = psycopg.connect(
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


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if psycopg is None:
        module.fail_json(msg=missing_required_lib("psycopg (psycopg[binary] >= 3.1)"),
                         exception=PSYCOPG_IMPORT_ERROR)
    errors = probe_param_errors(module.params)
    if not 0 < module.params["port"] < 65536:
        errors.append(f"port must be 1-65535, got {module.params['port']}")
    if errors:
        module.fail_json(msg="; ".join(errors))
    module.exit_json(**run_probe(make_check(module.params), module.params, FACTS))


if __name__ == "__main__":
    main()
