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


# The probe itself lives in the package module_utils/kailash_probe_kinds/ (kind "neo4j",
# its neo4j.py), shared with kailash_probes, which runs several probes in one module run.
from ansible.module_utils.kailash_probe import run_probe  # noqa: E402,F401 (for the tests)
from ansible.module_utils.kailash_probe_kinds import (  # noqa: E402,F401 (the tests use them)
    KINDS,
    neo4j_error_text,
    probe_main,
)

ARGUMENT_SPEC = KINDS["neo4j"].spec
FACTS = KINDS["neo4j"].facts
make_check = KINDS["neo4j"].make_check


def main() -> None:
    probe_main("neo4j")


if __name__ == "__main__":
    main()
