"""The chromadb probe kind (``kailash_chromadb_probe``): the v2 API's heartbeat and
version over HTTP(S), no driver."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from http.client import HTTPException
from typing import Any

from ansible.module_utils.kailash_probe import (
    DEGRADED,
    DOWN,
    UP,
    Deadline,
    HttpClient,
    Outcome,
    describe_error,
    http_failure,
    probe_argument_spec,
)

from .common import Kind, _url_errors

NAME = "chromadb"

CHROMA_SPEC = probe_argument_spec({
    "url": {"type": "str", "default": "http://localhost:8000"},
    "token": {"type": "str", "no_log": True},
    "token_header": {"type": "str", "default": "authorization",
                     "choices": ["authorization", "x-chroma-token"], "no_log": False},
}, tls=True)

CHROMA_FACTS: dict[str, Any] = {"heartbeat_ns": None, "status_code": None}

HEARTBEAT = "/api/v2/heartbeat"
VERSION = "/api/v2/version"


def chromadb_check(params: dict[str, Any]) -> Callable[[Deadline], Outcome]:
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


def _chromadb_errors(params: Mapping[str, Any]) -> list[str]:
    return _url_errors(params, "url", ("http", "https"), "http(s)://host[:port]")


KIND = Kind(CHROMA_SPEC, CHROMA_FACTS, chromadb_check, _chromadb_errors)
