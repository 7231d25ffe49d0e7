"""Pure functions of the probe module_utils and modules (no servers)."""

from __future__ import annotations

import ssl

import pytest


@pytest.fixture(scope="module")
def utils(probe_code):
    return probe_code


def test_parse_info_and_facts(utils) -> None:
    resp = utils.kailash_resp
    info = resp.parse_info("# Server\r\nredis_version:7.0.15\r\n\r\n# Memory\r\n"
                           "used_memory:1048576\r\nmaxmemory:0\r\nrole:master\r\n"
                           "db0:keys=1,expires=0\r\n")
    assert info["redis_version"] == "7.0.15" and info["db0"] == "keys=1,expires=0"
    facts = resp.redis_facts(info)
    assert facts["memory_used"] == 1048576 and facts["maxmemory"] == 0
    assert facts["loading"] is False and facts["master_link_status"] is None
    assert utils.kailash_probe.ratio(facts["memory_used"], facts["maxmemory"]) is None
    assert utils.kailash_probe.ratio(1, 4) == 0.25


@pytest.mark.parametrize(("info", "ping_loading", "status", "reason"), [
    ({"role": "master"}, False, "up", None),
    ({"role": "master", "loading": "1", "loading_loaded_perc": "12.5"}, False, "degraded",
     "loading the dataset in memory (12.5% done)"),
    ({"role": "master", "async_loading": "1"}, False, "degraded", "loading the dataset in memory"),
    ({}, True, "degraded", "loading the dataset in memory"),
    ({"role": "slave", "master_host": "10.0.0.5", "master_port": "6379",
      "master_link_status": "down"}, False, "degraded",
     "replica: link to master 10.0.0.5:6379 is down"),
    ({"role": "slave", "master_host": "m", "master_port": "1", "master_link_status": "up",
      "master_sync_in_progress": "1"}, False, "degraded",
     "replica: full sync with master m:1 in progress"),
    ({"role": "slave", "master_link_status": "up", "master_sync_in_progress": "0"}, False,
     "up", None),
])
def test_redis_health(utils, info, ping_loading, status, reason) -> None:
    assert utils.kailash_resp.redis_health(info, ping_loading) == (status, reason)


def test_encode_command(utils) -> None:
    assert utils.kailash_resp.encode_command("AUTH", "u", "p\u00e9") == \
        b"*3\r\n$4\r\nAUTH\r\n$1\r\nu\r\n$3\r\np\xc3\xa9\r\n"


def test_run_probe_backoff_doubles_and_degraded_is_not_retried(utils) -> None:
    probe = utils.kailash_probe
    waits: list[float] = []
    answers = iter([probe.Outcome(probe.DOWN, error="refused")] * 3
                   + [probe.Outcome(probe.DEGRADED, error="loading")])
    res = probe.run_probe(lambda deadline: next(answers),
                          {"timeout": 1.0, "retries": 5, "backoff": 0.5},
                          facts={"role": None}, sleep=waits.append)
    assert waits == [0.5, 1.0, 2.0]
    assert res["attempts"] == 4 and res["status"] == "degraded" and res["error"] == "loading"
    assert res["changed"] is False and res["role"] is None and res["version"] is None


def test_an_exception_in_the_check_is_a_down_result(utils) -> None:
    probe = utils.kailash_probe

    def check(deadline):
        raise ConnectionResetError(104, "Connection reset by peer")

    res = probe.run_probe(check, {"timeout": 1.0, "retries": 0, "backoff": 0.0})
    assert res["status"] == "down" and res["error"] == "Connection reset by peer"


def test_describe_error(utils) -> None:
    describe = utils.kailash_probe.describe_error
    err = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] ...")
    err.verify_message = "certificate has expired"
    assert describe(err) == "TLS certificate verification failed: certificate has expired"
    assert describe(ConnectionRefusedError(111, "Connection refused")) == "connection refused"
    assert describe(TimeoutError("timed out")) == "timed out"
    assert describe(ValueError("bad\n  thing")) == "ValueError: bad thing"


def test_param_errors(utils) -> None:
    errors = utils.kailash_probe.probe_param_errors(
        {"timeout": 0.0, "retries": -1, "backoff": -0.1, "ca_path": "/nonexistent/ca.pem"})
    assert len(errors) == 4


def test_json_checks(utils) -> None:
    http = utils.kailash_http_probe
    doc = {"a": {"b": True, "n": 3}}
    assert http.json_lookup(doc, "a.b") is True
    assert http.json_lookup(doc, "a.c") is http._MISSING
    assert http.values_match(True, "true") and http.values_match(3, "3")
    assert not http.values_match("ok", "degraded")
