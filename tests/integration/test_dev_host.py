"""The Docker dev host on this machine, provisioned by playbooks/dev_host.yml.

These run against the real engine `make host` set up on this machine (root, no
systemd: dockerd started by the role) and the base image built by image_base.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from kailash_testlib import run_playbook

pytestmark = pytest.mark.usefixtures("docker_available")

DAEMON_JSON = Path("/etc/docker/daemon.json")


def _docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True,
                          check=True).stdout


def _base_id() -> str:
    return _docker("image", "inspect", "--format", "{{.Id}}", "kailash/base:bookworm")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_second_run_changes_nothing():
    run = run_playbook("playbooks/dev_host.yml")
    assert run.rc == 0, run.output[-3000:]
    assert run.recap()["changed"] == 0, run.output[-3000:]


def test_check_mode_changes_nothing():
    before = _digest(DAEMON_JSON)
    run = run_playbook("playbooks/dev_host.yml", "--check", "--diff")
    assert run.rc == 0, run.output[-3000:]
    assert run.recap()["changed"] == 0, run.output[-3000:]
    assert _digest(DAEMON_JSON) == before


def test_daemon_config_is_live():
    info = json.loads(_docker("info", "--format", "{{json .}}"))
    assert info["LiveRestoreEnabled"] is True
    assert info["LoggingDriver"] == "json-file"
    cfg = json.loads(DAEMON_JSON.read_text())
    assert cfg["log-opts"]["max-size"] == "10m"
    # CIS Docker Benchmark 2.2, 2.14, 2.16 (docs/security.md); userland-proxy from
    # docker_host_userland_proxy auto: false on plain Linux with iptables
    assert cfg["icc"] is False
    assert cfg["no-new-privileges"] is True
    assert cfg["userland-proxy"] is False
    status = _docker("run", "--rm", "--network", "none", "kailash/base:bookworm",
                     "grep", "^NoNewPrivs:", "/proc/self/status")
    assert status.split() == ["NoNewPrivs:", "1"]


def test_userland_proxy_auto_keeps_docker_proxy_without_iptables():
    """auto resolves to true when daemon.json disables iptables (no DNAT rules then), and
    the icc override that combination needs is accepted; check mode changes nothing."""
    before = _digest(DAEMON_JSON)
    run = run_playbook("playbooks/dev_host.yml", "--check", "--diff",
                       extra={"docker_host_daemon_config_overrides": {"iptables": False,
                                                                      "icc": True}})
    assert run.rc == 0, run.output[-3000:]
    assert '+  "userland-proxy": true' in run.output, run.output[-3000:]
    assert '+  "iptables": false' in run.output, run.output[-3000:]
    assert _digest(DAEMON_JSON) == before


def test_compose_v2_answers():
    assert _docker("compose", "version", "--short").strip().split(".")[0] == "2"


BAD_INPUTS = [
    ({"docker_host_daemon_config": ["log-driver", "json-file"]}, "docker_host_daemon_config"),
    ({"docker_host_daemon_config_overrides": "not a dict"}, "docker_host_daemon_config_overrides"),
    ({"docker_host_engine_source": "snap"}, "docker_host_engine_source"),
    ({"image_base_source": "registry"}, "image_base_source"),
    ({"kailash_image_source": "registry"}, "kailash_image_source must be one of"),
    ({"docker_host_users": [{"name": "alice"}]}, "docker_host_users"),
    ({"docker_host_users": "alice bob"}, "docker_host_users"),
    ({"docker_host_users": ["no-such-user-kailash"]}, "docker_host_users"),
    ({"docker_host_sysctls": {"vm.overcommit_memory": "yes"}}, "docker_host_sysctls"),
    ({"docker_host_userland_proxy": "maybe"}, "docker_host_userland_proxy"),
    # dockerd refuses icc=false without iptables: refused here, before daemon.json changes
    ({"docker_host_daemon_config_overrides": {"iptables": False}},
     "docker_host_daemon_config_overrides"),
]


@pytest.mark.parametrize(("extra", "variable"), BAD_INPUTS,
                         ids=[f"{next(iter(e))}={json.dumps(next(iter(e.values())))}"
                              for e, _ in BAD_INPUTS])
def test_bad_input_rejected_before_any_change(extra, variable):
    before = _digest(DAEMON_JSON)
    # the only image this playbook builds (other images may come and go meanwhile)
    base_before = _base_id()
    run = run_playbook("playbooks/dev_host.yml", extra=extra)
    assert run.rc != 0
    assert variable in run.output, run.output[-3000:]
    assert run.recap().get("changed", 0) == 0, run.output[-3000:]
    assert _digest(DAEMON_JSON) == before
    assert _base_id() == base_before


def test_base_image_is_usable_offline():
    labels = json.loads(_docker("image", "inspect", "--format", "{{json .Config.Labels}}",
                                "kailash/base:bookworm"))
    assert len(labels["io.kailash.base.recipe"]) == 40
    host_bundle = Path("/etc/ssl/certs/ca-certificates.crt").read_text()
    script = (
        "set -e; cat /etc/ssl/certs/ca-certificates.crt | sha256sum; "
        "echo SSL_CERT_FILE=$SSL_CERT_FILE; python3 --version; "
        "/usr/sbin/policy-rc.d; echo policy=$?"
    )
    proc = subprocess.run(["docker", "run", "--rm", "kailash/base:bookworm", "bash", "-c", script],
                          capture_output=True, text=True, check=False)
    out = proc.stdout
    assert hashlib.sha256(host_bundle.encode()).hexdigest() in out
    assert "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt" in out
    assert "Python 3.11" in out
    assert proc.returncode == 101  # policy-rc.d forbids starting daemons during builds
