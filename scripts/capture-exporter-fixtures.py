#!/usr/bin/env python3
"""Captures the fixture scrapes of the edge's exporters, the container exporter and the
blackbox TLS module (tests/monitoring/fixtures/*.prom; checked by
tests/unit/test_monitoring_rules.py), from the pinned Debian builds (scripts/monitoring-tools.sh)
and the project's own code, against throwaway containers. A companion of
scripts/capture-metric-fixtures.py (which captures the datastore and host exporters).

What runs (all removed afterwards, whatever happens), named ``mon-fixture-<pid>-*``:
- NGINX (kailash/nginx) with the edge role's own nginx.conf template, rendered with the edge
  metrics on (stub_status listener, the metrics log mtail reads); its upstreams point at
  127.0.0.1 where nothing listens, so HTTPS requests get real 502s and HTTP ones 301s;
- mtail with roles/mtail/files/edge.mtail on the host, reading the log file NGINX appends to
  (mtail_edge.prom); nginx_exporter on the edge's stub_status (nginx_exporter_edge.prom);
- blackbox_exporter with roles/blackbox_exporter's default modules, its ``tls`` module on
  the edge's HTTPS port (blackbox_tls_edge.prom);
- roles/container_exporter/files/container_exporter.py for a container with memory and CPU
  limits (the NGINX one) and one without (container_exporter.prom).

Never touches other containers. Usage: .venv/bin/python scripts/capture-exporter-fixtures.py
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import jinja2
import yaml

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "monitoring" / "fixtures"
PREFIX = f"mon-fixture-{os.getpid()}"
NGINX_IMAGE = os.environ.get("KAILASH_NGINX_IMAGE", "kailash/nginx:1.22-bookworm")
BASE_IMAGE = os.environ.get("KAILASH_BASE_IMAGE", "kailash/base:bookworm")
EDGE = ROOT / "roles" / "edge"


def _shared():
    """The helpers this script shares with scripts/capture-metric-fixtures.py (run, free_port,
    get, wait_for, version_of): loaded from that file, whose name is no module name."""
    spec = importlib.util.spec_from_file_location(
        "capture_metric_fixtures", Path(__file__).with_name("capture-metric-fixtures.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_SHARED = _shared()
run, free_port, get, wait_for, version_of = (
    _SHARED.run, _SHARED.free_port, _SHARED.get, _SHARED.wait_for, _SHARED.version_of)


def save(name: str, text: str, source: str) -> None:
    header = f"# fixture {name}: captured by scripts/capture-exporter-fixtures.py; {source}\n"
    (FIXTURES / f"{name}.prom").write_text(header + text if text.endswith("\n") else text + "\n")
    print(f"capture: {name}.prom ({len(text.splitlines())} lines)")


def edge_conf(subnet: str) -> str:
    """roles/edge's nginx.conf template with its defaults and the edge metrics on."""
    defaults = yaml.safe_load((EDGE / "defaults" / "main.yml").read_text())
    variables = yaml.safe_load((EDGE / "vars" / "main.yml").read_text())
    env = jinja2.Environment(  # Ansible's template settings
        loader=jinja2.FileSystemLoader(str(EDGE / "templates")),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["bool"] = bool
    values = {
        **{k: v for k, v in defaults.items() if not (isinstance(v, str) and "{{" in v)},
        "edge__http_port": variables["edge__http_port"],
        "edge__https_port": variables["edge__https_port"],
        "edge__metrics_log_file": variables["edge__metrics_log_file"],
        "edge_stub_status": True,
        "edge_metrics_log": True,
        "kailash_project": "mon-fixture",
        "kailash_networks": {"edge": subnet},
        "ansible_managed": "scripts/capture-exporter-fixtures.py",
    }
    return env.get_template("etc/nginx/nginx.conf.j2").render(**values)


def normalise(text: str, ip: str) -> str:
    return re.sub(rf"\b{re.escape(ip)}\b", "edge", text)


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    bindir = Path(
        run(str(ROOT / "scripts" / "monitoring-tools.sh")).stdout.strip().splitlines()[-1]
    )
    for image in (NGINX_IMAGE, BASE_IMAGE):
        if run("docker", "image", "inspect", image, check=False).returncode != 0:
            raise SystemExit(f"capture: image {image} missing (make host / make deploy build it)")
    FIXTURES.mkdir(parents=True, exist_ok=True)
    network, edge, idle = f"{PREFIX}-net", f"{PREFIX}-edge", f"{PREFIX}-unlimited"
    tmp = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-"))
    procs: list[subprocess.Popen] = []
    label = (
        "--label",
        "io.kailash.fixture=true",
        "--label",
        f"com.docker.compose.project={PREFIX}",
    )
    try:
        run("docker", "network", "create", "--label", "io.kailash.fixture=true", network)
        subnet = run(
            "docker", "network", "inspect", "-f", "{{(index .IPAM.Config 0).Subnet}}", network
        ).stdout.strip()
        conf, tls, sock = tmp / "conf", tmp / "tls", tmp / "sock"
        for d in (conf, tls, sock):
            d.mkdir()
            d.chmod(0o777)
        (conf / "nginx.conf").write_text(edge_conf(subnet))
        run(
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
            "-subj", "/CN=kailash.localhost", "-keyout", str(tls / "tls.key"),
            "-out", str(tls / "tls.crt"),
        )  # fmt: skip
        for path in [*conf.iterdir(), *tls.iterdir()]:
            path.chmod(0o644)

        # the log exists before mtail starts (it polls the files it found then), writable by
        # NGINX's uid, as roles/mtail's entry point leaves it
        ports = {k: free_port() for k in ("mtail", "nginx", "blackbox", "containers")}
        (sock / "access.log").touch()
        (sock / "access.log").chmod(0o666)
        procs.append(subprocess.Popen(
            [str(bindir / "mtail"), f"-progs={ROOT / 'roles/mtail/files'}",
             f"-logs={sock / 'access.log'}", "-address=127.0.0.1",
             f"-port={ports['mtail']}", "-logtostderr"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=lambda: os.umask(0),
        ))  # fmt: skip
        run(
            "docker", "run", "-d", "--name", edge, *label,
            "--label", "com.docker.compose.service=edge", "--network", network,
            "--memory", "64m", "--cpus", "0.5", "--read-only", "--tmpfs", "/tmp",
            "--add-host", "nexus-api:127.0.0.1", "--add-host", "nexus-websocket:127.0.0.1",
            "-v", f"{conf / 'nginx.conf'}:/etc/nginx/nginx.conf:ro",
            "-v", f"{tls}:/etc/nginx/tls:ro", "-v", f"{sock}:/run/edge-log",
            NGINX_IMAGE, "nginx", "-g", "daemon off;",
        )  # fmt: skip
        run(
            "docker", "run", "-d", "--name", idle, *label,
            "--label", "com.docker.compose.service=unlimited", "--network", "none",
            BASE_IMAGE, "sleep", "300",
        )  # fmt: skip
        fmt = f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}'
        ip = run("docker", "inspect", "-f", fmt, edge).stdout.strip()

        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE

        def request(url: str) -> int:
            try:
                with urllib.request.urlopen(url, timeout=5, context=insecure) as resp:  # noqa: S310
                    return resp.status
            except urllib.error.HTTPError as exc:
                return exc.code

        wait_for("the edge", lambda: request(f"https://{ip}:8443/") == 502)
        for _ in range(5):
            request(f"https://{ip}:8443/api/anything")  # 502: no upstream listens
        opener = urllib.request.build_opener(NoRedirect)
        for _ in range(3):
            with contextlib.suppress(urllib.error.HTTPError):
                opener.open(f"http://{ip}:8080/", timeout=5)  # 301 to HTTPS

        procs.append(subprocess.Popen(
            [str(bindir / "nginx_exporter"), f"-nginx.scrape-uri=http://{ip}:8081/stub_status",
             f"-web.listen-address=127.0.0.1:{ports['nginx']}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))  # fmt: skip
        modules = yaml.safe_load((ROOT / "roles/blackbox_exporter/defaults/main.yml").read_text())[
            "blackbox_exporter_modules"
        ]
        (tmp / "blackbox.yml").write_text(yaml.safe_dump({"modules": modules}))
        procs.append(subprocess.Popen(
            [str(bindir / "blackbox_exporter"), f"--config.file={tmp / 'blackbox.yml'}",
             f"--web.listen-address=127.0.0.1:{ports['blackbox']}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))  # fmt: skip
        procs.append(subprocess.Popen(
            [sys.executable, str(ROOT / "roles/container_exporter/files/container_exporter.py"),
             f"--listen=127.0.0.1:{ports['containers']}", f"--project={PREFIX}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))  # fmt: skip

        base = "http://127.0.0.1:{}/metrics"
        text = wait_for(
            "mtail's request counters",
            lambda: _having(get(base.format(ports["mtail"])), 'status="502"}', 'status="301"}'),
        )  # fmt: skip
        save("mtail_edge", text, version_of(bindir / "mtail"))
        text = wait_for("nginx_up 1", lambda: _up(get(base.format(ports["nginx"])), "nginx_up"))
        save("nginx_exporter_edge", normalise(text, ip), version_of(bindir / "nginx_exporter"))
        url = f"http://127.0.0.1:{ports['blackbox']}/probe?module=tls&target={ip}:8443"
        text = wait_for("the TLS probe", lambda: _up(get(url), "probe_success"))
        version = version_of(bindir / "blackbox_exporter")
        save("blackbox_tls_edge", normalise(text, ip), f"{version}; module tls")
        text = wait_for(
            "both containers",
            lambda: _having(
                get(base.format(ports["containers"])), f'name="{edge}"', f'name="{idle}"'
            ),
        )  # fmt: skip
        text = re.sub(rf"{PREFIX}", "mon-fixture", text)
        save("container_exporter", text, "roles/container_exporter/files/container_exporter.py")
        print("capture: done")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        for name in (edge, idle):
            run("docker", "rm", "-f", "-v", name, check=False)
        run("docker", "network", "rm", network, check=False)
        shutil.rmtree(tmp, ignore_errors=True)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _having(text: str, *needles: str) -> str | None:
    return text if all(n in text for n in needles) else None


def _up(text: str, metric: str) -> str | None:
    for line in text.splitlines():
        if line.startswith(metric) and line.split()[-1] in ("1", "1.0"):
            return text
    return None


if __name__ == "__main__":
    main()
