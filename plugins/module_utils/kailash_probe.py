"""Shared code of the kailash_*_probe modules.

A probe is a function ``check(deadline) -> Outcome`` that talks to one service.
``run_probe`` runs it with a hard per-attempt timeout (a worker thread joined for
exactly ``timeout`` seconds, on top of the socket timeouts the probe sets from the
deadline), retries a ``down`` answer with exponential backoff and turns the outcome
into the module result: ``status`` (up / degraded / down), ``latency_ms``,
``version``, ``error``, ``attempts`` plus service specifics. A down service is data,
never an exception: the modules fail only for bad arguments or a missing driver.

Imported by the modules as ``ansible.module_utils.kailash_probe`` (ansible.cfg
``module_utils = plugins/module_utils``); standard library only.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.client import HTTPConnection, HTTPSConnection
from typing import Any
from urllib.parse import urlsplit

UP = "up"
DEGRADED = "degraded"
DOWN = "down"

# Shared options; documented in plugins/doc_fragments/kailash_probe.py.
PROBE_ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "timeout": {"type": "float", "default": 5.0},
    "retries": {"type": "int", "default": 0},
    "backoff": {"type": "float", "default": 0.5},
}
TLS_ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "validate_certs": {"type": "bool", "default": True},
    "ca_path": {"type": "path"},
}


def probe_argument_spec(specific: Mapping[str, dict[str, Any]],
                        tls: bool = False) -> dict[str, dict[str, Any]]:
    """The module's own options plus the shared ones (copies, safe to modify)."""
    spec = {name: dict(opts) for name, opts in specific.items()}
    spec.update({name: dict(opts) for name, opts in PROBE_ARGUMENT_SPEC.items()})
    if tls:
        spec.update({name: dict(opts) for name, opts in TLS_ARGUMENT_SPEC.items()})
    return spec


def probe_param_errors(params: Mapping[str, Any]) -> list[str]:
    """Messages for shared options out of range (the module fails with them)."""
    errors = []
    if not params["timeout"] > 0:
        errors.append(f"timeout must be > 0 seconds, got {params['timeout']!r}")
    if params["retries"] < 0:
        errors.append(f"retries must be >= 0, got {params['retries']!r}")
    if params["backoff"] < 0:
        errors.append(f"backoff must be >= 0 seconds, got {params['backoff']!r}")
    ca_path = params.get("ca_path")
    if ca_path and not os.path.exists(ca_path):
        errors.append(f"ca_path {ca_path!r} does not exist")
    return errors


class ProbeTimeout(TimeoutError):
    """The attempt's deadline has passed."""


class Deadline:
    """A point in time (monotonic clock) that every step of one attempt respects."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expires = time.monotonic() + seconds

    def remaining(self) -> float:
        """Seconds left; raises ProbeTimeout once the deadline has passed."""
        left = self.expires - time.monotonic()
        if left <= 0:
            raise ProbeTimeout(f"timed out after {self.seconds:g} s")
        return left

    def arm(self, sock: socket.socket) -> None:
        """Let the next blocking operation on ``sock`` wait no longer than the deadline."""
        sock.settimeout(self.remaining())


@dataclass
class Outcome:
    """What one attempt found out."""

    status: str
    version: str | None = None
    error: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def describe_error(exc: BaseException, timeout: float | None = None) -> str:
    """A one-line, human-readable reason for a failed attempt (TLS reason included)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or exc.reason or str(exc)
        return f"TLS certificate verification failed: {reason}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or _one_line(str(exc))}"
    if isinstance(exc, ProbeTimeout):
        return str(exc)
    if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError
        text = _one_line(str(exc))
        plain = "timed out" if timeout is None else f"timed out after {timeout:g} s"
        return plain if text in ("", "timed out") else f"{plain}: {text}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host: {exc.strerror or exc}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = _one_line(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def call_with_deadline(check: Callable[[Deadline], Outcome], timeout: float) -> Outcome:
    """Run ``check`` and return its outcome, or ``down`` after exactly ``timeout`` seconds.

    The check runs in a daemon thread: a driver that ignores its own timeouts (or a
    server that trickles bytes) cannot hold the module past the deadline; the thread
    is abandoned and dies with the module process.
    """
    deadline = Deadline(timeout)
    box: list[Outcome] = []

    def work() -> None:
        try:
            box.append(check(deadline))
        except Exception as exc:  # any failure of the service is data, not a crash
            box.append(Outcome(DOWN, error=describe_error(exc, timeout)))

    worker = threading.Thread(target=work, name="kailash-probe", daemon=True)
    worker.start()
    worker.join(timeout)
    if box:
        return box[0]
    return Outcome(DOWN, error=f"timed out after {timeout:g} s without a complete answer")


