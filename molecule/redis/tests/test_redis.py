"""Live behaviour of the Redis service deployed by the dev-stack playbook.

Runs on this machine against the molecule-redis Compose project's real Redis
container (no mocks): settings are read back with CONFIG GET, ACLs are exercised.
"""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

PROJECT = "molecule-redis"
CONTAINER = f"{PROJECT}-redis-1"
STACK_DIR = f"/tmp/kailash-molecule/{PROJECT}"
SECRETS = "/tmp/kailash-molecule/secrets-redis/secrets.yml"


def _secrets() -> dict:
    with open(SECRETS) as fh:
        return yaml.safe_load(fh)


def _cli(*args: str, user: str | None = None, password: str | None = None) -> str:
    env = []
    if password is not None:
        env = ["-e", f"REDISCLI_AUTH={password}"]
    cmd = ["docker", "exec", *env, CONTAINER, "redis-cli"]
    if user:
        cmd += ["--user", user]
    proc = subprocess.run([*cmd, *args], capture_output=True, text=True, check=False)
    return (proc.stdout + proc.stderr).strip()


def _inspect(host, template: str, *target: str):
    return json.loads(host.check_output(f"docker inspect --format '{{{{json {template}}}}}' "
                                        + " ".join(target)))


@pytest.fixture(scope="module")
def admin() -> str:
    return _secrets()["redis_admin_password"]


@pytest.fixture(scope="module")
def app() -> str:
    return _secrets()["redis_password"]


def test_container_healthy(host):
    state = _inspect(host, ".State", CONTAINER)
    assert state["Health"]["Status"] == "healthy"


def test_tuned_settings_live(admin):
    # 512Mi limit in this scenario -> maxmemory 256mb; ADR-002 policy and save points
    def config_get(name: str) -> str:
        return _cli("CONFIG", "GET", name, user="kailash-admin", password=admin).splitlines()[-1]

    assert config_get("maxmemory") == str(256 * 1024 * 1024)
    assert config_get("maxmemory-policy") == "allkeys-lru"
    assert config_get("save") == "900 1 300 10 60 10000"
    assert config_get("appendonly") == "no"


def test_password_required():
    assert "NOAUTH" in _cli("GET", "anything")
    assert "WRONGPASS" in _cli("PING", password="wrong-password")


def test_app_user_cannot_run_dangerous_commands(app):
    assert _cli("PING", password=app) == "PONG"
    for cmd in (["FLUSHALL"], ["CONFIG", "GET", "maxmemory"], ["KEYS", "*"], ["SHUTDOWN"]):
        assert "NOPERM" in _cli(*cmd, password=app), cmd
    # DEBUG is off for everybody (Redis 7 enable-debug-command no)
    assert "not allowed" in _cli("DEBUG", "SLEEP", "0", password=app)


def test_data_survives_container_restart(host, app):
    assert _cli("SET", "kailash:molecule", "persisted", password=app) == "OK"
    assert "Background saving started" in _cli("BGSAVE", user="kailash-admin",
                                               password=_secrets()["redis_admin_password"])
    host.check_output("sleep 1")
    host.check_output(f"docker restart {CONTAINER}")
    host.check_output(
        f"timeout 60 sh -c 'until docker inspect --format {{{{.State.Health.Status}}}} {CONTAINER}"
        f" | grep -q healthy; do sleep 1; done'"
    )
    assert _cli("GET", "kailash:molecule", password=app) == "persisted"


def test_hardening(host):
    cfg = _inspect(host, ".HostConfig", CONTAINER)
    assert cfg["ReadonlyRootfs"] is True
    assert cfg["CapDrop"] == ["ALL"]
    assert "no-new-privileges:true" in cfg["SecurityOpt"]
    assert cfg["Memory"] == 512 * 1024 * 1024
    assert cfg["LogConfig"]["Config"] == {"max-file": "3", "max-size": "10m"}
    assert host.check_output(f"docker exec {CONTAINER} id -u") == "999"
    # published nowhere (kailash_publish_datastores is false)
    assert cfg["PortBindings"] in ({}, None)


def test_only_on_internal_data_network(host):
    nets = _inspect(host, ".NetworkSettings.Networks", CONTAINER)
    assert list(nets) == [f"{PROJECT}_data"]
    assert _inspect(host, ".Internal", "--type", "network", f"{PROJECT}_data") is True


def test_secret_files_not_world_readable(host):
    for path in (f"{STACK_DIR}/redis/redis.conf", f"{STACK_DIR}/secrets/redis_password"):
        f = host.file(path)
        assert f.mode == 0o400, path
        assert f.uid == 999, path
