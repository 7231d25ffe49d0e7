"""The neo4j role: what converge did here, what the role plans, and (with an image) the server.

What this machine can prove, and what it cannot:

* There is no Neo4j image here (no registry; Neo4j cannot be built offline), so the
  converge of the dev-stack playbook takes the role's skip path: no container, no files.
  The ``test_converge_*`` tests check that state.
* ``plan_check.yml`` runs the role's plan (and deploy) phase on its own, with no
  Compose project brought up: the planned fragment, the rendered settings (heap and page
  cache per ADR-002), the secret file, the refusals of bad input before any change, the
  single skip warning, and loading an image archive (with a stand-in image retagged from
  the local base image, since no Neo4j archive exists here) are checked for real.
* The running Neo4j server (Bolt, authentication, live settings, persistence) is NOT
  exercised here: the ``test_live_*`` tests need ``neo4j:5.26-community`` on the Docker
  host and are skipped (reported as skipped, not passed) when it is absent. Load it with
  ``neo4j_image_archive`` or ``docker load`` to run them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

PROJECT = "molecule-neo4j"
STACK_DIR = Path(f"/tmp/kailash-molecule/{PROJECT}")
SECRETS = Path("/tmp/kailash-molecule/secrets-neo4j/secrets.yml")
IMAGE = "neo4j:5.26-community"
CONTAINER = f"{PROJECT}-neo4j-1"
SCENARIO_DIR = Path(__file__).resolve().parents[1]
PROJECT_DIR = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY") or SCENARIO_DIR.parents[1])
GIB = 1024**3
MIB = 1024**2
# a password for the role-alone runs; must never show up in their output
PASSWORD = "Molecule-" + secrets.token_hex(12)
EMPTY_FRAGMENT = {"services": {}, "volumes": {}, "secrets": {}}
SKIP_WARNING = "WARNING: Neo4j is SKIPPED"


def _docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=False)


def _image_present(name: str) -> bool:
    return _docker("image", "inspect", name).returncode == 0


REAL_IMAGE = _image_present(IMAGE)
needs_image = pytest.mark.skipif(
    not REAL_IMAGE,
    reason=f"no {IMAGE} image on this Docker host (no registry, cannot be built offline): "
    "the live Neo4j server is not exercised here; load the image to run this test",
)
without_image = pytest.mark.skipif(
    REAL_IMAGE, reason=f"{IMAGE} is present, so converge deployed Neo4j (see test_live_*)"
)


# --------------------------------------------------------------------------- role alone


class RoleRun:
    """One ansible-playbook run of plan_check.yml (plan, optionally deploy, dump)."""

    def __init__(self, proc: subprocess.CompletedProcess[str], out: Path, stack: Path):
        self.rc = proc.returncode
        self.output = proc.stdout + proc.stderr
        # the yaml callback wraps long messages; compare texts with whitespace collapsed
        self.flat = " ".join(self.output.split())
        self.stack = stack
        dumped = json.loads(out.read_text()) if out.exists() else None
        self.image_plan = dumped["image_plan"] if dumped else None
        self.compose = dumped["compose"] if dumped else None
        self.env = dumped["env"] if dumped else None

    @property
    def service(self) -> dict:
        return self.compose["services"]["neo4j"]

    def changed(self) -> int:
        match = re.search(r"localhost\s*:\s*ok=\d+\s+changed=(\d+)", self.output)
        assert match, self.output[-2000:]
        return int(match.group(1))


def _ansible_playbook() -> str:
    local = PROJECT_DIR / ".venv" / "bin" / "ansible-playbook"
    return (
        str(local) if local.exists() else (shutil.which("ansible-playbook") or "ansible-playbook")
    )


def run_role(
    workdir: Path,
    *,
    deploy: bool = False,
    password: str = PASSWORD,
    verbose: bool = False,
    **variables,
) -> RoleRun:
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / "plan.json"
    out.unlink(missing_ok=True)
    extra = {
        "ansible_python_interpreter": sys.executable,
        "image_base_source_resolved": "pull",
        "kailash_stack_dir": str(workdir / "stack"),
        "kailash_secrets_values": {"neo4j_password": password},
        "neo4j_check_out": str(out),
        "neo4j_check_deploy": deploy,
        **variables,
    }
    vars_file = workdir / "vars.json"
    vars_file.write_text(json.dumps(extra))
    vars_file.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "MOLECULE_"))}
    env.update(
        ANSIBLE_CONFIG=str(PROJECT_DIR / "ansible.cfg"),
        ANSIBLE_ROLES_PATH=str(PROJECT_DIR / "roles"),
        ANSIBLE_FILTER_PLUGINS=str(PROJECT_DIR / "plugins" / "filter"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
    )
    cmd = [
        _ansible_playbook(),
        "-i",
        "localhost,",
        "-c",
        "local",
        str(SCENARIO_DIR / "plan_check.yml"),
        "-e",
        f"@{vars_file}",
    ]
    if verbose:
        cmd.append("-vv")
    proc = subprocess.run(
        cmd, env=env, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=600, check=False
    )
    return RoleRun(proc, out, workdir / "stack")


def _env_file(text: str) -> dict[str, str]:
    """Parse the rendered neo4j.env (KEY='value' lines, # comments)."""
    values = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        assert value.startswith("'") and value.endswith("'"), line
        values[key] = value[1:-1]
    return values


@pytest.fixture(scope="module")
def adr(tmp_path_factory) -> RoleRun:
    """Defaults (ADR-002), image source pull, plan + deploy (files only), at -vv."""
    run = run_role(tmp_path_factory.mktemp("adr"), deploy=True, verbose=True)
    assert run.rc == 0, run.output[-4000:]
    return run


def test_adr_defaults_fragment(adr):
    assert adr.image_plan == "pull"  # Compose pulls it (pull: missing)
    svc = adr.service
    assert svc["image"] == IMAGE
    assert svc["mem_limit"] == 8 * GIB
    assert svc["mem_reservation"] == 4 * GIB
    assert svc["cpus"] == 4.0
    assert svc["user"] == "7474:7474"
    assert svc["restart"] == "unless-stopped"
    assert svc["networks"] == ["data"]
    assert svc["ports"] == []  # kailash_publish_datastores is false
    assert svc["cap_drop"] == ["ALL"]
    assert svc["security_opt"] == ["no-new-privileges:true"]
    assert svc["volumes"] == ["neo4j-data:/data", "neo4j-logs:/logs"]
    assert svc["logging"] == {
        "driver": "json-file",
        "options": {"max-size": "10m", "max-file": "3"},
    }
    assert svc["environment"] == {"NEO4J_AUTH_FILE": "/run/secrets/neo4j_auth"}
    assert svc["secrets"] == ["neo4j_auth"]
    health = svc["healthcheck"]
    assert health["interval"] == "60s"
    assert health["start_period"] == "180s"
    assert health["test"][0] == "CMD-SHELL"
    assert "cypher-shell" in health["test"][1] and "RETURN 1" in health["test"][1]
    assert "-p " not in health["test"][1]  # the password is not on the command line
    assert svc["x-kailash"]["port_variable"] == "neo4j_bolt_host_port"
    assert svc["x-kailash"]["memory_variable"] == "neo4j_memory_limit"
    assert set(adr.compose["volumes"]) == {"neo4j-data", "neo4j-logs"}
    assert adr.compose["secrets"] == {"neo4j_auth": {"file": str(adr.stack / "secrets/neo4j_auth")}}


def test_adr_settings_file(adr):
    path = adr.stack / "neo4j" / "neo4j.env"
    text = path.read_text()
    assert text == adr.env
    settings = _env_file(text)
    # ADR-002 at 4Gi/8Gi: heap 2g initial, 4g max, page cache 2g
    assert settings["NEO4J_server_memory_heap_initial__size"] == "2g"
    assert settings["NEO4J_server_memory_heap_max__size"] == "4g"
    assert settings["NEO4J_server_memory_pagecache_size"] == "2g"
    assert settings["NEO4J_dbms_usage__report_enabled"] == "false"
    assert "NEO4J_PLUGINS" not in settings  # neo4j_apoc is false
    assert PASSWORD not in text
    assert path.stat().st_mode & 0o777 == 0o640
    # a changed settings file recreates the container (and only then)
    assert (
        adr.service["labels"]["io.kailash.config-hash"] == hashlib.sha1(text.encode()).hexdigest()
    )


def test_auth_secret_file(adr):
    path = adr.stack / "secrets" / "neo4j_auth"
    st = path.stat()
    assert st.st_mode & 0o777 == 0o400
    assert (st.st_uid, st.st_gid) == (7474, 7474)  # the official image's neo4j user
    assert path.read_text() == f"neo4j/{PASSWORD}"  # the NEO4J_AUTH format


def test_password_never_logged(adr):
    assert PASSWORD not in adr.output


def test_deploy_is_idempotent(adr):
    again = run_role(adr.stack.parent, deploy=True)
    assert again.rc == 0, again.output[-4000:]
    assert again.changed() == 0


def test_fragment_is_valid_compose(adr, tmp_path):
    """The fragment, assembled as kailash_stack does, passes `docker compose config`."""
    services = {
        name: {k: v for k, v in svc.items() if k != "x-kailash"}
        for name, svc in adr.compose["services"].items()
    }
    doc = {
        "name": PROJECT,
        "services": services,
        "networks": {"data": {"internal": True}},
        "volumes": adr.compose["volumes"],
        "secrets": adr.compose["secrets"],
    }
    path = tmp_path / "compose.yml"
    path.write_text(yaml.safe_dump(doc))
    proc = _docker("compose", "-p", PROJECT, "-f", str(path), "config", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    resolved = json.loads(proc.stdout)["services"]["neo4j"]
    # env_file is resolved into the environment; `$$` is a literal `$` (not interpolated:
    # no "variable is not set" warning; `config` prints it escaped again)
    assert resolved["environment"]["NEO4J_server_memory_heap_max__size"] == "4g"
    assert '"$$(cut -d/ -f2- /run/secrets/neo4j_auth)"' in resolved["healthcheck"]["test"][1]
    assert "not set" not in proc.stderr


def test_published_ports_and_overrides(tmp_path):
    run = run_role(
        tmp_path,
        kailash_publish_datastores=True,
        neo4j_http_host_port=17474,
        neo4j_bolt_host_port=17687,
        neo4j_memory_request="2Gi",
        neo4j_memory_limit="4Gi",
        neo4j_cpu_request="1000m",
        neo4j_cpu_limit="1500m",
        neo4j_apoc=True,
        neo4j_settings={"server.memory.heap.max_size": "3g", "db.transaction.timeout": "30s"},
    )
    assert run.rc == 0, run.output[-4000:]
    assert run.service["ports"] == ["127.0.0.1:17474:7474", "127.0.0.1:17687:7687"]
    assert run.service["mem_limit"] == 4 * GIB
    assert run.service["cpus"] == 1.5
    settings = _env_file(run.env)
    assert settings["NEO4J_server_memory_heap_initial__size"] == "1g"  # derived: 2Gi / 2
    assert settings["NEO4J_server_memory_heap_max__size"] == "3g"  # neo4j_settings wins
    assert settings["NEO4J_server_memory_pagecache_size"] == "1g"  # derived: 4Gi / 4
    assert settings["NEO4J_db_transaction_timeout"] == "30s"
    assert settings["NEO4J_PLUGINS"] == '["apoc"]'
    assert not run.stack.exists()  # plan only: nothing written


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        pytest.param(
            {
                "neo4j_memory_limit": "8 GB",
                "neo4j_cpu_limit": "lots",
                "neo4j_bolt_port": 70000,
                "neo4j_settings": {"Bad Key": 1},
                "neo4j_image_pull": "neo4j:latest",
                "neo4j_image_archive": "relative/neo4j.tar",
                "password": "a/b",
            },
            [
                "neo4j_memory_limit: kailash_bytes: invalid memory size '8 GB'",
                "neo4j_cpu_limit",
                "neo4j_bolt_port must be a port number",
                "neo4j_password must be",
                "neo4j_settings",
                "neo4j_image_pull must be a pinned image",
                "neo4j_image_archive must be",
            ],
            id="malformed",
        ),
        pytest.param(
            {"neo4j_memory_request": "8Gi", "neo4j_memory_limit": "4Gi"},
            ["neo4j_memory_request ('8Gi') exceeds neo4j_memory_limit ('4Gi')"],
            id="request-over-limit",
        ),
        pytest.param(
            {"neo4j_memory_request": "256Mi", "neo4j_memory_limit": "512Mi"},
            ['neo4j_memory_limit ("512Mi") is below the 1Gi'],
            id="limit-below-1Gi",
        ),
    ],
)
def test_preflight_refuses_bad_input(tmp_path, variables, expected):
    password = variables.pop("password", PASSWORD)
    run = run_role(tmp_path, deploy=True, password=password, **variables)
    assert run.rc != 0
    assert "Check resources, ports, password, settings and image" in run.output
    for text in expected:
        assert text in run.flat, (text, run.output[-3000:])
    assert run.compose is None and not run.stack.exists()  # refused before any change
    assert PASSWORD not in run.output


