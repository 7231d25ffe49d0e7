"""The documented backup, restore and drill playbooks work on the default inventory with no
extra variables (issue #11, item 1: they failed with "kailash_backup_services must be a
subset of postgresql, redis, chromadb, neo4j" because kailash_services also names the app
and the edge).

Real parts: the default stack (``kailash``): real PostgreSQL, Redis and ChromaDB, the backup
core run by the playbooks exactly as docs/backup-restore.md says.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from day2lib import PROJECT, containers, deploy, docker, psql, secrets, wait_all_healthy

MARKER = "day2-restore-marker"


def redis(*args: str) -> str:
    return docker(
        "exec",
        "-e",
        f"REDISCLI_AUTH={secrets()['redis_admin_password']}",
        f"{PROJECT}-redis-1",
        "redis-cli",
        "--no-auth-warning",
        "--user",
        "kailash-admin",
        *args,
    )


def test_backup_drill_and_restore_run_on_the_default_inventory(default_stack) -> None:
    psql(
        "CREATE TABLE IF NOT EXISTS day2_marker (v text); TRUNCATE day2_marker;"
        f"INSERT INTO day2_marker VALUES ('{MARKER}')"
    )
    redis("SET", "day2:marker", MARKER)

    backup = deploy(playbook="playbooks/backup.yml")
    assert backup.rc == 0, backup.output[-4000:]
    flat = " ".join(backup.output.split())
    # every datastore of kailash_services, and nothing else (no app, no edge)
    assert "(chromadb, postgresql, redis; skipped, not deployed: neo4j)" in flat, flat[-2000:]

    drill = deploy(playbook="playbooks/restore_drill.yml")
    assert drill.rc == 0, drill.output[-4000:]

    # a day-2 accident, then the documented restore of the latest set
    psql("DELETE FROM day2_marker")
    redis("DEL", "day2:marker")
    restore = deploy(playbook="playbooks/restore.yml")
    assert restore.rc == 0, restore.output[-4000:]
    assert psql("SELECT v FROM day2_marker") == MARKER
    assert redis("GET", "day2:marker") == MARKER
    # the restore restarted Redis and Chroma: their container healthchecks catch up
    assert wait_all_healthy(), json.dumps(containers())[:2000]
    psql("DROP TABLE day2_marker")
    redis("DEL", "day2:marker")


def test_restore_probes_each_restored_service_with_its_own_settings(default_stack) -> None:
    """The restore's health probe is the service's own (roles/<svc>/vars/health_probe.yml,
    issue #12: the playbook names no service) with the user's settings: a ChromaDB token that
    is not the gate's fails the restore naming ChromaDB, after the counts matched."""
    backup = deploy(
        playbook="playbooks/backup.yml", extra={"kailash_backup_services": ["chromadb"]}
    )
    assert backup.rc == 0, backup.output[-4000:]
    restore = deploy(
        playbook="playbooks/restore.yml",
        extra={
            "kailash_backup_services": ["chromadb"],
            "chromadb_token": "not-the-token",
            "kailash_backup_probe_retries": 0,
        },
    )
    flat = " ".join(restore.output.split())
    assert restore.rc != 0, flat[-3000:]
    assert (
        "(every content count matches the manifest), but not healthy:"
        " chromadb: degraded, authentication failed"
        in flat
    ), flat[-3000:]
    assert "not-the-token" not in restore.output
    # the documented restore, with the stored token, is healthy again
    again = deploy(
        playbook="playbooks/restore.yml", extra={"kailash_backup_services": ["chromadb"]}
    )
    assert again.rc == 0, again.output[-4000:]
    assert "services healthy (chromadb)" in " ".join(again.output.split())
    # the restores restarted the Chroma server: its container healthcheck catches up (the
    # next suites compare container states and need a settled stack)
    assert wait_all_healthy(), json.dumps(containers())[:2000]


def test_bad_backup_settings_fail_naming_the_variable_before_any_change() -> None:
    """Checked by roles/kailash_backup before the backup core runs: no set is written."""
    root = Path("/var/backups/kailash") / PROJECT  # kailash_backup_root's default
    sets_before = sorted(os.listdir(root)) if root.is_dir() else []
    port = deploy(playbook="playbooks/backup.yml", extra={"redis_port": "x"})
    assert port.rc != 0
    assert "Not a TCP port (1-65535): redis_port=x" in " ".join(port.output.split()), port.output[
        -2000:
    ]
    assert "Back up into a new set" not in port.output
    svc = deploy(
        playbook="playbooks/backup.yml", extra={"kailash_backup_services": ["redis", "nexus"]}
    )
    assert svc.rc != 0
    assert "nexus declares none" in " ".join(svc.output.split()), svc.output[-2000:]
    assert "Back up into a new set" not in svc.output
    assert (sorted(os.listdir(root)) if root.is_dir() else []) == sets_before
