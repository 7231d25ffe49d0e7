"""Helpers of the day-2 tests (issue #11): everything here goes through the **default inventory and
project**, the way a user runs things: ``ansible-playbook -i inventories/local ...`` with no
test-only variables, Compose project ``kailash``, files in /opt/kailash/kailash, secrets in
the repository's ``.secrets/local``.

The ``default_stack`` fixture deploys that stack once per session (or converges the one
that is already there) and leaves it running at the end: it is what ``make deploy`` gives.
Running these tests on a developer machine therefore exercises (and may restore over) the
developer's own default stack; CI's machine has no other.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import yaml

from kailash_testlib import ROOT, PlaybookRun, run_playbook

PROJECT = "kailash"
STACK_DIR = Path("/opt/kailash") / PROJECT
SECRETS_DIR = ROOT / ".secrets" / "local"


def docker(*args: str, check: bool = True, timeout: float = 120) -> str:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=check, timeout=timeout
    ).stdout.strip()


def containers(project: str = PROJECT) -> list[dict]:
    out = docker("compose", "-p", project, "ps", "--all", "--format", "json")
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    return rows[0] if rows and isinstance(rows[0], list) else rows


def container_state(name: str) -> dict:
    """Id, start time, restart count and health of one container (what "untouched" means)."""
    info = json.loads(docker("inspect", name))[0]
    return {
        "id": info["Id"],
        "started": info["State"]["StartedAt"],
        "restarts": info["RestartCount"],
        "health": (info["State"].get("Health") or {}).get("Status"),
    }


def secrets() -> dict:
    return yaml.safe_load((SECRETS_DIR / "secrets.yml").read_text())


def deploy(
    *args: str,
    extra: dict | None = None,
    playbook: str = "playbooks/dev_stack.yml",
    timeout: int = 1500,
) -> PlaybookRun:
    """The default inventory, as a user runs it (extra vars only when a test sets one)."""
    return run_playbook(playbook, *args, extra=extra, timeout=timeout)


def all_healthy(project: str = PROJECT) -> bool:
    rows = containers(project)
    return bool(rows) and all(
        r.get("State") == "running" and r.get("Health", "") in ("", "healthy") for r in rows
    )


def wait_all_healthy(timeout: float = 90, project: str = PROJECT) -> bool:
    """True once every container of the project is running and healthy (a restarted one's
    health check catching up), False after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not all_healthy(project):
        if time.monotonic() > deadline:
            return False
        time.sleep(2)
    return True


def psql(sql: str) -> str:
    """One statement in the default stack's PostgreSQL, as its user (password from the store)."""
    return docker("exec", "-e", f"PGPASSWORD={secrets()['postgresql_password']}",
                  f"{PROJECT}-postgresql-1", "psql", "-U", "kailash_user", "-d", "kailash",
                  "-AtXqc", sql)