def test_build_mode_without_image_skips_with_one_warning(tmp_path):
    absent = "kailash-molecule/neo4j-absent:0"
    assert not _image_present(absent)
    run = run_role(
        tmp_path, deploy=True, image_base_source_resolved="build", neo4j_image_pull=absent
    )
    assert run.rc == 0, run.output[-4000:]
    assert run.image_plan == "skip"
    assert run.compose == EMPTY_FRAGMENT
    assert run.flat.count(SKIP_WARNING) == 1
    assert "neo4j_image_archive" in run.flat
    assert f"docker save {absent} -o neo4j.tar" in run.flat
    assert not run.stack.exists()  # skipped: nothing written


def test_disabled_plans_empty_fragment_silently(tmp_path):
    run = run_role(tmp_path, deploy=True, image_base_source_resolved="build", neo4j_enabled=False)
    assert run.rc == 0, run.output[-4000:]
    assert run.image_plan == "disabled"
    assert run.compose == EMPTY_FRAGMENT
    assert SKIP_WARNING not in run.flat
    assert not run.stack.exists()


def test_missing_archive_refused(tmp_path):
    run = run_role(
        tmp_path,
        deploy=True,
        image_base_source_resolved="build",
        neo4j_image_archive=str(tmp_path / "missing.tar"),
    )
    assert run.rc != 0
    assert "neo4j_image_archive" in run.flat and "is not a file" in run.flat
    assert not run.stack.exists()


