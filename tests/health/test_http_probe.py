"""kailash_http_probe against HTTP and HTTPS servers started here, with certificates made
here: a test CA, another CA, and server certificates valid, expired, from the other CA,
and for another host name."""

from __future__ import annotations

import services
from harness import run_module

MODULE = "kailash_http_probe"


def probe(url: str, check: bool = False, **extra) -> dict:
    return run_module(MODULE, {"url": url, "timeout": 3, **extra}, check=check).result


def test_https_with_ca_file(web, pki) -> None:
    res = probe(web["valid"].url("/health"), ca_path=str(pki.ca_path), json_key="checks.db.ok",
                json_value=True, body_contains='"status"')
    assert res["status"] == "up", res
    assert res["error"] is None and res["changed"] is False
    assert res["version"] == "2.3.4" and res["status_code"] == 200
    assert res["tls_version"].startswith("TLSv1.")
    assert res["cert_not_after"].endswith("GMT")


def test_check_mode_and_hostname_localhost(web, pki) -> None:
    res = probe(web["valid"].url("/health", host="localhost"), check=True,
                ca_path=str(pki.ca_path))
    assert res["status"] == "up" and res["changed"] is False, res


def test_expired_certificate_is_down_with_tls_reason(web, pki) -> None:
    res = probe(web["expired"].url("/health"), ca_path=str(pki.ca_path))
    assert res["status"] == "down", res
    assert res["error"] == "TLS certificate verification failed: certificate has expired", res
    assert res["status_code"] is None


def test_unknown_ca_is_down_with_tls_reason(web, pki) -> None:
    res = probe(web["other_ca"].url("/health"), ca_path=str(pki.ca_path))
    assert res["status"] == "down", res
    assert res["error"].startswith("TLS certificate verification failed: unable to get local "
                                   "issuer certificate"), res


def test_hostname_mismatch_is_down_with_tls_reason(web, pki) -> None:
    res = probe(web["wrong_host"].url("/health"), ca_path=str(pki.ca_path))
    assert res["status"] == "down", res
    assert res["error"].startswith("TLS certificate verification failed:"), res
    assert "mismatch" in res["error"], res


def test_validate_certs_false_accepts_expired(web) -> None:
    res = probe(web["expired"].url("/health"), validate_certs=False)
    assert res["status"] == "up", res
    assert res["cert_not_after"] is None  # not verified, so not reported


def test_system_store_does_not_know_the_test_ca(web) -> None:
    res = probe(web["valid"].url("/health"))
    assert res["status"] == "down" and "unable to get local issuer" in res["error"], res


def test_unexpected_status_and_accepted_status(web) -> None:
    res = probe(web["http"].url("/unhealthy"))
    assert res["status"] == "down" and res["status_code"] == 503, res
    assert res["error"] == "HTTP 503 Service Unavailable (expected 200)"
    assert res["version"] == "2.3.4"
    res = probe(web["http"].url("/unhealthy"), status_code=[200, 503])
    assert res["status"] == "up", res


def test_body_and_json_checks(web) -> None:
    assert probe(web["http"].url("/text"), body_contains="systems go")["status"] == "up"
    res = probe(web["http"].url("/text"), body_contains="healthy")
    assert res["status"] == "down" and "does not contain 'healthy'" in res["error"], res
    res = probe(web["http"].url("/text"), json_key="status")
    assert res["status"] == "down" and res["error"] == "the body is not JSON", res
    res = probe(web["http"].url("/health"), json_key="status", json_value="degraded")
    assert res["status"] == "down", res
    assert res["error"] == 'JSON status is "ok", expected "degraded"'
    res = probe(web["http"].url("/health"), json_key="checks.cache")
    assert res["error"] == "the JSON body has no key 'checks.cache'", res


def test_json_return_gives_back_what_the_answer_holds(web) -> None:
    """json_return: the value at a key of the JSON answer comes back (health.yml reads
    Prometheus's alerts this way, from the probe's own request)."""
    res = probe(web["http"].url("/health"), json_key="status", json_return="checks")
    assert res["status"] == "up" and res["json_returned"] == {"db": {"ok": True}}, res
    res = probe(web["http"].url("/health"), json_return="checks.nothing")
    assert res["status"] == "up" and res["json_returned"] is None, res
    res = probe(web["http"].url("/text"), json_return="checks")
    assert res["status"] == "up" and res["json_returned"] is None, res
    res = probe(web["http"].url("/health"))
    assert "json_returned" not in res, res  # only when asked for


def test_head_request(web) -> None:
    res = probe(web["http"].url("/health"), method="HEAD")
    assert res["status"] == "up" and res["version"] is None, res


def test_refused_is_down(web) -> None:
    port = services.free_port()
    res = probe(f"http://127.0.0.1:{port}/health", retries=2, backoff=0.05)
    assert res["status"] == "down" and res["error"] == "connection refused", res
    assert res["attempts"] == 3


def test_bad_arguments_fail_the_task() -> None:
    res = probe("ftp://example.invalid/")
    assert res.get("failed") is True and "http(s)://" in res["msg"], res
    res = probe("http://127.0.0.1/", json_value="x")
    assert res.get("failed") is True and res["msg"] == "json_value needs json_key", res
    res = probe("http://127.0.0.1/", timeout=0, retries=-1)
    assert res.get("failed") is True
    assert "timeout must be > 0" in res["msg"] and "retries must be >= 0" in res["msg"]


def test_http10_server_that_closes_the_connection() -> None:
    """Python's http.server answers HTTP/1.0 and closes the connection: http.client then
    drops its socket before the body is read (regression: the probe crashed with
    "'NoneType' object has no attribute 'settimeout'")."""
    import http.server
    import json
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            body = json.dumps({"status": "ready"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        res = probe(f"http://127.0.0.1:{server.server_address[1]}/readyz",
                    json_key="status", json_value="ready")
    finally:
        server.shutdown()
    assert res["status"] == "up", res
    assert res["status_code"] == 200
