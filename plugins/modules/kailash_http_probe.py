#!/usr/bin/python
"""Ansible module kailash_http_probe: a /health-style check with TLS reasons reported."""

from __future__ import annotations

DOCUMENTATION = r"""
module: kailash_http_probe
short_description: Probe an HTTP(S) health endpoint (status, body, JSON, TLS)
description:
  - Sends one request to O(url) and checks the response status against
    O(status_code), and optionally the body for O(body_contains) and a JSON value
    (O(json_key), O(json_value)).
  - RV(status=up) when every check passes. RV(status=down) when the endpoint cannot
    be reached, the TLS handshake fails (expired certificate, unknown CA, host name
    mismatch, with the TLS reason in RV(error)), a check fails, or no complete answer
    arrives within O(timeout).
  - Redirects are not followed; list 3xx codes in O(status_code) to accept them.
version_added: "0.1.0"
author:
  - Kailash platform team
options:
  url:
    description: The C(http://) or C(https://) URL to request.
    type: str
    required: true
  method:
    description: Request method.
    type: str
    default: GET
    choices: [GET, HEAD]
  status_code:
    description: Response statuses that count as healthy.
    type: list
    elements: int
    default: [200]
  body_contains:
    description: A string the response body must contain.
    type: str
  json_key:
    description:
      - Key the JSON response body must have; dots descend into objects
        (V(checks.db.status)).
    type: str
  json_value:
    description:
      - Value O(json_key) must have. Compared as JSON values, and as strings when
        those differ in type (so V(true) matches C("true")).
    type: raw
  version_key:
    description:
      - Key of a JSON response body whose value is returned as RV(version).
    type: str
    default: version
  json_return:
    description:
      - Key of a JSON response body (dots descend into objects, V(data.alerts)) whose
        value is returned as RV(json_returned), so the caller gets data the probe read
        (Prometheus's firing alerts, say) from the same request.
    type: str
  headers:
    description: Extra request headers.
    type: dict
    default: {}
  bearer_token:
    description: "Sent as C(Authorization: Bearer <token>); keep secrets here, not in O(headers)."
    type: str
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
seealso:
  - module: ansible.builtin.uri
"""

EXAMPLES = r"""
- name: Probe the Nexus API through the edge proxy, trusting the stack's own CA
  kailash_http_probe:
    url: "https://{{ kailash_domain }}/health"
    ca_path: "{{ kailash_secrets_dir }}/ca.pem"
    json_key: status
    json_value: healthy
    timeout: 2
    retries: 3
  delegate_to: localhost
  register: api_probe
  failed_when: api_probe.status != 'up'

- name: Warn a month before the certificate expires
  ansible.builtin.debug:
    msg: "certificate valid until {{ api_probe.cert_not_after }}"
  when: >-
    api_probe.cert_not_after is not none and
    (api_probe.cert_not_after | to_datetime('%b %d %H:%M:%S %Y %Z')
     - now(utc=true).replace(tzinfo=None)).days < 30

- name: Prometheus is ready
  kailash_http_probe:
    url: http://127.0.0.1:9090/-/ready
    body_contains: Ready
"""

RETURN = r"""
status:
  description: V(up) or V(down).
  returned: always
  type: str
  sample: up
latency_ms:
  description: Milliseconds the reported attempt took (connect, TLS handshake, response).
  returned: always
  type: float
  sample: 3.2
version:
  description: Value of O(version_key) in a JSON body; null otherwise.
  returned: always
  type: str
  sample: 1.4.2
error:
  description:
    - Why the endpoint is down (connection error, TLS reason, unexpected status, failed
      body or JSON check); null when up.
  returned: always
  type: str
  sample: "TLS certificate verification failed: certificate has expired"
attempts:
  description: Attempts made (1 + the retries used).
  returned: always
  type: int
  sample: 1
status_code:
  description: HTTP status of the response; null without a response.
  returned: always
  type: int
  sample: 200
tls_version:
  description: Negotiated TLS version for C(https) URLs; null otherwise.
  returned: always
  type: str
  sample: TLSv1.3
cert_not_after:
  description: C(notAfter) of the verified server certificate; null when not verified.
  returned: always
  type: str
  sample: Nov 26 10:00:00 2027 GMT
json_returned:
  description:
    - The value of O(json_return) in the JSON body; null when the body is not JSON or
      has no such key.
  returned: when O(json_return) is set and a response arrived
  type: raw
  sample: [{labels: {alertname: ServiceDown, severity: critical}, state: firing}]
"""


# The probe itself lives in the package module_utils/kailash_probe_kinds/ (kind "http",
# its generic_http.py), shared with kailash_probes, which runs several probes in one module run.
from ansible.module_utils.kailash_probe import run_probe  # noqa: E402,F401 (for the tests)
from ansible.module_utils.kailash_probe_kinds import (  # noqa: E402,F401 (the tests use them)
    _MISSING,
    KINDS,
    json_lookup,
    judge,
    probe_main,
    values_match,
)

ARGUMENT_SPEC = KINDS["http"].spec
FACTS = KINDS["http"].facts
make_check = KINDS["http"].make_check


def main() -> None:
    probe_main("http")


if __name__ == "__main__":
    main()
