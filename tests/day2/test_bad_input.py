"""Bad input on the default stack (issue #11, items 3, 4 and 8): every case is refused before
any change, with a message that names the variable the user set, and the running stack is
untouched (same containers, same start times, same live config files).

Real parts: the default inventory and project (``kailash``), the real PostgreSQL, Redis and
NGINX binaries of the service images (the configs that pass the static checks are checked by
the servers themselves in throwaway containers), the real Docker networks and host routes.
The Kubernetes case renders ``inventories/production`` (no cluster is needed to render).

The cases run concurrently (they only read), once per session; ``reports/day2-bad-input.md``
gets the table (variable, value, refused before change, message).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from day2lib import PROJECT, STACK_DIR, container_state, containers, deploy, wait_all_healthy
from kailash_testlib import ROOT, run_playbook

WATCHED = ["postgresql-1", "redis-1", "chromadb-1", "chromadb-server-1", "edge-1", "nexus-api-1"]
LIVE_FILES = [
    "postgresql/postgresql.conf",
    "postgresql/pg_hba.conf",
    "redis/redis.conf",
    "edge/nginx.conf",
    "chromadb/nginx.conf",
    "compose.yml",
]


def _garbage_pem(tmp: Path) -> dict:
    """A certificate and key file that are PEM-shaped but hold no key material (base64 of
    "not a certificate" / "not a key"); the markers are assembled here so that no key-like
    block stands in the repository."""
    def pem(kind: str, body: str) -> str:
        dashes = "-" * 5
        return f"{dashes}BEGIN {kind}{dashes}\n{body}\n{dashes}END {kind}{dashes}\n"

    crt, key = tmp / "bad.crt", tmp / "bad.key"
    crt.write_text(pem("CERTIFICATE", "bm90IGEgY2VydGlmaWNhdGU="))
    key.write_text(pem("PRIVATE " + "KEY", "bm90IGEga2V5"))
    return {"edge_tls_cert_file": str(crt), "edge_tls_key_file": str(key)}


# id: (extra vars, text the message must contain, how it is caught)
CASES = {
    "pg-shared-buffers-lots": (
        {"postgresql_settings": {"shared_buffers": "lots"}},
        "postgresql_settings.shared_buffers",
        "static (PostgreSQL rules)",
    ),
    "pg-max-connections-negative": (
        {"postgresql_settings": {"max_connections": "-3"}},
        "postgresql_settings.max_connections",
        "static",
    ),
    "pg-unknown-setting": (
        {"postgresql_settings": {"shared_bufers": "1GB"}},
        "postgresql_settings.shared_bufers",
        "static",
    ),
    "pg-enum": (
        {"postgresql_settings": {"huge_pages": "maybe"}},
        "postgresql_settings.huge_pages",
        "static",
    ),
    "pg-timezone-binary": (
        {"postgresql_settings": {"timezone": "Mars/Olympus"}},
        "postgresql_settings.timezone",
        "postgres -C (server binary)",
    ),
    "pg-library-binary": (
        {"postgresql_settings": {"shared_preload_libraries": "no_such_ext"}},
        "postgresql_settings.shared_preload_libraries",
        "throwaway server start (server binary)",
    ),
    "redis-policy": (
        {"redis_settings": {"maxmemory-policy": "lru"}},
        "redis_settings.maxmemory-policy",
        "static",
    ),
    "redis-backlog-binary": (
        {"redis_settings": {"tcp-backlog": "-5"}},
        "redis_settings.tcp-backlog",
        "redis-server (server binary)",
    ),
    "redis-maxmemory": ({"redis_maxmemory": "lots"}, "redis_maxmemory", "static"),
    "redis-memory-1Ki": (
        {"redis_memory_request": "1Ki", "redis_memory_limit": "1Ki"},
        "redis_memory_limit must be at least 64Mi",
        "preflight",
    ),
    "edge-garbage-certificate": (None, "edge: the rendered", "nginx -t (server binary)"),
    "networks-overlap": (
        {
            "kailash_networks": {
                "edge": "10.223.0.0/24",
                "app": "10.223.0.0/24",
                "data": "10.223.2.0/24",
            }
        },
        "kailash_networks.edge (10.223.0.0/24) overlaps kailash_networks.app",
        "static",
    ),
    "networks-docker-bridge": (
        {
            "kailash_networks": {
                "edge": "10.225.0.0/24",
                "app": "10.225.1.0/24",
                "data": "DOCKER_BRIDGE",
            }
        },
        "overlaps Docker network bridge",
        "docker network inspect",
    ),
    "edge-tls-days-forever": (
        {"edge_tls_days": "forever"},
        "edge_tls_days is not a setting",
        "unknown-variable check",
    ),
    "image-source-registry": (
        {"kailash_image_source": "registry"},
        "kailash_image_source must be one of auto, pull, build",
        "role kailash",
    ),
    "misspelt-memory-limit": (
        {"redis_memory_limt": "1Gi"},
        "did you mean redis_memory_limit",
        "unknown-variable check",
    ),
}


def _bridge_subnet() -> str:
    out = subprocess.run(
        ["docker", "network", "inspect", "bridge", "--format", "{{(index .IPAM.Config 0).Subnet}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return out


def _snapshot() -> dict:
    states = {name: container_state(f"{PROJECT}-{name}") for name in WATCHED}
    files = {}
    for rel in LIVE_FILES:
        path = STACK_DIR / rel
        files[rel] = hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None
    return {"containers": states, "files": files}


@pytest.fixture(scope="module")
def outcomes(default_stack, tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("bad-input")
    cases = {}
    for case, (extra, needle, how) in CASES.items():
        if case == "edge-garbage-certificate":
            extra = _garbage_pem(tmp)
        if case == "networks-docker-bridge":
            extra = json.loads(json.dumps(extra).replace("DOCKER_BRIDGE", _bridge_subnet()))
        cases[case] = (extra, needle, how)
    # a settled stack: a container restarted by an earlier suite may still be "starting"
    assert wait_all_healthy(), containers()
    before = _snapshot()
    with ThreadPoolExecutor(max_workers=3) as pool:
        runs = dict(zip(cases, pool.map(lambda c: deploy(extra=cases[c][0]), cases), strict=True))
    after = _snapshot()
    rows = [
        "| case | variable = value | caught by | rc | refused before change | message |",
        "|---|---|---|---|---|---|",
    ]
    for case, (extra, _needle, how) in cases.items():
        # the refusal as Ansible prints it after fatal: (folded lines joined)
        flat = " ".join(runs[case].output.split("fatal:", 1)[-1].split())
        msg = flat.split(" msg: ", 1)[-1].split(" PLAY RECAP", 1)[0].strip("'")
        msg = msg.replace("|", "/")
        rows.append(
            f"| {case} | `{json.dumps(extra)}` | {how} | {runs[case].rc} | "
            f"{'yes' if before == after else 'NO'} | {msg[:400]} |"
        )
    report = ROOT / "reports" / "day2-bad-input.md"
    report.parent.mkdir(exist_ok=True)
    report.write_text("\n".join(rows) + "\n")
    return {"runs": runs, "cases": cases, "before": before, "after": after}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_refused_naming_the_variable(outcomes: dict, case: str) -> None:
    run = outcomes["runs"][case]
    needle = outcomes["cases"][case][1]
    assert run.rc != 0, run.output[-3000:]
    # the message is folded over lines by Ansible's YAML output: compare without the folds
    flat = " ".join(run.output.split())
    assert needle in flat, run.output[-3000:]
    assert "Traceback" not in run.output
    # nothing changed: refusals come before any write
    assert run.recap().get("changed", 0) == 0, run.output[-3000:]


def test_the_running_stack_is_untouched_by_every_refusal(outcomes: dict) -> None:
    assert outcomes["after"]["files"] == outcomes["before"]["files"]
    assert outcomes["after"]["containers"] == outcomes["before"]["containers"]
    assert all(s["health"] == "healthy" for s in outcomes["after"]["containers"].values())


def test_server_binary_cases_show_the_servers_own_message(outcomes: dict) -> None:
    """The refusals the static checks cannot see quote the server."""
    flat = {case: " ".join(outcomes["runs"][case].output.split()) for case in outcomes["runs"]}
    assert 'invalid value for parameter "TimeZone": "Mars/Olympus"' in flat["pg-timezone-binary"]
    assert 'could not access file "no_such_ext"' in flat["pg-library-binary"]
    assert "FATAL CONFIG FILE ERROR" in flat["redis-backlog-binary"]
    assert "[emerg]" in flat["edge-garbage-certificate"]
    assert "nothing was changed" in flat["pg-timezone-binary"]


def test_kubernetes_render_refuses_the_same_values() -> None:
    """The production render (no cluster needed) refuses a bad PostgreSQL and Redis setting
    before it writes the tree: the committed tree stays as it is."""
    tree = ROOT / "k8s" / "production"
    before = {p: p.read_bytes() for p in tree.rglob("*") if p.is_file()}
    for extra, needle in [
        ({"postgresql_settings": {"shared_buffers": "lots"}}, "postgresql_settings.shared_buffers"),
        ({"redis_settings": {"maxmemory-policy": "lru"}}, "redis_settings.maxmemory-policy"),
        (
            {
                "kailash_networks": {
                    "edge": "10.9.0.0/16",
                    "app": "10.9.1.0/24",
                    "data": "10.9.2.0/24",
                }
            },
            "kailash_networks.edge (10.9.0.0/16) overlaps",
        ),
    ]:
        run = run_playbook(
            "site.yml", "--tags", "render", extra=extra, inventory="inventories/production"
        )
        assert run.rc != 0, run.output[-3000:]
        assert needle in " ".join(run.output.split()), run.output[-3000:]
    after = {p: p.read_bytes() for p in tree.rglob("*") if p.is_file()}
    assert after == before
