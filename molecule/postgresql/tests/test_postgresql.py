"""Live behaviour of the PostgreSQL service deployed by the dev-stack playbook.

Runs on this machine against the molecule-postgresql Compose project's real server
(no mocks): settings are read back with SHOW, authentication is exercised over the
socket, over loopback TCP and from a client container on the data network; the
role's plan phase is run with other sizes and with bad input.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

PROJECT = "molecule-postgresql"
CONTAINER = f"{PROJECT}-postgresql-1"
STACK_DIR = Path("/tmp/kailash-molecule") / PROJECT
SECRET_FILE = STACK_DIR / "secrets" / "postgresql_password"
CONFIG_FILES = [STACK_DIR / "postgresql" / name for name in ("postgresql.conf", "pg_hba.conf")]
DATA_NETWORK = f"{PROJECT}_data"
SCENARIO_DIR = Path(__file__).resolve().parents[1]
PROJECT_DIR = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY") or SCENARIO_DIR.parents[1])

# ADR-002 tuning at this scenario's sizes (request 1Gi, limit 2Gi) ...
SCENARIO_EXPECTED = {"shared_buffers": "256MB", "effective_cache_size": "1GB",
                     "maintenance_work_mem": "64MB", "max_connections": "200"}
# ... and at the role's defaults (request 4Gi, limit 8Gi)
DEFAULT_EXPECTED = {"shared_buffers": "1GB", "effective_cache_size": "4GB",
                    "maintenance_work_mem": "256MB", "max_connections": "200"}
# answered by the final server only, not by the entrypoint's socket-only init server
READY_SQL = "SELECT 1 WHERE current_setting('listen_addresses') <> ''"


def _sizing():
    """The project's filter plugin (plugins/filter/sizing.py)."""
    sys.path.insert(0, str(PROJECT_DIR / "plugins" / "filter"))
    try:
        import sizing
    finally:
        sys.path.pop(0)
    return sizing


def _run(*cmd: str, check: bool = False, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), capture_output=True, text=True, check=check, env=env)


def _inspect(fmt: str, target: str = CONTAINER):
    out = _run("docker", "inspect", "--format", "{{json " + fmt + "}}", target, check=True)
    return json.loads(out.stdout)


def _playbook(*args: str) -> subprocess.CompletedProcess:
    """ansible-playbook of this venv with the project's roles and filters."""
    binary = shutil.which("ansible-playbook", path=str(Path(sys.executable).parent))
    env = dict(os.environ,
               ANSIBLE_CONFIG=str(PROJECT_DIR / "ansible.cfg"),
               ANSIBLE_ROLES_PATH=str(PROJECT_DIR / "roles"),
               ANSIBLE_FILTER_PLUGINS=str(PROJECT_DIR / "plugins" / "filter"),
               ANSIBLE_NOCOLOR="1")
    return _run(binary or "ansible-playbook", *args, env=env)


def plan(tmp_path: Path, **extra: object) -> subprocess.CompletedProcess:
    """The role's plan phase alone (plan_only.yml) with extra variables: no host change."""
    extra = {"postgresql_plan_out": str(tmp_path),
             "ansible_python_interpreter": sys.executable, **extra}
    return _playbook("-i", "localhost,", str(SCENARIO_DIR / "plan_only.yml"),
                     "-e", json.dumps(extra))


def psql(sql: str, password: str | None, *, host: str | None = None,
         container: str = CONTAINER) -> subprocess.CompletedProcess:
    """psql as kailash_user inside the server's container (socket unless host is given)."""
    env = ["-e", f"PGPASSWORD={password}"] if password is not None else []
    target = ["-h", host] if host else []
    return _run("docker", "exec", *env, container, "psql", "-w", "-qtAX", *target,
                "-U", "kailash_user", "-d", "kailash", "-v", "ON_ERROR_STOP=1", "-c", sql)


