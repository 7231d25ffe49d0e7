#!/usr/bin/env python3
"""What the monitoring services cost (issue #13): their CPU and memory, idle and under the
1000 req/s ``/health`` load, as a share of the whole Compose project's.

Measures an already deployed project (``make deploy`` with the monitoring services in
``kailash_services``); it deploys, stops and changes nothing:

1. idle: ``--duration`` seconds with no load (Prometheus scrapes, exporters, healthchecks);
2. load: ``hey -z <duration>s -c 50 -q 20 <url>/health`` through the NGINX TLS edge, as
   bench/app_external.py runs it (after the same 3 s warm-up), with the achieved req/s.

Per container, from its cgroup (read with container_exporter's ``cgroup_values``, cgroup
v1 or v2, the same figures the monitoring itself exports):

- CPU: cores used = cumulative CPU time at the end of the window minus at its start
  (v1 ``cpuacct.usage``, v2 ``cpu.stat`` usage_usec), divided by the window's wall time.
  Every process of the container counts, short-lived ones too (healthchecks, exec'd
  probes): app_load.StackCpu sums /proc of the processes alive when it samples;
- memory, sampled every ``--interval`` s, mean and max over the window:
  ``working_set`` = usage - inactive_file (cAdvisor's working set, what the memory alerts
  use), ``usage`` (v1 memory.usage_in_bytes, v2 memory.current: page cache included),
  ``anon`` (v1 total_rss, v2 anon: anonymous memory, no page cache, no kernel memory).

Aggregates: per Compose service (replicas summed), the monitoring services' total, the
rest of the project, the whole project, and share = monitoring / project. Host processes
outside the containers (docker-proxy copying the edge's bytes, dockerd, the generator)
are in no total; the host's busy share and load average are recorded with each phase.

Which services are "monitoring": the compose file marks none (no label; the deployed file
has no x-kailash), so MONITORING below lists the monitoring roles' compose services
(prometheus, alertmanager, the postgres/redis/node/celery/nginx/container/blackbox exporters,
mtail; a service ``<name>-*`` counts with ``<name>``); ``--monitoring a,b`` overrides it.

    python3 bench/monitoring_cost.py [--project kailash] [--url https://127.0.0.1:8443]
        [--duration 30] [--interval 1] [--phases idle,load] [--monitoring svc,...]

Windows: make ``--duration`` a multiple of Prometheus' scrape interval (15 s by default;
read from the deployed prometheus.yml, a note is logged otherwise): the exporters work when
they are scraped, so a 10 s window holds a scrape of some targets and none of others. The
containers are listed at the start of each phase; one created or removed during a phase
(a redeploy) is named in a warning and missing from that phase's figures.

Prints a table and writes reports/bench-monitoring-cost.json. Figures only: nothing is
asserted. Exit 2 when the project runs no monitoring container.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import app_external  # noqa: E402  (need, parse_hey: the /health load as the issue runs it)
import app_load  # noqa: E402  (sh, log, HostMeter)

ROOT = Path(__file__).resolve().parents[1]
EXPORTER = ROOT / "roles" / "container_exporter" / "files" / "container_exporter.py"
# The monitoring roles' compose services (a role's name with "-" for "_"). The compose file
# marks none of its services as monitoring (no label, no x-kailash in the deployed file), so
# the list is here; tests/unit/test_monitoring_cost.py keeps it in step with the roles that
# kailash_services may name (roles/kailash/vars/main.yml).
MONITORING = ("postgres-exporter", "redis-exporter", "node-exporter", "celery-exporter",
              "nginx-exporter", "mtail", "container-exporter", "blackbox-exporter",
              "alertmanager", "prometheus")
MEMORY_KINDS = ("working_set", "usage", "anon")
MIB = 1024.0 * 1024.0


# --------------------------------------------------------------------------- classification
def is_monitoring(service: str, monitoring: list[str] | tuple[str, ...]) -> bool:
    return any(service == m or service.startswith(m + "-") for m in monitoring)


# --------------------------------------------------------------------------- aggregation
def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def share(part: float | None, whole: float | None) -> float | None:
    if part is None or not whole:
        return None
    return round(part / whole, 4)


def group_stats(ids: list[str], raw: dict) -> dict:
    """CPU cores and memory (mean, max of the per-sample sum) of containers ``ids``.

    raw: {"wall_s": s, "cpu_s": {id: CPU seconds in the window},
          "samples": [{id: {"working_set": B, "usage": B, "anon": B}}, ...]}"""
    wall = raw["wall_s"]
    cpu = [raw["cpu_s"][i] for i in ids if raw["cpu_s"].get(i) is not None]
    out: dict = {"cores": round(sum(cpu) / wall, 5) if cpu and wall > 0 else None,
                 "cpu_s": round(sum(cpu), 3) if cpu else None, "memory_mib": {}}
    for kind in MEMORY_KINDS:
        totals = [sum(s[i][kind] for i in ids if i in s) / MIB for s in raw["samples"]
                  if any(i in s for i in ids)]
        mean = _mean(totals)
        out["memory_mib"][kind] = {"mean": None if mean is None else round(mean, 1),
                                   "max": round(max(totals), 1) if totals else None}
    return out


def summarise(containers: list[dict], monitoring: list[str] | tuple[str, ...],
              raw: dict) -> dict:
    """Per container, per service, monitoring / rest / stack totals and the shares."""
    mon_ids = [c["id"] for c in containers if is_monitoring(c["service"], monitoring)]
    all_ids = [c["id"] for c in containers]
    rest_ids = [i for i in all_ids if i not in mon_ids]
    services: dict[str, list[str]] = {}
    for c in containers:
        services.setdefault(c["service"], []).append(c["id"])
    by_service = {s: {**group_stats(ids, raw), "replicas": len(ids),
                      "monitoring": is_monitoring(s, monitoring)}
                  for s, ids in sorted(services.items())}
    mon, stack = group_stats(mon_ids, raw), group_stats(all_ids, raw)
    shares = {"cpu": share(mon["cores"], stack["cores"])}
    for kind in MEMORY_KINDS:
        shares[f"memory_{kind}_mean"] = share(mon["memory_mib"][kind]["mean"],
                                              stack["memory_mib"][kind]["mean"])
    return {
        "wall_s": round(raw["wall_s"], 2),
        "samples": len(raw["samples"]),
        "containers": {c["name"]: {"service": c["service"], **group_stats([c["id"]], raw)}
                       for c in containers},
        "services": by_service,
        "monitoring": mon,
        "rest": group_stats(rest_ids, raw),
        "stack": stack,
        "share": shares,
    }


# --------------------------------------------------------------------------- the stack
def load_exporter():
    spec = importlib.util.spec_from_file_location("kailash_container_exporter", EXPORTER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def project_containers(project: str) -> list[dict]:
    out = app_load.sh("docker", "ps", "--no-trunc", "--filter",
                      f"label=com.docker.compose.project={project}", "--format",
                      '{{.ID}} {{.Names}} {{.Label "com.docker.compose.service"}}')
    rows = []
    for line in out.splitlines():
        cid, name, service = (line.split(" ", 2) + ["", ""])[:3]
        if cid:
            rows.append({"id": cid, "name": name, "service": service or name})
    return sorted(rows, key=lambda c: c["name"])


class Cgroups:
    """Reads a container's CPU seconds and memory through container_exporter.cgroup_values."""

    def __init__(self, root: Path = Path("/sys/fs/cgroup")) -> None:
        self.root = root
        self.exp = load_exporter()
        self.v2 = (root / "cgroup.controllers").exists()

    def read(self, cid: str) -> dict | None:
        try:
            found = self.exp.cgroup_values(self.root, cid)
            if found is None:
                return None
            path, values = found
            rel = path.lstrip("/")
            mem = self.root / rel if self.v2 else self.root / "memory" / rel
            usage = int(self.exp._read(mem / ("memory.current" if self.v2 else
                                              "memory.usage_in_bytes")))
            stat = self.exp._stat(mem / "memory.stat")
        except (OSError, KeyError, ValueError):
            return None  # the container went away between the listing and the read
        anon = stat.get("anon", 0) if self.v2 else stat.get("total_rss", stat.get("rss", 0))
        return {"cpu_s": values["cpu_seconds"], "working_set": values["working_set"],
                "usage": usage, "anon": anon}

    def read_all(self, containers: list[dict]) -> dict[str, dict]:
        out = {}
        for c in containers:
            v = self.read(c["id"])
            if v is not None:
                out[c["id"]] = v
        return out


