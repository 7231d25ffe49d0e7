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

from collections.abc import Callable  # noqa: E402
from http.client import HTTPException  # noqa: E402
from typing import Any  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.kailash_probe import (  # noqa: E402
    DEGRADED,
    DOWN,
    UP,
    Deadline,
    HttpClient,
    Outcome,
    describe_error,
    http_failure,
    probe_argument_spec,
    probe_param_errors,
    run_probe,
)

ARGUMENT_SPEC = probe_argument_spec({
    "url": {"type": "str", "default": "http://localhost:8000"},
    "token": {"type": "str", "no_log": True},
    "token_header": {"type": "str", "default": "authorization",
                     "choices": ["authorization", "x-chroma-token"], "no_log": False},
}, tls=True)

FACTS: dict[str, Any] = {"heartbeat_ns": None, "status_code": None}

HEARTBEAT = "/api/v2/heartbeat"
VERSION = "/api/v2/version"


def make_check(params: dict[str, Any]) -> Callable[[Deadline], Outcome]:
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


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    errors = probe_param_errors(module.params)
    url = urlsplit(module.params["url"])
    if url.scheme not in ("http", "https") or not url.hostname:
        errors.append(f"url must be http(s)://host[:port], got {module.params['url']!r}")
    if errors:
        module.fail_json(msg="; ".join(errors))
    module.exit_json(**run_probe(make_check(module.params), module.params, FACTS))


if __name__ == "__main__":
    main()
