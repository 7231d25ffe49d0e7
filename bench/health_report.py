#!/usr/bin/env python3
"""What the health report (playbooks/health.yml) costs, and what probing at once buys.

Run from the repository root after `make host`:

    .venv/bin/python bench/health_report.py [--runs 3] [--timeout 3] [--keep]

Deploys its own dev stack (Compose project kailash-hp-bench: PostgreSQL, Redis, ChromaDB;
subnets 10.219.x; files under /tmp/kailash-hp-bench) with playbooks/dev_stack.yml unless
it is already running, and removes it at the end (unless --keep or it was running
before). Then it prints the median of --runs wall times for:

- healthy stack: health.yml as it runs by default (the probes at once, a thread each in
  one kailash_probes run) vs `kailash_health_serial: true` (the same probes one after
  another); each probe module alone (`ansible localhost -m kailash_<svc>_probe`) and the
  sum of those; an empty play (the fixed cost of starting ansible-playbook);
- hanging services: a TCP listener in this process accepts and never answers; the
  playbook's test hook `kailash_health_endpoints` ({service: {host, port}}, documented
  in health.yml) points one service, then all three, at it with
  `kailash_health_timeout: --timeout`. Reported: the extra wall time over the healthy run
  next to the timeout (one hanging service should cost about one timeout; three should
  cost about one timeout at once, three one after another).

`probe phase` is the report's own `probe_wall_ms` (from planning the probes to having
every result). Figures only, no assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"
PROJECT = "kailash-hp-bench"
WORK = Path("/tmp") / PROJECT
SERVICES = ["postgresql", "redis", "chromadb"]
BASE = {
    "kailash_project": PROJECT,
    "kailash_services": [*SERVICES, "neo4j"],
    "kailash_stack_root": str(WORK / "stack"),
    "kailash_secrets_dir": str(WORK / "secrets"),
    "kailash_publish_datastores": False,
    "kailash_networks": {"edge": "10.219.0.0/24", "app": "10.219.1.0/24",
                         "data": "10.219.2.0/24"},
    "kailash_health_report_dir": str(WORK / "reports"),
}
SIZE = {"postgresql_memory_request": "1Gi", "postgresql_memory_limit": "2Gi",
        "redis_memory_request": "256Mi", "redis_memory_limit": "512Mi",
        "chromadb_memory_request": "512Mi", "chromadb_memory_limit": "1Gi"}
ENV = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
           PATH=f"{BIN}:{os.environ.get('PATH', '')}")


class SilentServer:
    """Accepts TCP connections on 127.0.0.1 and never sends or reads a byte."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def write_vars(directory: Path, data: dict) -> Path:
    """Extra vars as a 0600 file (they may hold secrets: never on a command line)."""
    fd, name = tempfile.mkstemp(suffix=".json", dir=directory)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    return Path(name)


def timed(cmd: list[str], check_rc: bool = False) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if check_rc and proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-3000:]}{proc.stderr}")
    return elapsed, proc


def stack_running() -> bool:
    out = subprocess.run(["docker", "ps", "--filter", f"label=com.docker.compose.project={PROJECT}",
                          "--format", "{{.Names}} {{.Status}}"],
                         capture_output=True, text=True, check=True).stdout
    healthy = [line for line in out.splitlines() if "(healthy)" in line]
    return len(healthy) >= len(SERVICES) + 1  # chromadb has two containers


def health_run(tmp: Path, **extra) -> tuple[float, dict]:
    varsfile = write_vars(tmp, {**BASE, **extra})
    elapsed, proc = timed([str(BIN / "ansible-playbook"), "-i", "inventories/local",
                           "playbooks/health.yml", "-e", f"@{varsfile}"])
    report = json.loads((WORK / "reports" / f"health-{PROJECT}.json").read_text())
    report["_rc"] = proc.returncode
    return elapsed, report


