"""One real dev stack for every backup test (session fixture): its own Compose project
kailash-bk-ci (10.219.4-6.x), PostgreSQL 15 + Redis 7 (AOF on, so restores take the AOF
path) + ChromaDB 1.5 built from the offline base, seeded with bench/seed_data.py."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from backup_env import BACKUP_ROOT, PROJECT, SECRETS_DIR, STACK, WORK

from kailash_testlib import ROOT, load_backup_core, run_playbook

sys.path.insert(0, str(ROOT / "plugins" / "module_utils"))
sys.path.insert(0, str(ROOT / "bench"))


def compose_down() -> None:
    subprocess.run(
        ["docker", "compose", "-p", PROJECT, "down", "--volumes", "--timeout", "5"],
        capture_output=True,
        check=False,
    )
    subprocess.run(
        "docker ps -aq --filter name=kailash-bk-ci-drill | xargs -r docker rm -f -v",
        shell=True,
        capture_output=True,
        check=False,
    )


@pytest.fixture(scope="session")
def stack(docker_available):
    compose_down()
    subprocess.run(["rm", "-rf", str(WORK)], check=True)
    run = run_playbook("playbooks/dev_stack.yml", extra=STACK)
    assert run.rc == 0, run.output[-4000:]
    import seed_data

    seed_data.main(
        [
            "--project",
            PROJECT,
            "--secrets",
            str(SECRETS_DIR / "secrets.yml"),
            "--pg-size",
            "2MB",
            "--redis-keys",
            "300",
            "--chroma-records",
            "200",
        ]
    )
    yield run
    compose_down()
    subprocess.run(["rm", "-rf", str(WORK)], check=False)


@pytest.fixture(scope="session")
def secrets(stack) -> dict:
    return yaml.safe_load((SECRETS_DIR / "secrets.yml").read_text())


@pytest.fixture(scope="session")
def kb():
    return load_backup_core()


@pytest.fixture
def settings(kb, secrets):
    def make(**extra):
        fields = {
            "backup_root": str(BACKUP_ROOT),
            "project": PROJECT,
            "services": ["postgresql", "redis", "chromadb"],
            "datastores": {
                "postgresql": {
                    "user": "kailash_user",
                    "password": secrets["postgresql_password"],
                    "database": "kailash",
                },
                "redis": {"user": "kailash-admin", "password": secrets["redis_admin_password"]},
            },
        }
        return kb.Settings(**{**fields, **extra})

    return make
