"""Behaviour of a host converged with the docker_host role (molecule + testinfra).

Runs inside the molecule instance: a Debian 12 container, booted either without
an init (dockerd started by the role) or with systemd as PID 1 (docker.service).
"""

import json


def _systemd(host) -> bool:
    return host.file("/run/systemd/system").is_directory


def test_dockerd_answers(host):
    out = host.check_output("docker info --format '{{json .}}'")
    info = json.loads(out)
    assert info["ServerVersion"]
    # daemon.json from the role variables is live, not just written
    assert info["LoggingDriver"] == "json-file"
    assert info["LiveRestoreEnabled"] is True
    assert info["Driver"] == "vfs"


def test_compose_v2_plugin(host):
    version = host.check_output("docker compose version --short")
    assert version.lstrip("v").split(".")[0] == "2"


def test_daemon_json_merged(host):
    cfg = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert cfg["log-opts"] == {"max-size": "10m", "max-file": "3"}
    assert cfg["storage-driver"] == "vfs"  # from docker_host_daemon_config_overrides
    assert cfg["iptables"] is False
    assert cfg["default-address-pools"][0]["size"] == 24


def test_daemon_json_cis_settings(host):
    """CIS 2.2/2.14/2.16 as this scenario sets them: no iptables inside the instance, so
    icc stays true (its override: dockerd refuses icc=false without iptables) and
    docker_host_userland_proxy auto keeps docker-proxy; no-new-privileges from the defaults."""
    cfg = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert cfg["no-new-privileges"] is True
    assert cfg["icc"] is True
    assert cfg["userland-proxy"] is True


def test_user_in_docker_group(host):
    assert "docker" in host.user("dev").groups


def test_dockerd_supervision(host):
    if _systemd(host):
        assert host.service("docker").is_running
        assert host.service("docker").is_enabled
    else:
        pid = host.file("/var/run/docker.pid").content_string.strip()
        assert host.process.get(pid=int(pid)).comm == "dockerd"


def test_runs_a_container(host):
    """The engine really runs containers: import a two-file image and run it."""
    host.check_output(
        "tar -C / -chf - usr/bin/dash lib64/ld-linux-x86-64.so.2 "
        "usr/lib/x86_64-linux-gnu/libc.so.6 | docker import - kailash/dash-test:1"
    )
    out = host.check_output(
        "docker run --rm --network none kailash/dash-test:1 /usr/bin/dash -c 'echo inner-ok'"
    )
    assert out.strip() == "inner-ok"
    # no-new-privileges from daemon.json is live: dash builtins read /proc/self/status
    status = host.check_output(
        "docker run --rm --network none kailash/dash-test:1 /usr/bin/dash -c "
        "'while read -r k v; do case $k in NoNewPrivs:) echo $v;; esac; done < /proc/self/status'"
    )
    assert status.strip() == "1"


def test_wslconfig_rendered_only_when_asked(host):
    f = host.file("/tmp/windows/.wslconfig")
    if _systemd(host):  # this scenario leaves docker_host_wslconfig_path empty
        assert not f.exists
        return
    assert "memory=16GB" in f.content_string
    assert "processors=2" in f.content_string
