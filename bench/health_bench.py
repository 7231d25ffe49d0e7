#!/usr/bin/env python3
"""Probing the services concurrently vs one after another, with and without a hanging one.

Run from the repository root (servers as in tests/health: containers of the project's
images when built, else local binaries; KAILASH_HEALTH_BACKEND=local|docker forces one):

    .venv/bin/python bench/health_bench.py [--runs 3] [--timeout 2] [--chroma]

Starts throwaway servers (2 x Redis, PostgreSQL, the Bolt stand-in, HTTP, HTTPS, and
ChromaDB with --chroma) plus a TCP server that accepts and never answers, then prints
the median of --runs for:

- in-process: the sum of the probes run one after another vs the wall time of the same
  probes in threads (ratio = sum / wall, how much concurrency buys);
- the same with the hanging service added: parallel wall time vs its timeout;
- through Ansible: one ansible-playbook run with one inventory host per service
  (strategy free), forks=1 vs forks=N, and with the hanging service (an empty play's
  run time is printed as the fixed cost of starting Ansible).

Prints figures only; no assertions.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "health"))

import harness  # noqa: E402
import services  # noqa: E402

MODULES = {"redis": "kailash_redis_probe", "postgresql": "kailash_postgresql_probe",
           "neo4j": "kailash_neo4j_probe", "chromadb": "kailash_chromadb_probe",
           "http": "kailash_http_probe"}


def load_modules() -> dict[str, Any]:
    import importlib

    import ansible.module_utils

    ansible.module_utils.__path__.append(str(ROOT / "plugins" / "module_utils"))
    sys.path.insert(0, str(ROOT / "plugins" / "modules"))
    return {kind: importlib.import_module(name) for kind, name in MODULES.items()}


def median(values: list[float]) -> float:
    return statistics.median(values)


class Bench:
    def __init__(self, args: argparse.Namespace, stack: contextlib.ExitStack) -> None:
        self.timeout = args.timeout
        self.modules = load_modules()
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kailash-healthtest-")))
        backend_redis = services.pick_backend(services.REDIS_IMAGE,
                                              services.local_redis_server() is not None)
        backend_pg = services.pick_backend(services.POSTGRES_IMAGE,
                                           services.local_postgres_bindir() is not None)
        print(f"servers: redis={backend_redis} postgresql={backend_pg}", flush=True)
        redis_a = services.RedisServer(backend_redis, tmp / "ra", ["--requirepass", "pw"])
        stack.callback(redis_a.close)
        redis_b = services.RedisServer(backend_redis, tmp / "rb", ["--requirepass", "pw"])
        stack.callback(redis_b.close)
        (tmp / "pg").mkdir()
        pg = services.PostgresServer(backend_pg, tmp / "pg", "pw")
        stack.callback(pg.close)
        (tmp / "bolt").mkdir()
        self.bolt = services.BoltStandIn(tmp / "bolt", "pw")
        stack.callback(self.bolt.close)
        (tmp / "pki").mkdir()
        pki = services.Pki(tmp / "pki")
        web = services.WebServer()
        stack.callback(web.close)
        tls = services.WebServer(pki.valid)
        stack.callback(tls.close)
        silent = services.SilentServer()
        stack.callback(silent.close)
        # (name, kind, options)
        self.targets: list[tuple[str, str, dict[str, Any]]] = [
            ("redis-a", "redis", {"host": redis_a.host, "port": redis_a.port, "password": "pw"}),
            ("redis-b", "redis", {"host": redis_b.host, "port": redis_b.port, "password": "pw"}),
            ("postgresql", "postgresql", {"host": pg.host, "port": pg.port, "user": pg.user,
                                          "password": "pw", "database": pg.database}),
            ("neo4j", "neo4j", {"uri": self.bolt.uri}),
            ("http", "http", {"url": web.url("/health")}),
            ("https", "http", {"url": tls.url("/health"), "ca_path": str(pki.ca_path)}),
        ]
        if args.chroma:
            (tmp / "chroma").mkdir()
            chroma = services.ChromaServer(tmp / "chroma")
            stack.callback(chroma.close)
            self.targets.append(("chromadb", "chromadb", {"url": chroma.url}))
        self.hanging = ("hanging-redis", "redis", {"host": silent.host, "port": silent.port})

    # ---------------------------------------------------------------- in-process

    def probe(self, target: tuple[str, str, dict[str, Any]]) -> tuple[float, dict[str, Any]]:
        _, kind, options = target
        module = self.modules[kind]
        values = {name: spec.get("default") for name, spec in module.ARGUMENT_SPEC.items()}
        values.update(options, timeout=self.timeout)
        started = time.perf_counter()
        result = module.run_probe(module.make_check(values), values, module.FACTS)
        return time.perf_counter() - started, result

    def sequential(self, targets: list) -> tuple[float, list[dict[str, Any]]]:
        results = []
        total = 0.0
        for target in targets:
            took, result = self.probe(target)
            total += took
            results.append(result)
        self.bolt.settle()
        return total, results

    def parallel(self, targets: list) -> tuple[float, list[dict[str, Any]]]:
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=len(targets)) as pool:
            results = [result for _, result in pool.map(self.probe, targets)]
        wall = time.perf_counter() - started
        self.bolt.settle()
        return wall, results

    # ---------------------------------------------------------------- Ansible

    def playbook(self, workdir: Path, targets: list) -> tuple[Path, Path]:
        hosts = {name: {"probe": kind, "p": options} for name, kind, options in targets}
        inventory = workdir / f"inventory-{len(targets)}.json"
        inventory.write_text(json.dumps({"all": {"hosts": hosts, "vars": {
            "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
            "probe_timeout": self.timeout}}}))
        play = workdir / "probe.yml"
        play.write_text(PLAYBOOK)
        return inventory, play

    def ansible(self, inventory: Path, play: Path, forks: int) -> tuple[float, dict[str, str]]:
        env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
                   ANSIBLE_LIBRARY=str(ROOT / "plugins" / "modules"),
                   ANSIBLE_MODULE_UTILS=str(ROOT / "plugins" / "module_utils"),
                   ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
                   ANSIBLE_DEPRECATION_WARNINGS="0")
        started = time.perf_counter()
        proc = subprocess.run([str(harness.BIN / "ansible-playbook"), "-i", str(inventory),
                               str(play), "-f", str(forks)], cwd=ROOT, env=env,
                              capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
        self.bolt.settle()
        statuses: dict[str, str] = {}
        with contextlib.suppress(ValueError, KeyError, IndexError):
            for task in json.loads(proc.stdout)["plays"][0]["tasks"]:
                for host, res in task["hosts"].items():
                    if "status" in res:
                        statuses[host] = f"{res['status']} {res['latency_ms']:.0f}ms"
        if proc.returncode != 0:
            print(proc.stdout[-2000:], proc.stderr[-2000:], file=sys.stderr)
        return wall, statuses


PLAYBOOK = """\
- name: Probe every service (one inventory host per service)
  hosts: all
  gather_facts: false
  strategy: free  # each host runs its own probe without waiting for the others' tasks
  tasks:
    - name: Redis
      kailash_redis_probe:
        host: "{{ p.host }}"
        port: "{{ p.port }}"
        password: "{{ p.password | default(omit) }}"
        timeout: "{{ probe_timeout }}"
      when: probe == 'redis'
    - name: PostgreSQL
      kailash_postgresql_probe:
        host: "{{ p.host }}"
        port: "{{ p.port }}"
        user: "{{ p.user }}"
        password: "{{ p.password }}"
        database: "{{ p.database }}"
        timeout: "{{ probe_timeout }}"
      when: probe == 'postgresql'
    - name: Neo4j
      kailash_neo4j_probe:
        uri: "{{ p.uri }}"
        timeout: "{{ probe_timeout }}"
      when: probe == 'neo4j'
    - name: ChromaDB
      kailash_chromadb_probe:
        url: "{{ p.url }}"
        timeout: "{{ probe_timeout }}"
      when: probe == 'chromadb'
    - name: HTTP
      kailash_http_probe:
        url: "{{ p.url }}"
        ca_path: "{{ p.ca_path | default(omit) }}"
        timeout: "{{ probe_timeout }}"
      when: probe == 'http'
