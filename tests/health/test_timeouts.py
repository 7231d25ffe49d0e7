"""Every probe against a TCP server that accepts connections and never answers: the
module must report ``down`` after its own ``timeout``, not later.

The bound [timeout, timeout + 0.5 s] is on the module's behaviour (connect + handshake
+ query under one deadline), measured in-process around the probe and, through Ansible,
as the module's reported latency_ms; it is not a speed benchmark.
"""

from __future__ import annotations

import time

import pytest

from harness import run_module

TIMEOUT = 1.0
SLACK = 0.5

CASES = {
    "kailash_redis_probe": lambda port: {"host": "127.0.0.1", "port": port, "password": "x"},
    "kailash_postgresql_probe": lambda port: {"host": "127.0.0.1", "port": port,
                                              "password": "x"},
    "kailash_neo4j_probe": lambda port: {"uri": f"bolt://127.0.0.1:{port}", "password": "x"},
    "kailash_chromadb_probe": lambda port: {"url": f"http://127.0.0.1:{port}"},
    "kailash_http_probe": lambda port: {"url": f"http://127.0.0.1:{port}/health"},
    "kailash_http_probe/https": lambda port: {"url": f"https://127.0.0.1:{port}/health"},
}


def params(module, extra: dict) -> dict:
    """Module options with their defaults, as AnsibleModule would hand them over."""
    values = {name: spec.get("default") for name, spec in module.ARGUMENT_SPEC.items()}
    values.update(extra)
    return values


@pytest.mark.parametrize("case", list(CASES))
def test_silent_server_is_down_after_timeout_in_process(case: str, silent, probe_code) -> None:
    module = getattr(probe_code, case.split("/")[0])
    values = params(module, {**CASES[case](silent.port), "timeout": TIMEOUT})
    started = time.perf_counter()
    res = module.run_probe(module.make_check(values), values, module.FACTS)
    elapsed = time.perf_counter() - started
    assert res["status"] == "down", res
    assert "timed out" in res["error"], res
    assert TIMEOUT <= elapsed <= TIMEOUT + SLACK, f"{case}: {elapsed:.3f} s"


@pytest.mark.parametrize("case", list(CASES))
def test_silent_server_is_down_after_timeout_via_ansible(case: str, silent) -> None:
    run = run_module(case.split("/")[0], {**CASES[case](silent.port), "timeout": TIMEOUT})
    res = run.result
    assert res["status"] == "down" and res["changed"] is False, res
    assert res.get("failed") is not True
    assert "timed out" in res["error"], res
    assert TIMEOUT * 1000 <= res["latency_ms"] <= (TIMEOUT + SLACK) * 1000, res
    assert run.elapsed >= TIMEOUT


def test_retries_back_off_exponentially(silent, probe_code) -> None:
    """3 attempts of 0.3 s with waits of 0.2 s and 0.4 s between them: 1.5 s in all."""
    module = probe_code.kailash_redis_probe
    values = params(module, {"host": "127.0.0.1", "port": silent.port, "timeout": 0.3,
                             "retries": 2, "backoff": 0.2})
    started = time.perf_counter()
    res = module.run_probe(module.make_check(values), values, module.FACTS)
    elapsed = time.perf_counter() - started
    assert res["status"] == "down" and res["attempts"] == 3, res
    assert 1.5 <= elapsed <= 1.5 + SLACK, elapsed


def test_a_server_that_trickles_bytes_is_cut_at_the_timeout(probe_code) -> None:
    """An HTTP server that sends its answer one byte every 0.2 s: per-read socket
    timeouts alone would wait for ever; the attempt's deadline ends it."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()

    def trickle() -> None:
        conn, _ = listener.accept()
        conn.recv(4096)
        for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100000:
            if stop.wait(0.2):
                break
            try:
                conn.sendall(bytes([byte]))
            except OSError:
                break
        conn.close()

    threading.Thread(target=trickle, daemon=True).start()
    module = probe_code.kailash_http_probe
    values = params(module, {"url": f"http://127.0.0.1:{port}/", "timeout": TIMEOUT})
    try:
        started = time.perf_counter()
        res = module.run_probe(module.make_check(values), values, module.FACTS)
        elapsed = time.perf_counter() - started
    finally:
        stop.set()
        listener.close()
    assert res["status"] == "down" and "timed out" in res["error"], res
    assert TIMEOUT <= elapsed <= TIMEOUT + SLACK, elapsed