def run_probe(check: Callable[[Deadline], Outcome], params: Mapping[str, Any],
              facts: Mapping[str, Any] | None = None,
              sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Attempts until one is not ``down`` or ``retries`` are used up; the module result.

    ``facts`` holds every service-specific key with its value for a down service
    (usually None), so that a result always has the same keys.
    """
    timeout = float(params["timeout"])
    retries = int(params["retries"])
    backoff = float(params["backoff"])
    attempt = 0
    while True:
        attempt += 1
        started = time.perf_counter()
        outcome = call_with_deadline(check, timeout)
        latency = time.perf_counter() - started
        if outcome.status != DOWN or attempt > retries:
            break
        sleep(backoff * 2 ** (attempt - 1))
    result: dict[str, Any] = dict(facts or {})
    result.update(outcome.facts)
    result.update(
        changed=False,
        status=outcome.status,
        latency_ms=round(latency * 1000.0, 3),
        version=outcome.version,
        error=outcome.error,
        attempts=attempt,
    )
    return result


def open_tcp(host: str, port: int, deadline: Deadline) -> socket.socket:
    """A connected TCP socket whose operations are bounded by the deadline."""
    sock = socket.create_connection((host, port), timeout=deadline.remaining())
    deadline.arm(sock)
    return sock


def ssl_context(validate_certs: bool, ca_path: str | None) -> ssl.SSLContext:
    """Client TLS context: system CAs, or only ``ca_path`` (file or directory)."""
    if not validate_certs:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    if ca_path and os.path.isdir(ca_path):
        return ssl.create_default_context(capath=ca_path)
    if ca_path:
        return ssl.create_default_context(cafile=ca_path)
    return ssl.create_default_context()


def ratio(used: int | None, limit: int | None) -> float | None:
    """used / limit rounded to 4 places; None when either is unknown or limit is 0."""
    if used is None or not limit:
        return None
    return round(used / limit, 4)


@dataclass
class HttpAnswer:
    """One HTTP response, body cut at the client's limit."""

    status: int
    reason: str
    headers: dict[str, str]
    body: bytes
    tls_version: str | None = None
    cert_not_after: str | None = None

    def json(self) -> Any:
        """The body parsed as JSON; ValueError when it is not JSON."""
        return json.loads(self.body.decode("utf-8"))


class HttpClient:
    """Requests to one http(s) origin over one keep-alive connection, within a deadline."""

    def __init__(self, base_url: str, deadline: Deadline, validate_certs: bool = True,
                 ca_path: str | None = None, headers: Mapping[str, str] | None = None,
                 max_body: int = 1 << 20) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.tls = parts.scheme == "https"
        self.base_path = parts.path.rstrip("/")
        self.query = parts.query
        self.deadline = deadline
        self.headers = dict(headers or {})
        self.max_body = max_body
        port = parts.port or (443 if self.tls else 80)
        self.conn: HTTPConnection
        if self.tls:
            self.conn = HTTPSConnection(parts.hostname, port, timeout=deadline.remaining(),
                                        context=ssl_context(validate_certs, ca_path))
        else:
            self.conn = HTTPConnection(parts.hostname, port, timeout=deadline.remaining())

    def request(self, path: str = "", method: str = "GET") -> HttpAnswer:
        """``path`` is appended to the base URL's path ('' requests the base URL itself)."""
        target = (self.base_path + path) or "/"
        if self.query and not path:
            target += "?" + self.query
        if self.conn.sock is None:
            self.conn.timeout = self.deadline.remaining()
            self.conn.connect()  # TCP and TLS handshake, bounded by the deadline
        # keep the socket: for a response that closes the connection (HTTP/1.0,
        # Connection: close) getresponse() drops conn.sock, the body still comes
        sock = self.conn.sock
        self.deadline.arm(sock)
        self.conn.request(method, target, headers=self.headers)
        self.deadline.arm(sock)
        resp = self.conn.getresponse()
        body = b""
        if method != "HEAD":
            self.deadline.arm(sock)
            body = resp.read(self.max_body)
        if not resp.isclosed():
            resp.close()  # drops the connection when the body was cut
        tls_version = cert_not_after = None
        sock = self.conn.sock
        if isinstance(sock, ssl.SSLSocket):
            tls_version = sock.version()
            cert = sock.getpeercert()  # an empty dict unless the certificate was verified
            cert_not_after = cert.get("notAfter") if cert else None
        return HttpAnswer(resp.status, resp.reason, {k.lower(): v for k, v in resp.getheaders()},
                          body, tls_version, cert_not_after)

    def close(self) -> None:
        self.conn.close()


def http_failure(answer: HttpAnswer, what: str) -> str:
    """Error text for an unexpected HTTP status, naming auth failures as such."""
    excerpt = _one_line(answer.body[:200].decode("utf-8", "replace"))
    text = f"{what} answered HTTP {answer.status} {answer.reason}".rstrip()
    if answer.status in (401, 403):
        text = f"authentication failed: {text}"
    return f"{text}: {excerpt}" if excerpt else text