def window(cg: Cgroups, containers: list[dict], duration: float, interval: float,
           cmd: list[str] | None = None) -> tuple[dict, dict, str]:
    """Samples the containers for ``duration`` s (or while ``cmd`` runs): (raw, host, out)."""
    def memory(values: dict[str, dict]) -> dict[str, dict]:
        return {k: {m: v[m] for m in MEMORY_KINDS} for k, v in values.items()}

    with app_load.HostMeter() as meter:
        first = cg.read_all(containers)
        t0 = time.monotonic()
        proc = (subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True) if cmd else None)
        end = t0 + duration
        samples = [memory(first)]
        nxt = t0
        while True:
            nxt += interval
            if proc is None:
                time.sleep(max(0.0, min(nxt, end) - time.monotonic()))
                if time.monotonic() >= end:
                    break
            else:
                time.sleep(max(0.0, nxt - time.monotonic()))
                if proc.poll() is not None:
                    break
                if time.monotonic() > end + 60:
                    proc.kill()
            samples.append(memory(cg.read_all(containers)))
        last = cg.read_all(containers)
        samples.append(memory(last))
        wall = time.monotonic() - t0
    out = ""
    if proc:
        stdout, stderr = proc.communicate(timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {stderr[-2000:]}")
        out = stdout
    cpu = {k: last[k]["cpu_s"] - first[k]["cpu_s"] for k in first
           if k in last and last[k]["cpu_s"] >= first[k]["cpu_s"]}
    return {"wall_s": wall, "cpu_s": cpu, "samples": samples}, meter.stats, out


# --------------------------------------------------------------------------- report
def _f(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100.0 * v:.1f} %"


def table(phases: dict[str, dict]) -> list[str]:
    names = list(phases)
    head = ["service", "mon", "n"]
    for p in names:
        head += [f"{p} CPU mcores", f"{p} working set MiB mean/max", f"{p} anon MiB mean"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def cells(g: dict) -> list[str]:
        ws, an = g["memory_mib"]["working_set"], g["memory_mib"]["anon"]
        cores = None if g["cores"] is None else 1000.0 * g["cores"]
        return [_f(cores, ".1f"), f"{_f(ws['mean'], '.1f')} / {_f(ws['max'], '.1f')}",
                _f(an["mean"], ".1f")]

    info: dict[str, dict] = {}
    for p in reversed(names):  # the first phase's replica count wins
        info.update(phases[p]["services"])
    order = sorted(info, key=lambda s: (not info[s]["monitoring"], s))
    for s in order:
        row = [s, "yes" if info[s]["monitoring"] else "", str(info[s]["replicas"])]
        for p in names:
            g = phases[p]["services"].get(s)
            row += cells(g) if g else ["-", "-", "-"]
        lines.append("| " + " | ".join(row) + " |")
    for label, key in (("**monitoring**", "monitoring"), ("rest of the project", "rest"),
                       ("**project**", "stack")):
        row = [label, "", ""]
        for p in names:
            row += cells(phases[p][key])
        lines.append("| " + " | ".join(row) + " |")
    row = ["**share monitoring / project**", "", ""]
    for p in names:
        sh = phases[p]["share"]
        row += [_pct(sh["cpu"]), _pct(sh["memory_working_set_mean"]),
                _pct(sh["memory_anon_mean"])]
    lines.append("| " + " | ".join(row) + " |")
    return lines


def parse_scrape_interval(text: str) -> float | None:
    """The global scrape_interval of a prometheus.yml (the first one: global comes first)."""
    m = re.search(r"^\s*scrape_interval:\s*['\"]?(\d+)(ms|s|m|h)\b", text, re.M)
    if not m:
        return None
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def scrape_interval(containers: list[dict]) -> float | None:
    """Prometheus' scrape interval, from the prometheus.yml bound into its container."""
    for c in containers:
        if c["service"] != "prometheus":
            continue
        try:
            mounts = app_load.inspect(c["name"]).get("Mounts") or []
            src = next(m["Source"] for m in mounts
                       if m.get("Destination", "").endswith("prometheus.yml"))
            return parse_scrape_interval(Path(src).read_text(encoding="utf-8"))
        except (RuntimeError, OSError, StopIteration, ValueError, KeyError):
            return None
    return None


def changes(before: list[dict], after: list[dict]) -> list[str]:
    """Containers that went away or appeared (by id: a recreated one counts as both)."""
    b, a = {c["id"]: c["name"] for c in before}, {c["id"]: c["name"] for c in after}
    return ([f"{b[i]} went away" for i in sorted(set(b) - set(a), key=b.get)]
            + [f"{a[i]} started" for i in sorted(set(a) - set(b), key=a.get)])


def git_head() -> str | None:
    try:
        return app_load.sh("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD").strip()
    except (RuntimeError, OSError):
        return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--project", default="kailash")
    p.add_argument("--url", default="https://127.0.0.1:8443")
    p.add_argument("--duration", type=int, default=30, help="seconds per phase")
    p.add_argument("--interval", type=float, default=1.0, help="memory sampling period, s")
    p.add_argument("--phases", default="idle,load")
    p.add_argument("--monitoring", default="",
                   help="comma-separated compose services to count as monitoring "
                        "(default: MONITORING, see the module's docstring)")
    p.add_argument("--cgroup-root", default="/sys/fs/cgroup")
    p.add_argument("--json", default=str(ROOT / "reports" / "bench-monitoring-cost.json"))
    a = p.parse_args(argv)
    phases = [x for x in a.phases.split(",") if x]
    if not phases or set(phases) - {"idle", "load"}:
        p.error("--phases takes idle, load or both")
    hey = app_external.need("hey") if "load" in phases else ""

    if a.monitoring:
        monitoring, source = [m for m in a.monitoring.split(",") if m], "--monitoring"
    else:
        monitoring, source = list(MONITORING), "the monitoring roles (MONITORING)"
    containers = project_containers(a.project)
    mon = [c["name"] for c in containers if is_monitoring(c["service"], monitoring)]
    if not containers or not mon:
        what = "no running container" if not containers else "no monitoring container"
        roles = ", ".join(m.replace("-", "_") for m in monitoring)
        print(f"bench/monitoring_cost.py: {what} in Compose project {a.project!r} (monitoring "
              f"services: {', '.join(monitoring)}; from {source}).\nDeploy it with the "
              f"monitoring services in kailash_services ({roles}: prometheus last), e.g. "
              "make deploy ANSIBLE_ARGS=\"-e @vars.yml\" with that list in vars.yml",
              file=sys.stderr)
        return 2
    cg = Cgroups(Path(a.cgroup_root))
    app_load.log(f"{len(containers)} containers in {a.project}, {len(mon)} monitoring: "
                 f"{', '.join(mon)}")
    scrape = scrape_interval(containers)
    if scrape and a.duration % scrape:
        app_load.log(f"note: --duration {a.duration} is not a multiple of Prometheus' scrape "
                     f"interval ({scrape:g} s): a window then holds one scrape of a target more "
                     "or less than another, which shows in the monitoring's CPU")

    results: dict = {
        "project": a.project, "url": a.url, "commit": git_head(), "cores": os.cpu_count(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration_s": a.duration, "interval_s": a.interval, "scrape_interval_s": scrape,
        "monitoring_services": monitoring, "monitoring_source": source,
        "cgroup": "v2" if cg.v2 else "v1",
        "memory": {"working_set": "usage - inactive_file (cAdvisor's working set)",
                   "usage": "memory.current / memory.usage_in_bytes (page cache included)",
                   "anon": "anon / total_rss (anonymous memory: no page cache, no kernel)"},
        "phases": {},
    }
    summaries: dict[str, dict] = {}
    for i, phase in enumerate(phases):
        if i:  # what runs now (a container recreated since the last phase has a new id)
            containers = project_containers(a.project)
        cmd = None
        if phase == "load":
            url = a.url.rstrip("/") + "/health"
            # warm-up as bench/app_external.py: TLS sessions and keep-alive pools
            subprocess.run([hey, "-z", "3s", "-c", "20", "-q", "10", url],
                           capture_output=True, check=False)
            cmd = [hey, "-z", f"{a.duration}s", "-c", "50", "-q", "20", url]
        app_load.log(f"{phase}: {' '.join(cmd) if cmd else f'{a.duration} s without load'}")
        raw, host, out = window(cg, containers, a.duration, a.interval, cmd)
        summary = summarise(containers, monitoring, raw)
        changed = changes(containers, project_containers(a.project))
        if changed:
            summary["changed"] = changed
            app_load.log(f"  WARNING: the project changed during the {phase} phase "
                         f"({'; '.join(changed)}): its figures lack them in part or whole; rerun")
        summary["host"] = host
        if cmd:
            hey_res = app_external.parse_hey(out)
            summary["load"] = {"command": " ".join(cmd), **hey_res}
            app_load.log(f"  -> {_f(hey_res.get('rps'), '.1f')} req/s, p99 "
                         f"{hey_res.get('p99_ms')} ms, {hey_res.get('errors')} errors, "
                         f"statuses {hey_res.get('statuses')}")
        summaries[phase] = summary
        results["phases"][phase] = summary

    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(results, indent=2), encoding="utf-8")
    print("\n".join(table(summaries)))
    print()
    for phase, s in summaries.items():
        h = s["host"]
        extra = ""
        if "load" in s:
            ld = s["load"]
            other = sum(n for st, n in ld.get("statuses", {}).items() if st[0] != "2")
            rps = ld.get("rps")
            extra = (f", {_f(rps, '.1f')} req/s achieved ({ld.get('requests')} answers, "
                     f"{other} not 2xx, {ld.get('errors')} transport errors, p99 "
                     f"{ld.get('p99_ms')} ms)")
        print(f"{phase}: {s['wall_s']} s, {s['samples']} memory samples{extra}; host CPU busy "
              f"{h.get('host_cpu_busy_pct')} % of {h.get('cores')} cores, load average "
              f"{h.get('loadavg_before')} -> {h.get('loadavg_after')}")
        if s.get("changed"):
            print(f"  WARNING: the project changed during it ({'; '.join(s['changed'])}): "
                  "its figures lack those containers in part or whole; rerun")
    print(f"monitoring = {', '.join(monitoring)} ({source}); cgroup {results['cgroup']}; "
          "processes outside the containers (docker-proxy, the generator) are in no total")
    print(f"full figures: {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