def show(name: str, password: str, container: str = CONTAINER) -> str:
    out = psql(f"SHOW {name}", password, container=container)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def wait_healthy(timeout: int = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _inspect(".State.Health.Status") == "healthy":
            return
        time.sleep(1)
    pytest.fail(f"{CONTAINER} not healthy after {timeout}s")


@pytest.fixture(scope="module")
def password() -> str:
    return SECRET_FILE.read_text()


@pytest.fixture(scope="module")
def scenario_vars(host) -> dict:
    return host.ansible.get_variables()


@pytest.fixture(scope="module")
def image() -> str:
    return _inspect(".Config.Image")


# --- the service and its tuning ------------------------------------------------


def test_container_healthy():
    state = _inspect(".State")
    assert state["Running"] is True
    assert state["Health"]["Status"] == "healthy"


def test_postgresql_15(password):
    assert show("server_version_num", password).startswith("15")


def test_tuned_settings_live(password):
    for name, expected in SCENARIO_EXPECTED.items():
        assert show(name, password) == expected, name


def test_live_settings_match_the_filter_for_the_scenario_sizes(password, scenario_vars):
    """Whatever sizes the scenario sets, the live server runs kailash_pg_tuning's values."""
    tuning = _sizing().kailash_pg_tuning(scenario_vars["postgresql_memory_request"],
                                         scenario_vars["postgresql_memory_limit"], 200)
    live = {name: show(name, password) for name in tuning}
    assert live == {name: str(value) for name, value in tuning.items()}


def test_live_settings_for_the_default_sizes(tmp_path, image):
    """A second pair of sizes (ADR-002's 4Gi/8Gi): planned by the role, run by a second server."""
    result = plan(tmp_path, postgresql_memory_request="4Gi", postgresql_memory_limit="8Gi")
    assert result.returncode == 0, result.stdout[-3000:]
    probe = f"{PROJECT}-sizes-probe"
    _run("docker", "rm", "--force", "--volumes", probe)
    started = _run(
        "docker", "run", "--detach", "--name", probe, "--user", "70:70", "--network", "none",
        "--tmpfs", "/var/run/postgresql:uid=70,gid=70", "--env", "POSTGRES_USER=kailash_user",
        "--env", "POSTGRES_DB=kailash", "--env", "POSTGRES_PASSWORD=probe-only",
        "-v", f"{tmp_path}/postgresql.conf:/etc/postgresql/postgresql.conf:ro",
        "-v", f"{tmp_path}/pg_hba.conf:/etc/postgresql/pg_hba.conf:ro",
        image, "postgres", "-c", "config_file=/etc/postgresql/postgresql.conf",
        "-c", "hba_file=/etc/postgresql/pg_hba.conf")
    assert started.returncode == 0, started.stderr
    try:
        deadline = time.monotonic() + 90
        while psql(READY_SQL, "probe-only", container=probe).stdout.strip() != "1":
            assert time.monotonic() < deadline, _run("docker", "logs", probe).stderr[-3000:]
            time.sleep(1)
        tuning = _sizing().kailash_pg_tuning("4Gi", "8Gi", 200)
        live = {name: show(name, "probe-only", container=probe) for name in tuning}
    finally:
        _run("docker", "rm", "--force", "--volumes", probe)
    assert live == {name: str(value) for name, value in tuning.items()}
    for name, expected in DEFAULT_EXPECTED.items():
        assert live[name] == expected, name


def test_config_files_in_use(password):
    assert show("config_file", password) == "/etc/postgresql/postgresql.conf"
    assert show("hba_file", password) == "/etc/postgresql/pg_hba.conf"
    assert show("data_directory", password) == "/var/lib/postgresql/data"
    assert show("password_encryption", password) == "scram-sha-256"


# --- authentication ---------------------------------------------------------------


def test_hba_rules(password):
    rules = psql("SELECT type, database, user_name, address, netmask, auth_method "
                 "FROM pg_hba_file_rules ORDER BY line_number", password)
    assert rules.returncode == 0, rules.stderr
    assert rules.stdout.splitlines() == [
        "local|{all}|{all}|||scram-sha-256",
        "host|{all}|{all}|10.215.2.0|255.255.255.0|scram-sha-256",
    ]


def test_socket_needs_the_password(password):
    assert psql("SELECT current_user", password).stdout.strip() == "kailash_user"
    no_password = psql("SELECT 1", None)
    assert no_password.returncode != 0
    assert "no password supplied" in no_password.stderr
    wrong = psql("SELECT 1", "wrong-password")
    assert wrong.returncode != 0
    assert "password authentication failed" in wrong.stderr


def test_password_stored_as_scram(password):
    out = psql("SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid "
               "WHERE rolname = current_user", password)
    assert out.stdout.strip() == "t"


def test_loopback_tcp_is_not_in_hba(password):
    out = psql("SELECT 1", password, host="127.0.0.1")
    assert out.returncode != 0
    assert 'no pg_hba.conf entry for host "127.0.0.1"' in out.stderr


def _client(image: str, password: str) -> subprocess.CompletedProcess:
    """psql in a throwaway container on the data network, like an application."""
    return _run("docker", "run", "--rm", "--network", DATA_NETWORK, "--entrypoint", "psql",
                "-e", f"PGPASSWORD={password}", image, "-w", "-qtAX", "-h", "postgresql",
                "-U", "kailash_user", "-d", "kailash", "-c", "SELECT inet_client_addr()")


def test_data_network_client_with_the_password(image, password):
    out = _client(image, password)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith("10.215.2.")


def test_data_network_client_with_a_wrong_password(image):
    out = _client(image, "wrong-password")
    assert out.returncode != 0
    assert "password authentication failed" in out.stderr


# --- data -----------------------------------------------------------------------


def test_data_survives_container_restart(host, password):
    create = psql("CREATE TABLE IF NOT EXISTS molecule_probe (v text); TRUNCATE molecule_probe; "
                  "INSERT INTO molecule_probe VALUES ('persisted')", password)
    assert create.returncode == 0, create.stderr
    host.check_output(f"docker restart {CONTAINER}")
    wait_healthy()
    assert psql("SELECT v FROM molecule_probe", password).stdout.strip() == "persisted"


# --- hardening --------------------------------------------------------------------


def test_runs_as_uid_70(host):
    assert host.check_output(f"docker exec {CONTAINER} id -u") == "70"
    assert host.check_output(f"docker exec {CONTAINER} id -g") == "70"
    status = host.check_output(f"docker exec {CONTAINER} cat /proc/1/status")
    uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
    assert uids == ["70", "70", "70", "70"]
    assert host.check_output(f"docker exec {CONTAINER} cat /proc/1/comm") == "postgres"


def test_read_only_root_filesystem(host):
    assert _inspect(".HostConfig.ReadonlyRootfs") is True
    out = host.run(f"docker exec {CONTAINER} touch /etc/postgresql/probe")
    assert out.rc != 0
    assert "Read-only file system" in out.stderr
    assert host.run(f"docker exec {CONTAINER} touch /tmp/probe").rc == 0  # tmpfs scratch


def test_hardening():
    cfg = _inspect(".HostConfig")
    assert cfg["CapDrop"] == ["ALL"]
    assert not cfg["CapAdd"]
    assert "no-new-privileges:true" in cfg["SecurityOpt"]
    assert cfg["Privileged"] is False
    assert cfg["Memory"] == 2 * 1024**3
    assert cfg["MemoryReservation"] == 1 * 1024**3
    assert cfg["NanoCpus"] > 0
    assert cfg["ShmSize"] == 256 * 1024**2
    assert cfg["RestartPolicy"]["Name"] == "unless-stopped"
    assert cfg["LogConfig"] == {"Type": "json-file", "Config": {"max-file": "3", "max-size": "10m"}}
    assert cfg["PortBindings"] in ({}, None)  # kailash_publish_datastores is false
    assert _inspect(".Config.User") == "70:70"


def test_config_hash_is_of_the_rendered_files():
    content = b"".join(path.read_bytes() for path in CONFIG_FILES)
    label = _inspect(".Config.Labels")["io.kailash.config-hash"]
    assert label == hashlib.sha1(content).hexdigest()


def test_only_on_internal_data_network():
    assert list(_inspect(".NetworkSettings.Networks")) == [DATA_NETWORK]
    assert _inspect(".Internal", DATA_NETWORK) is True


def test_secret_and_config_files_not_world_readable(host):
    for path in [SECRET_FILE, *CONFIG_FILES]:
        f = host.file(str(path))
        assert f.mode == 0o400, path
        assert (f.uid, f.gid) == (70, 70), path
    secret = "/run/secrets/postgresql_password"
    assert host.check_output(f"docker exec {CONTAINER} stat -c '%a %u' {secret}") == "400 70"
    env = _inspect(".Config.Env")
    assert f"POSTGRES_PASSWORD_FILE={secret}" in env
    assert not [e for e in env if e.startswith("POSTGRES_PASSWORD=")]


def test_password_not_in_the_compose_file(password):
    compose = (STACK_DIR / "compose.yml").read_text()
    assert password not in compose
    assert "x-kailash" not in compose


# --- preflight: bad input is refused before any change, naming the variable --------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"postgresql_memory_request": "4Gx"}, "postgresql_memory_request: "),
        ({"postgresql_memory_request": "8Gi", "postgresql_memory_limit": "4Gi"},
         "postgresql_memory_request ('8Gi') exceeds postgresql_memory_limit ('4Gi')"),
        ({"postgresql_max_connections": 0},
         "postgresql_max_connections must be an integer >= 1, got 0"),
        ({"postgresql_memory_limit": "128Mi", "postgresql_memory_request": "128Mi"},
         "postgresql_memory_limit must be at least 256Mi"),
        ({"postgresql_settings": {"port": 5433}}, "postgresql_settings may not set port"),
    ],
    ids=["malformed-size", "request-over-limit", "max-connections", "limit-too-small",
         "reserved-setting"],
)
def test_preflight_names_the_variable(tmp_path, extra, message):
    result = plan(tmp_path, **extra)
    assert result.returncode != 0
    assert message in result.stdout, result.stdout[-3000:]
    for value in extra.values():
        if isinstance(value, str):  # and quotes the offending value
            assert value in result.stdout
    assert not list(tmp_path.iterdir())  # stopped before anything was planned


