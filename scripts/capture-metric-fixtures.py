#!/usr/bin/env python3
"""Captures tests/monitoring/fixtures/*.prom: real /metrics scrapes of the pinned Debian
exporters (scripts/monitoring-tools.sh) against throwaway containers of the project's own
images, so the alert rules' metric names are checked against what these exporter versions
really emit (tests/unit/test_monitoring_rules.py).

What runs (all removed afterwards, whatever happens):
- a Docker network and containers named ``mon-fixture-<pid>-*`` (no published ports):
  PostgreSQL (kailash/postgresql, two extra databases so pg_stat_* carry several datname),
  Redis (kailash/redis, maxmemory set) and NGINX (kailash/nginx: stub_status, a
  /api/v2/heartbeat stand-in for ChromaDB's and a TLS server with a self-signed certificate);
- the exporters on the host (Debian's Go builds), listening on 127.0.0.1 random ports,
  reaching the containers by their addresses on that network;
- node_exporter with a textfile directory holding a drill file written by the restore
  drill's own code (plugins/module_utils/kailash_backup/drills.py write_drill_records);
- blackbox_exporter probes: http (the heartbeat stand-in), tcp (Redis' port, as the Neo4j
  Bolt probe would be: a TCP connect) and https (the self-signed TLS server).

Never touches other containers (Compose project ``kailash`` included).
Usage: .venv/bin/python scripts/capture-metric-fixtures.py [--images-from-env]
  KAILASH_PG_IMAGE / KAILASH_REDIS_IMAGE / KAILASH_NGINX_IMAGE override the image tags.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "monitoring" / "fixtures"
PREFIX = f"mon-fixture-{os.getpid()}"
IMAGES = {
    "postgresql": os.environ.get("KAILASH_PG_IMAGE", "kailash/postgresql:15-bookworm"),
    "redis": os.environ.get("KAILASH_REDIS_IMAGE", "kailash/redis:7.0-bookworm"),
    "nginx": os.environ.get("KAILASH_NGINX_IMAGE", "kailash/nginx:1.22-bookworm"),
}
PG_PASSWORD = "fixture-only-password"

NGINX_CONF = """\
worker_processes 1;
pid /tmp/nginx.pid;
error_log stderr;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path /tmp/body;
  proxy_temp_path /tmp/proxy;
  fastcgi_temp_path /tmp/fastcgi;
  uwsgi_temp_path /tmp/uwsgi;
  scgi_temp_path /tmp/scgi;
  server {
    listen 8080;
    location = /stub_status { stub_status; }
    location = /api/v2/heartbeat {
      default_type application/json;
      return 200 '{"nanosecond heartbeat": 1}';
    }
  }
  server {
    listen 8443 ssl;
    ssl_certificate /conf/tls.crt;
    ssl_certificate_key /conf/tls.key;
    location / { return 200 "ok"; }
  }
}
"""

BLACKBOX_CONF = """\
modules:
  http_2xx:
    prober: http
    timeout: 5s
  tcp_connect:
    prober: tcp
    timeout: 5s
  https_selfsigned:
    prober: http
    timeout: 5s
    http:
      fail_if_not_ssl: true
      tls_config:
        insecure_skip_verify: true