def container_ip(name: str) -> str:
    return subprocess.run(["docker", "inspect", "-f",
                           "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name],
                          capture_output=True, text=True, check=True).stdout.strip()


def single_probes(tmp: Path) -> dict[str, tuple[float, float]]:
    """Each probe module alone through `ansible localhost -m`: (wall s, latency ms)."""
    import yaml

    secrets = yaml.safe_load((WORK / "secrets" / "secrets.yml").read_text())
    varsfile = write_vars(tmp, {"s": secrets})
    ips = {svc: container_ip(f"{PROJECT}-{svc}-1") for svc in SERVICES}
    args = {
        "postgresql": ("kailash_postgresql_probe", {
            "host": ips["postgresql"], "user": "kailash_user", "database": "kailash",
            "password": "{{ s.postgresql_password }}"}),
        "redis": ("kailash_redis_probe", {
            "host": ips["redis"], "user": "kailash-admin",
            "password": "{{ s.redis_admin_password }}"}),
        "chromadb": ("kailash_chromadb_probe", {
            "url": f"http://{ips['chromadb']}:8000", "token": "{{ s.chromadb_token }}"}),
    }
    env = dict(ENV, ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1")
    out = {}
    for svc, (module, margs) in args.items():
        start = time.perf_counter()
        proc = subprocess.run([str(BIN / "ansible"), "localhost", "-i", "inventories/local",
                               "-m", module, "-a", json.dumps(margs), "-e", f"@{varsfile}"],
                              cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
        try:
            result = next(iter(json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"].values()))
            latency = float(result["latency_ms"])
            if result["status"] != "up":
                print(f"  note: {svc} probe alone: {result['status']} {result['error']}")
        except (ValueError, KeyError, IndexError, StopIteration):
            latency = float("nan")
            print(f"  note: could not read the result of {module}: {proc.stdout[-500:]}")
        out[svc] = (wall, latency)
    return out


def empty_play(tmp: Path) -> float:
    play = tmp / "empty.yml"
    play.write_text("- name: Nothing\n  hosts: docker_hosts\n  gather_facts: false\n  tasks: []\n")
    return timed([str(BIN / "ansible-playbook"), "-i", "inventories/local", str(play)])[0]


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=3.0,
                    help="kailash_health_timeout for the hanging-service runs (s)")
    ap.add_argument("--keep", action="store_true", help="leave the bench stack running")
    args = ap.parse_args()

    WORK.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-", dir=WORK))
    was_running = stack_running()
    if not was_running:
        print(f"deploying {PROJECT} (playbooks/dev_stack.yml) ...", flush=True)
        varsfile = write_vars(tmp, {**BASE, **SIZE})
        elapsed, _ = timed([str(BIN / "ansible-playbook"), "-i", "inventories/local",
                            "playbooks/dev_stack.yml", "-e", f"@{varsfile}"], check_rc=True)
        print(f"  deployed in {elapsed:.1f} s", flush=True)
    silent = SilentServer()
    try:
        rows: dict[str, list[tuple[float, float]]] = {}
        statuses: dict[str, str] = {}

        def measure(label: str, **extra) -> None:
            wall, report = health_run(tmp, **extra)
            rows.setdefault(label, []).append((wall, report["probe_wall_ms"] / 1000))
            statuses[label] = ", ".join(f"{s['service']} {s['status']}" for s in report["services"]
                                        if s["status"] != "not deployed") + f"; rc {report['_rc']}"

        hang_one = {"redis": {"host": "127.0.0.1", "port": silent.port}}
        hang_all = {svc: {"host": "127.0.0.1", "port": silent.port} for svc in SERVICES}
        singles: dict[str, list[tuple[float, float]]] = {}
        empties = []
        for run in range(1, args.runs + 1):
            print(f"run {run}/{args.runs} ...", flush=True)
            empties.append(empty_play(tmp))
            measure("healthy, at once")
            measure("healthy, one after another", kailash_health_serial=True)
            for svc, value in single_probes(tmp).items():
                singles.setdefault(svc, []).append(value)
            hung = {"kailash_health_timeout": args.timeout}
            measure("1 hanging, at once", kailash_health_endpoints=hang_one, **hung)
            measure("1 hanging, one after another", kailash_health_endpoints=hang_one,
                    kailash_health_serial=True, **hung)
            measure("3 hanging, at once", kailash_health_endpoints=hang_all, **hung)
            measure("3 hanging, one after another", kailash_health_endpoints=hang_all,
                    kailash_health_serial=True, **hung)
    finally:
        silent.close()
        if not (args.keep or was_running):
            subprocess.run(["docker", "compose", "-p", PROJECT, "down", "--volumes",
                            "--timeout", "5"], capture_output=True, check=False)
            shutil.rmtree(WORK, ignore_errors=True)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    med = {label: (median([w for w, _ in v]), median([p for _, p in v]))
           for label, v in rows.items()}
    empty = median(empties)
    print(f"\nhealth.yml on {PROJECT} ({os.cpu_count()} CPUs), median of {args.runs} run(s); "
          f"hanging runs with kailash_health_timeout {args.timeout:g} s\n")
    width = max(len(label) for label in med) + 2
    print(f"{'run':<{width}}{'wall s':>8}{'probe phase s':>15}   services")
    for label, (wall, probe) in med.items():
        print(f"{label:<{width}}{wall:>8.2f}{probe:>15.2f}   {statuses[label]}")
    print(f"{'empty play (fixed cost)':<{width}}{empty:>8.2f}")

    print("\neach probe module alone (ansible localhost -m ...):")
    single_wall = {svc: median([w for w, _ in v]) for svc, v in singles.items()}
    single_lat = {svc: median([lat for _, lat in v]) for svc, v in singles.items()}
    for svc in SERVICES:
        print(f"  {svc:<11} wall {single_wall[svc]:6.2f} s   "
              f"probe latency {single_lat[svc]:8.1f} ms")
    total_wall = sum(single_wall.values())
    print(f"  {'sum':<11} wall {total_wall:6.2f} s   "
          f"probe latency {sum(single_lat.values()):8.1f} ms   (less {len(SERVICES)} x the "
          f"empty play: {total_wall - len(SERVICES) * empty:.2f} s)")

    at_once, serial = med["healthy, at once"], med["healthy, one after another"]
    print("\nratios:")
    print(f"  healthy: one after another / at once, wall {serial[0] / at_once[0]:.2f}, "
          f"probe phase {serial[1] / at_once[1]:.2f}")
    print(f"  healthy: health.yml wall / sum of the probes alone {at_once[0] / total_wall:.2f}")
    for n in (1, 3):
        for how, base in (("at once", at_once), ("one after another", serial)):
            wall, probe = med[f"{n} hanging, {how}"]
            extra = probe - base[1]
            print(f"  {n} hanging, {how}: probe phase +{extra:.2f} s over healthy = "
                  f"{extra / args.timeout:.2f} x the timeout (wall {wall:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
