#!/usr/bin/env python3
"""container_exporter: the memory and CPU of a Docker host's containers against their limits,
under cAdvisor's metric names and labels (there is no cAdvisor package here), so the same
rules and dashboards work on Kubernetes (where the kubelet's cAdvisor serves them).

Values come from the kernel: the containers' cgroup files, read-only (cgroup v1 or v2, the
cgroupfs or systemd driver). Names and labels come from the Docker API: one
``GET /containers/json`` per scrape over the Docker socket (nothing else is ever called).

    container_memory_working_set_bytes   usage - inactive_file (cAdvisor's working set)
    container_spec_memory_limit_bytes    the limit; 0 when the container has none (as cAdvisor)
    container_cpu_usage_seconds_total    cumulative CPU time, cpu="total"
    container_spec_cpu_quota             CFS quota in microseconds (only when limited)
    container_spec_cpu_period            CFS period in microseconds
    container_spec_memory_reservation_limit_bytes  the soft limit (mem_reservation; 0 = none)

Labels: id (the cgroup path), name (the container's name), image, container (the Compose
service, else the name), container_label_com_docker_compose_project and
container_label_com_docker_compose_service (cAdvisor's names for Docker labels).
Standard library only. Usage:

    container_exporter.py [--listen :9338] [--docker-socket /var/run/docker.sock]
                          [--cgroup-root /host/cgroup] [--project NAME]
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

UNLIMITED_V1 = 2**62  # cgroup v1 reports "no limit" as a page-rounded 2^63-1
COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"

FAMILIES = [  # (name, type, help)
    ("container_cpu_usage_seconds_total", "counter", "Cumulative cpu time consumed in seconds."),
    ("container_memory_working_set_bytes", "gauge", "Current working set in bytes."),
    ("container_spec_cpu_period", "gauge", "CPU period of the container."),
    ("container_spec_cpu_quota", "gauge", "CPU quota of the container."),
    ("container_spec_memory_limit_bytes", "gauge", "Memory limit for the container."),
    (
        "container_spec_memory_reservation_limit_bytes",
        "gauge",
        "Memory reservation limit for the container.",
    ),
    ("container_exporter_containers", "gauge", "Containers listed by the Docker API."),
    (
        "container_exporter_scrape_error",
        "gauge",
        "1 when the Docker API or a cgroup could not be read in this scrape.",
    ),
]


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 5.0):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


def list_containers(docker_socket: str, project: str) -> list[dict]:
    """Running containers (of ``project`` when given), from GET /containers/json."""
    filters = {"status": ["running"]}
    if project:
        filters["label"] = [f"{COMPOSE_PROJECT}={project}"]
    conn = UnixConnection(docker_socket)
    try:
        conn.request(
            "GET", "/containers/json?" + urllib.parse.urlencode({"filters": json.dumps(filters)})
        )
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise OSError(f"Docker API answered {resp.status}: {body[:200]!r}")
        return json.loads(body)
    finally:
        conn.close()


def _read(path: Path) -> str:
    return path.read_text().strip()


def _stat(path: Path) -> dict[str, int]:
    out = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


def cgroup_values(root: Path, cid: str) -> tuple[str, dict[str, float]] | None:
    """(cgroup path, values) of container ``cid``; None when its cgroup is not found.
    Values: working_set, memory_limit, memory_reservation, cpu_seconds, cpu_period and
    cpu_quota (absent when unlimited)."""
    if (root / "cgroup.controllers").exists():  # cgroup v2 (unified)
        for rel in (f"system.slice/docker-{cid}.scope", f"docker/{cid}"):
            d = root / rel
            if (d / "memory.current").exists():
                break
        else:
            return None
        usage = int(_read(d / "memory.current"))
        inactive = _stat(d / "memory.stat").get("inactive_file", 0)
        limit = _read(d / "memory.max")
        low = _read(d / "memory.low") if (d / "memory.low").exists() else "0"
        quota, _, period = _read(d / "cpu.max").partition(" ")
        values = {
            "working_set": max(usage - inactive, 0),
            "memory_limit": 0 if limit == "max" else int(limit),
            "memory_reservation": 0 if low == "max" else int(low),
            "cpu_seconds": _stat(d / "cpu.stat")["usage_usec"] / 1e6,
            "cpu_period": int(period or 100000),
        }
        if quota != "max":
            values["cpu_quota"] = int(quota)
        return "/" + rel, values
    for rel in (f"docker/{cid}", f"system.slice/docker-{cid}.scope"):  # cgroup v1
        mem = root / "memory" / rel
        if (mem / "memory.usage_in_bytes").exists():
            break
    else:
        return None
    usage = int(_read(mem / "memory.usage_in_bytes"))
    stat = _stat(mem / "memory.stat")
    inactive = stat.get("total_inactive_file", stat.get("inactive_file", 0))
    limit = int(_read(mem / "memory.limit_in_bytes"))
    soft = int(_read(mem / "memory.soft_limit_in_bytes"))
    cpu = root / "cpu" / rel
    quota = int(_read(cpu / "cpu.cfs_quota_us"))
    values = {
        "working_set": max(usage - inactive, 0),
        "memory_limit": 0 if limit >= UNLIMITED_V1 else limit,
        "memory_reservation": 0 if soft >= UNLIMITED_V1 else soft,
        "cpu_seconds": int(_read(root / "cpuacct" / rel / "cpuacct.usage")) / 1e9,
        "cpu_period": int(_read(cpu / "cpu.cfs_period_us")),
    }
    if quota > 0:
        values["cpu_quota"] = quota
    return "/" + rel, values


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def render(docker_socket: str, cgroup_root: Path, project: str) -> str:
    samples: dict[str, list[str]] = {name: [] for name, _, _ in FAMILIES}
    error = 0
    try:
        containers = list_containers(docker_socket, project)
    except (OSError, ValueError) as exc:
        print(f"container_exporter: Docker API: {exc}", file=sys.stderr, flush=True)
        containers, error = [], 1
    for ctr in containers:
        try:
            found = cgroup_values(cgroup_root, ctr["Id"])
        except (OSError, ValueError, KeyError) as exc:  # the container stopped meanwhile
            print(
                f"container_exporter: cgroup of {ctr['Id'][:12]}: {exc}",
                file=sys.stderr,
                flush=True,
            )
            found, error = None, 1
        if found is None:
            continue
        path, values = found
        docker_labels = ctr.get("Labels") or {}
        name = (ctr.get("Names") or ["/" + ctr["Id"][:12]])[0].lstrip("/")
        labels = {
            "container": docker_labels.get(COMPOSE_SERVICE, name),
            "container_label_com_docker_compose_project": docker_labels.get(COMPOSE_PROJECT, ""),
            "container_label_com_docker_compose_service": docker_labels.get(COMPOSE_SERVICE, ""),
            "id": path,
            "image": ctr.get("Image", ""),
            "name": name,
        }
        lbl = _labels(labels)
        cpu = _labels({**labels, "cpu": "total"})
        samples["container_cpu_usage_seconds_total"].append(f"{cpu} {values['cpu_seconds']}")
        samples["container_memory_working_set_bytes"].append(f"{lbl} {values['working_set']}")
        samples["container_spec_memory_limit_bytes"].append(f"{lbl} {values['memory_limit']}")
        samples["container_spec_memory_reservation_limit_bytes"].append(
            f"{lbl} {values['memory_reservation']}"
        )
        samples["container_spec_cpu_period"].append(f"{lbl} {values['cpu_period']}")
        if "cpu_quota" in values:
            samples["container_spec_cpu_quota"].append(f"{lbl} {values['cpu_quota']}")
    samples["container_exporter_containers"].append(f" {len(containers)}")
    samples["container_exporter_scrape_error"].append(f" {error}")
    out = []
    for name, kind, text in FAMILIES:
        out.append(f"# HELP {name} {text}")
        out.append(f"# TYPE {name} {kind}")
        out.extend(f"{name}{sample}" for sample in samples[name])
    return "\n".join(out) + "\n"


def serve(args: argparse.Namespace) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            if self.path == "/health":
                body, ctype = b"ok\n", "text/plain"
            elif self.path.split("?")[0] == "/metrics":
                body = render(args.docker_socket, Path(args.cgroup_root), args.project).encode()
                ctype = "text/plain; version=0.0.4; charset=utf-8"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_):
            pass

    host, _, port = args.listen.rpartition(":")
    server = ThreadingHTTPServer((host or "0.0.0.0", int(port)), Handler)  # noqa: S104
    print(
        f"container_exporter: listening on {args.listen} (project {args.project or 'all'})",
        file=sys.stderr,
        flush=True,
    )
    server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", default=":9338")
    parser.add_argument("--docker-socket", default="/var/run/docker.sock")
    parser.add_argument("--cgroup-root", default="/sys/fs/cgroup")
    parser.add_argument("--project", default="", help="only this Compose project's containers")
    parser.add_argument("--once", action="store_true", help="print one scrape and exit")
    args = parser.parse_args(argv)
    if args.once:
        sys.stdout.write(render(args.docker_socket, Path(args.cgroup_root), args.project))
        return
    serve(args)


if __name__ == "__main__":
    main()
