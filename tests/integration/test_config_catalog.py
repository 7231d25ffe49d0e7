"""The static PostgreSQL setting check (plugins/filter/config_check.py, used by the Kubernetes
render, which has no server to ask) agrees with PostgreSQL 15 itself: every value below is
written to a postgresql.conf and parsed by the real server binary (``postgres -C``) of the
image the dev stack runs; the verdicts must match.

Real parts: the kailash/postgresql:15-bookworm image (built by ``make deploy`` / the dev stack
tests before this module), one throwaway container, no network.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from kailash_testlib import ROOT

IMAGE = "kailash/postgresql:15-bookworm"
CASES = [
    ("shared_buffers", "1GB"),
    ("shared_buffers", "lots"),
    ("shared_buffers", "128"),
    ("shared_buffers", "8kB"),
    ("shared_buffers", "1.5GB"),
    ("shared_buffers", "1XB"),
    ("work_mem", "4MB"),
    ("work_mem", "-1"),
    ("work_mem", "63"),
    ("max_connections", "-3"),
    ("max_connections", "200"),
    ("max_connections", "262144"),
    ("checkpoint_timeout", "5min"),
    ("checkpoint_timeout", "10"),
    ("checkpoint_timeout", "1d"),
    ("checkpoint_timeout", "2d"),
    ("random_page_cost", "1.1"),
    ("random_page_cost", "fast"),
    ("random_page_cost", "-1"),
    ("jit", "off"),
    ("jit", "of"),
    ("jit", "o"),
    ("jit", "maybe"),
    ("jit", "TRUE"),
    ("huge_pages", "try"),
    ("huge_pages", "TRY"),
    ("huge_pages", "maybe"),
    ("wal_level", "replica"),
    ("wal_level", "archive"),
    ("log_min_duration_statement", "250ms"),
    ("log_min_duration_statement", "-1"),
    ("effective_io_concurrency", "1001"),
    ("shared_bufers", "1GB"),
    ("autovacuum_vacuum_scale_factor", "0.05"),
    ("default_statistics_target", "0"),
    ("statement_timeout", "1h"),
]


def _static():
    spec = importlib.util.spec_from_file_location(
        "kailash_filter_config_check_it", ROOT / "plugins" / "filter" / "config_check.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.usefixtures("docker_available")
def test_static_verdicts_match_postgres_own_parser() -> None:
    if subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True).returncode:
        pytest.fail(f"{IMAGE} is not built: run the dev stack tests first (make test does)")
    lines = "".join(f"{name} = '{value}'\n" for name, value in CASES)
    script = (
        'i=0; while IFS= read -r line; do i=$((i+1)); echo "$line" > /tmp/c.conf; '
        "postgres -D /tmp -c config_file=/tmp/c.conf -C data_directory >/dev/null 2>&1; "
        'echo "$i $?"; done'
    )
    proc = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "-i",
            "--network",
            "none",
            "--user",
            "70:70",
            "--entrypoint",
            "sh",
            IMAGE,
            "-c",
            script,
        ],
        input=lines,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    server = {
        int(i) - 1: rc == "0"
        for i, rc in (row.split() for row in proc.stdout.split("\n") if row.strip())
    }
    assert len(server) == len(CASES), proc.stdout
    check = _static()
    disagreements = []
    for index, (name, value) in enumerate(CASES):
        static_ok = not check.kailash_pg_settings_errors({name: value})
        if static_ok != server[index]:
            disagreements.append((name, value, "server accepts" if server[index] else "refuses"))
    assert not disagreements, disagreements
    # both sides refuse something, or the comparison proves nothing
    assert 0 < sum(server.values()) < len(CASES)
