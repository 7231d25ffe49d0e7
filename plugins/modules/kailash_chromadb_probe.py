#!/usr/bin/python
"""Ansible module kailash_chromadb_probe: ChromaDB v2 heartbeat and version."""

from __future__ import annotations

DOCUMENTATION = r"""
module: kailash_chromadb_probe
short_description: Probe a ChromaDB server (v2 heartbeat and version)
description:
  - Requests C(GET /api/v2/heartbeat) and then C(GET /api/v2/version) from a ChromaDB
    server over one connection (ChromaDB 1.x answers C(/api/v1/...) with 410 Gone).
  - RV(status=up) when the heartbeat answers 200 with its C(nanosecond heartbeat) and
    the version is read. RV(status=degraded) when the heartbeat answers but the version
    cannot be read. RV(status=down) when the server cannot be reached, refuses the token
    (401/403), answers the heartbeat with another status, or does not answer within
    O(timeout).
version_added: "0.1.0"
author:
  - Kailash platform team
options:
  url:
    description: Base URL of the server (a path prefix of a reverse proxy is kept).
    type: str
    default: http://localhost:8000
  token:
    description: API token, sent in the header chosen by O(token_header).
    type: str
  token_header:
    description:
      - V(authorization) sends C(Authorization) with C(Bearer <token>);
        V(x-chroma-token) sends C(X-Chroma-Token) with the bare token.
    type: str
    default: authorization
    choices: [authorization, x-chroma-token]
extends_documentation_fragment:
  - kailash_probe
  - kailash_probe.tls
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
- name: Probe ChromaDB through its published port
  kailash_chromadb_probe:
    url: "http://127.0.0.1:{{ chromadb_host_port }}"
    token: "{{ chromadb_token }}"
    timeout: 2
    retries: 3
  delegate_to: localhost
  register: chroma_probe
  failed_when: chroma_probe.status == 'down'
"""

RETURN = r"""
status:
  description: V(up), V(degraded) (heartbeat answers, version does not) or V(down).
  returned: always
  type: str
  sample: up
latency_ms:
  description: Milliseconds the reported attempt took (both requests).
  returned: always
  type: float
  sample: 4.1
version:
  description: The body of C(/api/v2/version); null when unknown.
  returned: always
  type: str
  sample: 1.0.0
error:
  description: Why the server is not up; null when up.
  returned: always
  type: str
  sample: "authentication failed: heartbeat answered HTTP 401 Unauthorized"
attempts:
  description: Attempts made (1 + the retries used).
  returned: always
  type: int
  sample: 1
heartbeat_ns:
  description: The server's C(nanosecond heartbeat) (its clock, in ns since the epoch).
  returned: always
  type: int
  sample: 1795690753787273690
status_code:
  description: HTTP status of the heartbeat; null without a response.
  returned: always
  type: int
  sample: 200
"""


# The probe itself lives in the package module_utils/kailash_probe_kinds/ (kind "chromadb",
# its chromadb.py), shared with kailash_probes, which runs several probes in one module run.
from ansible.module_utils.kailash_probe import run_probe  # noqa: E402,F401 (for the tests)
from ansible.module_utils.kailash_probe_kinds import KINDS, probe_main  # noqa: E402

ARGUMENT_SPEC = KINDS["chromadb"].spec
FACTS = KINDS["chromadb"].facts
make_check = KINDS["chromadb"].make_check


def main() -> None:
    probe_main("chromadb")


if __name__ == "__main__":
    main()