"""


def run(*cmd: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, capture_output=True, text=True, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, probe, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = probe()
            if result:
                return result
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            last = exc
        time.sleep(0.5)
    raise SystemExit(f"capture: {what} not ready after {timeout:.0f} s ({last})")


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - loopback only
        return resp.read().decode()


def container_ip(name: str, network: str) -> str:
    fmt = f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}'
    return run("docker", "inspect", "-f", fmt, name).stdout.strip()


def version_of(binary: Path) -> str:
    out = run(str(binary), "--version", check=False)
    line = (out.stdout + out.stderr).strip().splitlines()[0]
    match = re.search(r'msg="([^"]*)"', line)  # redis_exporter logs its version (logfmt)
    return " ".join((match.group(1) if match else line).split())


def save(name: str, text: str, source: str) -> None:
    header = f"# fixture {name}: captured by scripts/capture-metric-fixtures.py; {source}\n"
    (FIXTURES / f"{name}.prom").write_text(header + text if text.endswith("\n") else text + "\n")
    print(f"capture: {name}.prom ({len(text.splitlines())} lines)")


def drill_textfile(directory: Path) -> None:
    """The drill's own writer (not a hand-copied format)."""
    package = ROOT / "plugins" / "module_utils" / "kailash_backup"
    spec = importlib.util.spec_from_file_location(
        "kailash_backup_core", package / "__init__.py", submodule_search_locations=[str(package)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["kailash_backup_core"] = module
    spec.loader.exec_module(module)
    drills = sys.modules["kailash_backup_core.drills"]
    report = {
        "project": "kailash",
        "passed": True,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "duration_s": 12.5,
    }
    drills.write_drill_records(report, None, str(directory))


class Procs:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, *cmd: str, env: dict | None = None) -> None:
        self.procs.append(
            subprocess.Popen(
                cmd,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
            )
        )

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            if proc.poll() is None:
                proc.kill()


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    bindir = Path(
        run(str(ROOT / "scripts" / "monitoring-tools.sh")).stdout.strip().splitlines()[-1]
    )
    for image in IMAGES.values():
        if run("docker", "image", "inspect", image, check=False).returncode != 0:
            raise SystemExit(f"capture: image {image} missing (make host / make deploy build it)")
    FIXTURES.mkdir(parents=True, exist_ok=True)
    network = f"{PREFIX}-net"
    names = {svc: f"{PREFIX}-{svc}" for svc in IMAGES}
    tmp = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-"))
    procs = Procs()
    try:
        run("docker", "network", "create", "--label", "io.kailash.fixture=true", network)
        conf = tmp / "nginx"
        conf.mkdir()
        (conf / "nginx.conf").write_text(NGINX_CONF)
        run(
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
            "-subj", "/CN=mon-fixture.invalid", "-keyout", str(conf / "tls.key"),
            "-out", str(conf / "tls.crt"),
        )  # fmt: skip
        for path in conf.iterdir():
            path.chmod(0o644)
        conf.chmod(0o755)
        common = ("docker", "run", "-d", "--network", network, "--label", "io.kailash.fixture=true")
        run(
            *common, "--name", names["postgresql"], "-e", f"POSTGRES_PASSWORD={PG_PASSWORD}",
            IMAGES["postgresql"], "postgres", "-c", "listen_addresses=*",
        )  # fmt: skip
        run(
            *common, "--name", names["redis"], IMAGES["redis"],
            "redis-server", "--protected-mode", "no", "--maxmemory", "64mb", "--save", "",
        )  # fmt: skip
        run(
            *common, "--name", names["nginx"], "-v", f"{conf}:/conf:ro",
            IMAGES["nginx"], "nginx", "-c", "/conf/nginx.conf", "-g", "daemon off;",
        )  # fmt: skip
        ips = {svc: container_ip(name, network) for svc, name in names.items()}

        def pg_ready() -> bool:
            out = run(
                "docker", "exec", "-e", f"PGPASSWORD={PG_PASSWORD}", names["postgresql"],
                "psql", "-h", "127.0.0.1", "-U", "postgres", "-tAc", "SELECT 1", check=False,
            )  # fmt: skip
            return out.stdout.strip() == "1"

        wait_for("PostgreSQL", pg_ready)
        for db in ("kailash", "dataflow"):
            run(
                "docker", "exec", "-e", f"PGPASSWORD={PG_PASSWORD}", names["postgresql"],
                "psql", "-h", "127.0.0.1", "-U", "postgres", "-c", f"CREATE DATABASE {db}",
            )  # fmt: skip

        textfile = tmp / "textfile"
        textfile.mkdir()
        drill_textfile(textfile)
        (tmp / "blackbox.yml").write_text(BLACKBOX_CONF)

        ports = {k: free_port() for k in ("pg", "redis", "nginx", "node", "blackbox")}
        dsn = f"postgresql://postgres:{PG_PASSWORD}@{ips['postgresql']}:5432/postgres"
        procs.start(
            str(bindir / "postgres_exporter"), f"--web.listen-address=127.0.0.1:{ports['pg']}",
            env={"DATA_SOURCE_NAME": dsn + "?sslmode=disable"},
        )  # fmt: skip
        procs.start(
            str(bindir / "redis_exporter"), f"--redis.addr=redis://{ips['redis']}:6379",
            f"--web.listen-address=127.0.0.1:{ports['redis']}",
        )  # fmt: skip
        procs.start(
            str(bindir / "nginx_exporter"),
            f"-nginx.scrape-uri=http://{ips['nginx']}:8080/stub_status",
            f"-web.listen-address=127.0.0.1:{ports['nginx']}",
        )  # fmt: skip
        procs.start(
            str(bindir / "node_exporter"), f"--web.listen-address=127.0.0.1:{ports['node']}",
            f"--collector.textfile.directory={textfile}",
        )  # fmt: skip
        procs.start(
            str(bindir / "blackbox_exporter"), f"--config.file={tmp / 'blackbox.yml'}",
            f"--web.listen-address=127.0.0.1:{ports['blackbox']}",
        )  # fmt: skip

        base = "http://127.0.0.1:{}/metrics"
        exporters = {  # fixture name: (port, metric that is 1 once the service is reached)
            "postgres_exporter": ("pg", "pg_up"),
            "redis_exporter": ("redis", "redis_up"),
            "nginx_exporter": ("nginx", "nginx_up"),
            "node_exporter": ("node", "kailash_restore_drill_passed"),
        }
        for name, (port, ready) in exporters.items():
            url = base.format(ports[port])
            text = wait_for(name, lambda u=url, r=ready: _up(get(u), r))
            save(name, normalise(text, ips), version_of(bindir / name))
        probe = "http://127.0.0.1:{}/probe?module={}&target={}"
        probes = {
            "blackbox_http": ("http_2xx", f"http://{ips['nginx']}:8080/api/v2/heartbeat"),
            "blackbox_tcp": ("tcp_connect", f"{ips['redis']}:6379"),
            "blackbox_tls": ("https_selfsigned", f"https://{ips['nginx']}:8443/"),
        }
        for name, (module, target) in probes.items():
            url = probe.format(ports["blackbox"], module, target)
            text = wait_for(name, lambda u=url: _up(get(u), "probe_success"))
            version = version_of(bindir / "blackbox_exporter")
            save(name, normalise(text, ips), f"{version}; module {module}")
        print("capture: done")
    finally:
        procs.stop()
        for name in names.values():
            run("docker", "rm", "-f", "-v", name, check=False)
        run("docker", "network", "rm", network, check=False)
        shutil.rmtree(tmp, ignore_errors=True)


def normalise(text: str, ips: dict[str, str]) -> str:
    """Container addresses replaced by the service names (stable fixtures)."""
    for service, ip in ips.items():
        text = re.sub(rf"\b{re.escape(ip)}\b", service, text)
    return text


def _up(text: str, metric: str) -> str | None:
    """The scrape when ``metric`` is 1 (the exporter reached its service), else None."""
    for line in text.splitlines():
        if line.startswith(metric) and line.split()[-1] in ("1", "1.0"):
            return text
    return None


if __name__ == "__main__":
    main()
