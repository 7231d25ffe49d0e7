"""The http probe kind (``kailash_http_probe``): any HTTP(S) endpoint, judged by its
status, its body and the keys of its JSON body; no driver."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from ansible.module_utils.kailash_probe import (
    DOWN,
    UP,
    Deadline,
    HttpAnswer,
    HttpClient,
    Outcome,
    probe_argument_spec,
)

from .common import Kind, _url_errors

NAME = "http"

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


def _http_errors(params: Mapping[str, Any]) -> list[str]:
    errors = _url_errors(params, "url", ("http", "https"), "http(s)://host[:port]/path")
    if params["json_value"] is not None and not params["json_key"]:
        errors.append("json_value needs json_key")
    if not params["status_code"]:
        errors.append("status_code must list at least one status")
    return errors


KIND = Kind(HTTP_SPEC, HTTP_FACTS, http_check, _http_errors)