"""

EMPTY_PLAY = """\
- name: Nothing (the fixed cost of one ansible-playbook run)
  hosts: all
  gather_facts: false
  tasks:
    - name: Nothing
      ansible.builtin.meta: noop
"""


def measure(runs: int, fn: Callable[[], tuple[float, Any]]) -> tuple[float, Any]:
    values = []
    last: Any = None
    for _ in range(runs):
        value, last = fn()
        values.append(value)
    return median(values), last


def show(results: list[dict[str, Any]], names: list[str]) -> str:
    return ", ".join(f"{name}={res['status']}" for name, res in zip(names, results, strict=True))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=2.0, help="probe timeout, seconds")
    ap.add_argument("--chroma", action="store_true", help="add a ChromaDB server")
    args = ap.parse_args()

    with contextlib.ExitStack() as stack:
        bench = Bench(args, stack)
        targets = bench.targets
        names = [name for name, _, _ in targets]
        with_hang = [*targets, bench.hanging]
        n = len(targets)
        print(f"{n} services: {', '.join(names)}; probe timeout {args.timeout:g} s; "
              f"median of {args.runs} runs\n", flush=True)

        seq, res = measure(args.runs, lambda: bench.sequential(targets))
        par, res_par = measure(args.runs, lambda: bench.parallel(targets))
        print("in-process (module code, one thread per probe)")
        print(f"  statuses:                        {show(res_par, names)}")
        print(f"  sum of {n} probes, one by one:     {seq * 1000:8.1f} ms")
        print(f"  {n} probes in parallel, wall:      {par * 1000:8.1f} ms")
        print(f"  ratio sum / parallel:            {seq / par:8.2f}")
        hseq, _ = measure(args.runs, lambda: bench.sequential(with_hang))
        hpar, hres = measure(args.runs, lambda: bench.parallel(with_hang))
        print(f"  + 1 hanging service ({hres[-1]['status']}: {hres[-1]['error']})")
        print(f"  sum one by one:                  {hseq * 1000:8.1f} ms")
        print(f"  parallel wall:                   {hpar * 1000:8.1f} ms"
              f"  = {hpar / args.timeout:.3f} x its timeout"
              f" (+{(hpar - args.timeout) * 1000:.1f} ms)")

        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kailash-healthtest-")))
        inventory, play = bench.playbook(work, targets)
        inventory_hang, _ = bench.playbook(work, with_hang)
        empty = work / "empty.yml"
        empty.write_text(EMPTY_PLAY)
        base, _ = measure(args.runs, lambda: bench.ansible(inventory, empty, n))
        a_seq, statuses = measure(args.runs, lambda: bench.ansible(inventory, play, 1))
        a_par, _ = measure(args.runs, lambda: bench.ansible(inventory, play, n))
        h_par, h_statuses = measure(args.runs, lambda: bench.ansible(inventory_hang, play, n + 1))
        print("\nansible-playbook (one host per service, one probe task each)")
        print(f"  statuses:                        "
              f"{', '.join(f'{k}={v}' for k, v in statuses.items())}")
        print(f"  empty play (fixed cost):         {base:8.2f} s")
        print(f"  forks=1 (one after another):     {a_seq:8.2f} s")
        print(f"  forks={n} (parallel):              {a_par:8.2f} s")
        print(f"  ratio forks=1 / forks={n}:         {a_seq / a_par:8.2f}"
              f"   (above the fixed cost: {(a_seq - base) / max(a_par - base, 1e-9):.2f})")
        print(f"  + hanging service, forks={n + 1}:     {h_par:8.2f} s"
              f" (hanging host: {h_statuses.get('hanging-redis')});"
              f" minus the parallel run: {h_par - a_par:+.2f} s vs its timeout"
              f" {args.timeout:g} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