def test_archive_loaded_when_image_absent(tmp_path):
    """Load path with a stand-in archive (the local base image under another name)."""
    base = "kailash/base:bookworm"
    if not _image_present(base):
        pytest.skip(f"{base} (the stand-in's source) is not on this Docker host")
    standin = "kailash-molecule/neo4j-archive-standin:1"
    archive = tmp_path / "standin.tar"
    try:
        assert _docker("tag", base, standin).returncode == 0
        assert _docker("save", standin, "-o", str(archive)).returncode == 0
        assert _docker("rmi", standin).returncode == 0  # untag only: base keeps the layers
        assert not _image_present(standin)

        first = run_role(
            tmp_path / "first",
            deploy=True,
            image_base_source_resolved="build",
            neo4j_image_pull=standin,
            neo4j_image_archive=str(archive),
        )
        assert first.rc == 0, first.output[-4000:]
        assert first.image_plan == "load"
        assert _image_present(standin)
        assert first.service["image"] == standin
        assert "Load the Neo4j image from neo4j_image_archive" in first.output

        again = run_role(
            tmp_path / "first",
            deploy=True,
            image_base_source_resolved="build",
            neo4j_image_pull=standin,
            neo4j_image_archive=str(archive),
        )
        assert again.rc == 0, again.output[-4000:]
        assert again.image_plan == "present"  # not loaded twice
        assert again.changed() == 0
    finally:
        _docker("rmi", standin)


