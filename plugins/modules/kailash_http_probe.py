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
"""

import contextlib  # noqa: E402
import json  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.kailash_probe import (  # noqa: E402
    DOWN,
    UP,
    Deadline,
    HttpAnswer,
    HttpClient,
    Outcome,
    probe_argument_spec,
    probe_param_errors,
    run_probe,
)

ARGUMENT_SPEC = probe_argument_spec({
    "url": {"type": "str", "required": True},
    "method": {"type": "str", "default": "GET", "choices": ["GET", "HEAD"]},
    "status_code": {"type": "list", "elements": "int", "default": [200]},
    "body_contains": {"type": "str"},
    "json_key": {"type": "str", "no_log": False},
    "json_value": {"type": "raw"},
    "version_key": {"type": "str", "default": "version", "no_log": False},
    "headers": {"type": "dict", "default": {}},
    "bearer_token": {"type": "str", "no_log": True},
}, tls=True)

FACTS: dict[str, Any] = {"status_code": None, "tls_version": None, "cert_not_after": None}

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


def make_check(params: dict[str, Any]) -> Callable[[Deadline], Outcome]:
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
        return Outcome(DOWN if error else UP, version=version, error=error, facts=facts)

    return check


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    errors = probe_param_errors(module.params)
    url = urlsplit(module.params["url"])
    if url.scheme not in ("http", "https") or not url.hostname:
        errors.append(f"url must be http(s)://host[:port]/path, got {module.params['url']!r}")
    if module.params["json_value"] is not None and not module.params["json_key"]:
        errors.append("json_value needs json_key")
    if not module.params["status_code"]:
        errors.append("status_code must list at least one status")
    if errors:
        module.fail_json(msg="; ".join(errors))
    module.exit_json(**run_probe(make_check(module.params), module.params, FACTS))


if __name__ == "__main__":
    main()
