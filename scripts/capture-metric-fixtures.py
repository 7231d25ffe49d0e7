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
  Bolt probe would be: a TCP connect) and https (the self-signed TLS server);
- the reference app (the nexus image, kailash-nexus[metrics]) built as the API builds it
  (kailash_app.api.build_app, metrics on NEXUS_METRICS_PORT), a few requests, its metrics
  port scraped and checked with ``promtool check metrics`` (nexus_app.prom);
- the project's Celery exporter (roles/celery_exporter's image) on the Redis container with
  a Celery worker of the same pinned Celery (task events on) that runs a succeeding and a
  failing task, and two messages left in a queue no worker consumes (celery_exporter.prom).

Never touches other containers (Compose project ``kailash`` included).
Usage: .venv/bin/python scripts/capture-metric-fixtures.py [--out DIR]
  --out: write the fixtures there instead of tests/monitoring/fixtures.
  KAILASH_PG_IMAGE / KAILASH_REDIS_IMAGE / KAILASH_NGINX_IMAGE / KAILASH_NEXUS_IMAGE /
  KAILASH_CELERY_EXPORTER_IMAGE override the image tags.
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
# images of the project's own metric producers (containers started by capture_app)
APP_IMAGES = {
    "nexus": os.environ.get("KAILASH_NEXUS_IMAGE", "kailash/nexus-app:1.0.0-bookworm"),
    "celery_exporter": os.environ.get(
        "KAILASH_CELERY_EXPORTER_IMAGE", "kailash/celery-exporter:1.0.0-bookworm"
    ),
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
    global FIXTURES  # noqa: PLW0603 - --out redirects save()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=FIXTURES, help="directory of the fixtures")
    FIXTURES = parser.parse_args().out
    bindir = Path(
        run(str(ROOT / "scripts" / "monitoring-tools.sh")).stdout.strip().splitlines()[-1]
    )
    for image in [*IMAGES.values(), *APP_IMAGES.values()]:
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
        capture_app(network, ips["redis"], bindir, names)
        print("capture: done")
    finally:
        procs.stop()
        for name in names.values():
            run("docker", "rm", "-f", "-v", name, check=False)
        run("docker", "network", "rm", network, check=False)
        shutil.rmtree(tmp, ignore_errors=True)


APP_MAIN = """\
import os
from kailash_app import config
config.configure_logging()
from kailash_app import api
api.build_app().start()
"""

APP_REQUESTS = """\
import subprocess, urllib.error, urllib.request
token = subprocess.run(["kailash-app", "token", "--sub", "fixture"], capture_output=True,
                       text=True, check=True).stdout.strip()
for path, auth in [("/health", 0), ("/health", 0), ("/health", 0), ("/nope", 0),
                   ("/nope", 1), ("/metrics", 1)]:
    req = urllib.request.Request("http://127.0.0.1:8000" + path,
                                 headers={"Authorization": "Bearer " + token} if auth else {})
    try:
        urllib.request.urlopen(req, timeout=10).read()
    except urllib.error.HTTPError:
        pass
"""

CELERY_WORKER = """\
import os
from celery import Celery
app = Celery("fixture", broker=os.environ["BROKER"])
app.conf.update(worker_send_task_events=True, task_send_sent_event=True,
                worker_enable_remote_control=False, task_default_queue="kailash-batch")

@app.task(name="fixture.ok")
def ok():
    return 1

@app.task(name="fixture.fail")
def fail():
    raise ValueError("fixture failure")

if os.environ.get("SEND"):
    for _ in range(3):
        ok.apply_async(queue="kailash-batch")
    fail.apply_async(queue="kailash-batch")
    for _ in range(2):
        ok.apply_async(queue="idle")
else:
    app.worker_main(["worker", "--pool=solo", "--without-gossip", "--without-mingle",
                     "--queues=kailash-batch", "--hostname=fixture-worker@fixture",
                     "--loglevel=WARNING"])
"""


def exec_python(container: str, code: str, *env: str) -> str:
    flags = [item for e in env for item in ("-e", e)]
    return run("docker", "exec", *flags, container, "python", "-c", code).stdout


def pip_versions(image: str, *packages: str) -> str:
    """``name version`` of each package installed in ``image`` (importlib.metadata)."""
    code = ("import importlib.metadata as m, sys; "
            "print(', '.join(f'{p} {m.version(p)}' for p in sys.argv[1:]))")
    return run("docker", "run", "--rm", "--entrypoint", "/bin/sh", image, "-c",
               'for p in /opt/*/venv/bin/python; do exec "$p" -c "$0" "$@"; done', code,
               *packages).stdout.strip()


def capture_app(network: str, redis_ip: str, bindir: Path, names: dict[str, str]) -> None:
    """nexus_app.prom and celery_exporter.prom (see the module's docstring)."""
    common = ("docker", "run", "-d", "--network", network, "--label", "io.kailash.fixture=true")
    app = names["nexus"] = f"{PREFIX}-nexus"
    run(
        *common, "--name", app, "-e", "NEXUS_METRICS_PORT=9464",
        "-e", "NEXUS_JWT_SECRET=fixture-only-jwt-secret-of-at-least-32-bytes",
        "--entrypoint", "python", APP_IMAGES["nexus"], "-c", APP_MAIN,
    )  # fmt: skip
    scrape = "import urllib.request; print(urllib.request.urlopen('{}', timeout=5).read().decode())"
    wait_for("the app", lambda: exec_python(app, scrape.format("http://127.0.0.1:8000/health")),
             timeout=120)
    exec_python(app, APP_REQUESTS)
    text = exec_python(app, scrape.format("http://127.0.0.1:9464/metrics"))
    if 'route="/health"' not in text:
        raise SystemExit("capture: the app's scrape has no /health requests")
    check = subprocess.run([str(bindir / "promtool"), "check", "metrics"], input=text,
                           capture_output=True, text=True, check=False)
    if check.returncode != 0:
        raise SystemExit(f"capture: promtool check metrics rejects the app's scrape:\n"
                         f"{check.stdout}{check.stderr}")
    versions = pip_versions(APP_IMAGES["nexus"], "kailash-nexus", "prometheus_client")
    save("nexus_app", text, f"{versions}; kailash_app.metrics (NEXUS_METRICS_PORT)")

    broker = f"redis://{redis_ip}:6379/1"
    worker = names["celery_worker"] = f"{PREFIX}-celery-worker"
    exporter = names["celery_exporter"] = f"{PREFIX}-celery-exporter"
    run(
        *common, "--name", worker, "-e", f"BROKER={broker}",
        "--entrypoint", "/opt/celery-exporter/venv/bin/python",
        APP_IMAGES["celery_exporter"], "-c", CELERY_WORKER,
    )  # fmt: skip
    run(
        *common, "--name", exporter, "-e", f"CELERY_EXPORTER_BROKER_HOST={redis_ip}",
        "-e", "CELERY_EXPORTER_BROKER_DB=1", "-e", "CELERY_EXPORTER_QUEUES=kailash-batch,idle",
        "-e", "LOG_LEVEL=WARNING", APP_IMAGES["celery_exporter"],
    )  # fmt: skip
    metrics = scrape.format("http://127.0.0.1:9808/metrics")
    exporter_py = "/opt/celery-exporter/venv/bin/python"

    def exporter_scrape() -> str:
        return run("docker", "exec", exporter, exporter_py, "-c", metrics).stdout

    wait_for("the Celery worker's heartbeat",
             lambda: 'celery_worker_up{hostname="fixture-worker@fixture"} 1.0' in exporter_scrape())
    run("docker", "exec", "-e", "SEND=1", "-e", f"BROKER={broker}", worker, exporter_py, "-c",
        CELERY_WORKER)
    text = wait_for("the Celery task events", lambda: _all_in(exporter_scrape(), (
        'celery_task_failed_total{exception="ValueError",hostname="fixture-worker@fixture",'
        'name="fixture.fail",queue_name="kailash-batch"} 1.0',
        'celery_task_succeeded_total{hostname="fixture-worker@fixture",name="fixture.ok",'
        'queue_name="kailash-batch"} 3.0',
        'celery_queue_length{queue_name="idle"} 2.0',
        'celery_queue_length{queue_name="kailash-batch"} 0.0',
    )))
    check = subprocess.run([str(bindir / "promtool"), "check", "metrics"], input=text,
                           capture_output=True, text=True, check=False)
    if check.returncode != 0:
        raise SystemExit(f"capture: promtool check metrics rejects the exporter's scrape:\n"
                         f"{check.stdout}{check.stderr}")
    versions = pip_versions(APP_IMAGES["celery_exporter"], "celery", "kombu", "prometheus_client")
    save("celery_exporter", text, f"{versions}; roles/celery_exporter (worker: same Celery)")


def _all_in(text: str, wanted: tuple[str, ...]) -> str | None:
    return text if all(w in text for w in wanted) else None


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