# ------------------------------------------------------------- what converge did here


@without_image
def test_converge_skipped_neo4j(host):
    ids = host.check_output(f"docker ps -aq --filter label=com.docker.compose.project={PROJECT}")
    assert ids == ""
    compose = yaml.safe_load(host.file(f"{STACK_DIR}/compose.yml").content_string)
    assert compose["services"] == {}
    assert compose["volumes"] == {} and compose["secrets"] == {}
    assert not host.file(f"{STACK_DIR}/neo4j").exists
    assert not host.file(f"{STACK_DIR}/secrets/neo4j_auth").exists
    volumes = host.check_output(f"docker volume ls -q --filter name={PROJECT}_neo4j")
    assert volumes == ""


# -------------------------------------------------- the live server (needs the image)


def _password() -> str:
    return yaml.safe_load(SECRETS.read_text())["neo4j_password"]


def _cypher(query: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
    return _docker(
        "exec",
        "-e",
        f"NEO4J_PASSWORD={password or _password()}",
        CONTAINER,
        "cypher-shell",
        "-u",
        "neo4j",
        "--format",
        "plain",
        query,
    )


def _to_bytes(value: str) -> int:
    match = re.fullmatch(r"\s*([0-9.]+)\s*([KMGT]?)(i?B)?\s*", value, re.IGNORECASE)
    assert match, value
    power = " KMGT".index(match.group(2).upper() or " ")
    return int(float(match.group(1)) * 1024**power)


def _wait_healthy(timeout: int = 420) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = _docker(
            "inspect", "--format", "{{.State.Health.Status}}", CONTAINER
        ).stdout.strip()
        if status == "healthy":
            return
        time.sleep(5)
    raise AssertionError(f"{CONTAINER} not healthy after {timeout}s")


@needs_image
def test_live_healthy_and_hardened():
    info = json.loads(_docker("inspect", CONTAINER).stdout)[0]
    assert info["State"]["Health"]["Status"] == "healthy"
    cfg = info["HostConfig"]
    assert cfg["CapDrop"] == ["ALL"]
    assert "no-new-privileges:true" in cfg["SecurityOpt"]
    assert cfg["Memory"] == 8 * GIB
    assert cfg["MemoryReservation"] == 4 * GIB
    assert cfg["PortBindings"] in ({}, None)
    assert info["Config"]["User"] == "7474:7474"
    assert list(info["NetworkSettings"]["Networks"]) == [f"{PROJECT}_data"]


@needs_image
def test_live_return_1_with_password():
    proc = _cypher("RETURN 1 AS one")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["one", "1"]
    assert _cypher("RETURN 1", password="wrong-password").returncode != 0


@needs_image
def test_live_memory_settings():
    proc = _cypher(
        "SHOW SETTINGS 'server.memory.heap.initial_size', 'server.memory.heap.max_size', "
        "'server.memory.pagecache.size' YIELD name, value RETURN name, value"
    )
    assert proc.returncode == 0, proc.stderr
    live = {}
    for line in proc.stdout.splitlines()[1:]:
        name, value = (part.strip().strip('"') for part in line.split(",", 1))
        live[name] = _to_bytes(value)
    assert live == {
        "server.memory.heap.initial_size": 2 * GIB,
        "server.memory.heap.max_size": 4 * GIB,
        "server.memory.pagecache.size": 2 * GIB,
    }


@needs_image
def test_live_data_survives_restart():
    assert _cypher("MERGE (n:MoleculeCheck {k: 'persisted'}) RETURN n.k").returncode == 0
    assert _docker("restart", "--time", "120", CONTAINER).returncode == 0
    _wait_healthy()
    proc = _cypher("MATCH (n:MoleculeCheck) RETURN n.k AS k")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["k", '"persisted"']