def test_disabled_plans_an_empty_fragment(tmp_path):
    result = plan(tmp_path, postgresql_enabled=False)
    assert result.returncode == 0, result.stdout[-3000:]
    fragment = json.loads((tmp_path / "fragment.json").read_text())
    assert fragment == {"services": {}, "volumes": {}, "secrets": {}}
    assert not (tmp_path / "postgresql.conf").exists()


@pytest.mark.skipif(not os.environ.get("MOLECULE_INVENTORY_FILE"),
                    reason="needs the scenario's inventory")
def test_bad_input_changes_nothing_on_the_live_stack():
    """The real playbook with a malformed size fails while planning: nothing is touched."""
    files = [STACK_DIR / "compose.yml", *CONFIG_FILES]
    before = ([f.read_bytes() for f in files], _inspect(".Id"), _inspect(".State.StartedAt"))
    inventory = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent  # with group_vars/
    result = _playbook("-i", str(inventory),
                       str(PROJECT_DIR / "playbooks" / "dev_stack.yml"),
                       "-e", json.dumps({"postgresql_memory_limit": "4Gx"}))
    assert result.returncode != 0
    assert "postgresql_memory_limit: " in result.stdout, result.stdout[-3000:]
    assert "'4Gx'" in result.stdout
    assert "changed=0" in result.stdout
    after = ([f.read_bytes() for f in files], _inspect(".Id"), _inspect(".State.StartedAt"))
    assert after == before
