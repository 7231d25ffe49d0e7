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


# The probe itself lives in the package module_utils/kailash_probe_kinds/ (kind "postgresql",
# its postgresql.py), shared with kailash_probes, which runs several probes in one module run.
from ansible.module_utils.kailash_probe import run_probe  # noqa: E402,F401 (for the tests)
from ansible.module_utils.kailash_probe_kinds import KINDS, probe_main  # noqa: E402

ARGUMENT_SPEC = KINDS["postgresql"].spec
FACTS = KINDS["postgresql"].facts
make_check = KINDS["postgresql"].make_check


def main() -> None:
    probe_main("postgresql")


if __name__ == "__main__":
    main()
